"""The image stage (retries, rejects, PNG storage) and the text-conditioned phantom generator."""

from __future__ import annotations

import io

import numpy as np
import pytest

from syncxr.image.base import GENERATORS, GeneratedImage, GenerateOneByOne, ImageGenerator
from syncxr.image.phantom import FindingSpec
from syncxr.image.phantom.generator import PhantomGenerator, entities_to_specs
from syncxr.image.png import decode_png, encode_mask
from syncxr.image.stage import ImageStage
from syncxr.stage import Stage
from syncxr.records import Entity, Sample, Verdict
from syncxr.vocab import load_ontology


class FixedGenerator(GenerateOneByOne):
    backend_id = "fixed"

    def __init__(self, fail_on: str = "") -> None:
        self.calls: list[int] = []
        self.fail_on = fail_on

    def generate(self, impression: str, seed: int, attempt: int = 0) -> GeneratedImage:
        if impression == self.fail_on:
            raise RuntimeError("boom")
        self.calls.append(attempt)
        img = np.full((32, 32), 100 + attempt, np.uint8)
        mask = np.zeros((32, 32), bool)
        mask[4:9, 20:30] = True
        return GeneratedImage(img, {"nodule": mask})


class Filter:
    """Fails the first `fails` checks with reason qc_too_dark."""

    def __init__(self, fails: int) -> None:
        self.fails, self.seen = fails, 0

    def check(self, image: np.ndarray) -> Verdict:
        self.seen += 1
        ok = self.seen > self.fails
        return Verdict(ok=ok, reason="" if ok else "qc_too_dark", detail="mean 12", scores={"mean": float(image.mean())})

    def check_batch(self, images: list[np.ndarray]) -> list[Verdict]:
        return [self.check(image) for image in images]


def samples(n: int = 1, impression: str = "Left lower lobe pneumonia.") -> list[Sample]:
    return [Sample(sample_id=f"s{i}", index=i, seed=100 + i, impression=impression) for i in range(n)]


def test_stage_contract() -> None:
    stage = ImageStage(FixedGenerator())
    assert isinstance(stage, Stage)
    assert stage.name == "image" and stage.requires == ("impression",)
    assert set(stage.provides) == {"image_png", "masks", "image_attempts", "qc"}


def test_stores_png_and_one_bit_masks() -> None:
    batch = ImageStage(FixedGenerator(), Filter(0)).process(samples(2))
    for s in batch:
        assert s.ok and s.image_attempts == 1 and s.backends["image"] == "fixed"
        assert decode_png(s.image_png).tolist() == np.full((32, 32), 100, np.uint8).tolist()
        mask = decode_png(s.masks["nodule"])
        assert mask.dtype == bool and mask.sum() == 50 and mask[5, 25]
        assert s.qc == {"mean": 100.0}


def test_regenerates_after_a_failed_verdict() -> None:
    gen = FixedGenerator()
    (s,) = ImageStage(gen, Filter(1)).process(samples())
    assert s.ok and gen.calls == [0, 1] and s.image_attempts == 2
    assert s.history == ["image#0: qc_too_dark"]
    assert decode_png(s.image_png)[0, 0] == 101  # the second attempt's image is kept


def test_rejects_after_max_attempts_with_the_reason() -> None:
    gen = FixedGenerator()
    (s,) = ImageStage(gen, Filter(99), max_attempts=3).process(samples())
    assert not s.ok and s.rejected.stage == "image" and s.rejected.reason == "qc_too_dark"
    assert s.rejected.detail == "mean 12" and gen.calls == [0, 1, 2] and s.image_attempts == 3
    assert len(s.history) == 3 and s.image_png == b""


def test_generator_error_rejects_only_that_sample() -> None:
    batch = samples(1, "bad") + samples(1, "fine")
    batch[1].sample_id = "s1"
    out = ImageStage(FixedGenerator(fail_on="bad")).process(batch)
    assert out[0].rejected.reason == "image_error" and "boom" in out[0].rejected.detail
    assert out[1].ok and out[1].image_png


def test_rejected_samples_are_skipped() -> None:
    (s,) = samples()
    s.reject("verify", "verify_mismatch")
    gen = FixedGenerator()
    ImageStage(gen).process([s])
    assert gen.calls == [] and s.rejected.stage == "verify"


class FakeExtractor:
    backend_id = "fake"

    def __init__(self, entities: list[Entity]) -> None:
        self.entities = entities

    def extract(self, text: str, section: str = "") -> list[Entity]:
        return self.entities


def test_entities_map_to_specs_via_the_ontology() -> None:
    ents = [
        Entity("pleural_effusion", "DISEASE", "present", {"laterality": "left", "severity": "large"}),
        Entity("pleural_effusion", "DISEASE", "present", {"laterality": "right"}),
        Entity("pneumothorax", "NON-DISEASE", "absent"),
        Entity("pneumonia", "DISEASE", "uncertain", {"zone": "lower", "laterality": "sideways"}),
        Entity("lung", "ANATOMY", "present"),
    ]
    specs = entities_to_specs(ents, load_ontology())
    assert specs == [FindingSpec("pleural_effusion", "bilateral", "severe", None, entity="pleural_effusion"),
                     FindingSpec("consolidation", None, None, "lower", entity="pneumonia")]


def test_phantom_generator_draws_what_the_text_says() -> None:
    ents = [Entity("pleural_effusion", "DISEASE", "present", {"laterality": "left", "severity": "moderate"})]
    gen = PhantomGenerator(size=128, extractor=FakeExtractor(ents))
    assert isinstance(gen, ImageGenerator)
    out = gen.generate("Moderate left pleural effusion.", seed=5)
    assert set(out.masks) == {"pleural_effusion"}
    cols = np.nonzero(out.masks["pleural_effusion"])[1]
    assert cols.mean() > 64  # patient left = image right
    again = gen.generate("Moderate left pleural effusion.", seed=5, attempt=1)
    assert again.image.tobytes() != out.image.tobytes()
    none = PhantomGenerator(size=128, extractor=FakeExtractor([Entity("pneumothorax", "NON-DISEASE", "absent")]))
    assert none.generate("No pneumothorax.", seed=5).masks == {}


def test_registered_as_phantom() -> None:
    gen = GENERATORS.build("phantom", size=128, extractor=FakeExtractor([]))
    assert gen.backend_id == "phantom-v9" and gen.generate("", seed=1).image.shape == (128, 128)


def test_with_the_builtin_extractor() -> None:
    gen = PhantomGenerator(size=128)
    out = gen.generate("Large right pleural effusion. No pneumothorax.", seed=3)
    assert "pleural_effusion" in out.masks and "pneumothorax" not in out.masks
    assert np.nonzero(out.masks["pleural_effusion"])[1].mean() < 64


@pytest.mark.parametrize("shape", [(1, 1), (9, 17), (64, 64)])
def test_mask_png_round_trips_at_odd_widths(shape: tuple[int, int]) -> None:
    from PIL import Image

    mask = np.random.default_rng(sum(shape)).random(shape) < 0.3
    data = encode_mask(mask)
    assert Image.open(io.BytesIO(data)).mode == "1"  # a standard 1-bit PNG
    out = decode_png(data)
    assert out.dtype == bool and np.array_equal(out, mask)
