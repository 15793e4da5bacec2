"""Retries as rounds: a batch gives the same samples as one sample at a time; an infrastructure
failure propagates (it fails the shard) while a content failure is a reject."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from syncxr.errors import InfrastructureError
from syncxr.image.base import GeneratedImage, GenerateOneByOne
from syncxr.image.stage import ImageStage
from syncxr.records import Entity, Sample, Verdict
from syncxr.text.base import ExtractOneByOne, WriteOneByOne
from syncxr.text.stages import WriteVerifyStage
from syncxr.text.verify import Verifier

EFF = Entity("pleural_effusion", "DISEASE")


class SeedWriter(WriteOneByOne):
    """Writes the sampled effusion only when (seed + attempt) % 3 == 0, else a report without it;
    counts its batched calls."""

    backend_id, adds_filler, uses_feedback = "seeded", False, True

    def __init__(self) -> None:
        self.batches: list[int] = []

    def write_batch(self, requests):
        self.batches.append(len(requests))
        return super().write_batch(requests)

    def write(self, entities, seed, attempt=0, feedback=""):
        good = (seed + attempt) % 3 == 0
        text = "Right pleural effusion." if good else "No acute process."
        return text + (f" [{feedback[:10]}]" if feedback else ""), text


class Lexicon(ExtractOneByOne):
    backend_id = "tiny"

    def extract(self, text, section=""):
        return [Entity("pleural_effusion", "DISEASE", section=section)] if "effusion" in text else []


def _samples(n: int) -> list[Sample]:
    return [Sample(f"s{i}", i, 1000 + 7 * i, entities=[EFF]) for i in range(n)]


def test_write_rounds_equal_one_sample_at_a_time_and_batch_only_the_failures():
    batched, single = _samples(24), _samples(24)
    writer = SeedWriter()
    WriteVerifyStage(writer, Verifier(Lexicon(), check_attributes=False), max_attempts=2).process(batched)
    for s in single:
        WriteVerifyStage(SeedWriter(), Verifier(Lexicon(), check_attributes=False), max_attempts=2).process([s])
    assert batched == single
    assert writer.batches[0] == 24 and writer.batches[1] < 24 and writer.batches[1] == writer.batches[0] - sum(
        s.write_attempts == 1 and s.ok for s in batched
    )
    assert any(not s.ok for s in batched) and any(s.write_attempts == 2 and s.ok for s in batched)
    retried = next(s for s in batched if s.write_attempts > 1)
    assert retried.history[0].startswith("write#1: missing_entities")


class FlakyWriter(SeedWriter):
    def write(self, entities, seed, attempt=0, feedback=""):
        raise InfrastructureError("server unreachable after 3 retries")


def test_infrastructure_failure_propagates_instead_of_rejecting():
    samples = _samples(3)
    with pytest.raises(InfrastructureError):
        WriteVerifyStage(FlakyWriter(), Verifier(Lexicon(), check_attributes=False)).process(samples)
    assert all(s.rejected is None for s in samples)


class NoisyGenerator(GenerateOneByOne):
    backend_id = "noisy"

    def generate(self, impression, seed, attempt=0):
        rng = np.random.default_rng([seed, attempt])
        return GeneratedImage(rng.integers(0, 256, (16, 16), dtype=np.uint8), meta={"prompt_tokens": 5.0})


class MeanFilter:
    """Rejects images darker than 127.5 on average."""

    def check(self, image):
        m = float(image.mean())
        return Verdict(m > 127.5, "" if m > 127.5 else "qc_too_dark", f"mean {m:.1f}", {"mean": m})

    def check_batch(self, images):
        return [self.check(i) for i in images]


def test_image_rounds_equal_one_sample_at_a_time():
    batched = [Sample(f"s{i}", i, 50 + i, impression="x") for i in range(20)]
    single = copy.deepcopy(batched)
    ImageStage(NoisyGenerator(), MeanFilter(), max_attempts=3).process(batched)
    for s in single:
        ImageStage(NoisyGenerator(), MeanFilter(), max_attempts=3).process([s])
    assert batched == single
    assert any(s.image_attempts > 1 and s.ok for s in batched)
    assert all(s.qc["prompt_tokens"] == 5.0 for s in batched if s.ok)  # generator meta is kept
    assert {s.rejected.reason for s in batched if not s.ok} <= {"qc_too_dark"}


def test_bank_filter_verdict_does_not_depend_on_batch_mates():
    from syncxr.qc.bank import build_bank
    from syncxr.qc.filter import BankFilter, render_eval_sets

    bank = build_bank(n_per_defect=2, size=128, seed=0)
    qc = BankFilter(bank, "builtin")
    sets = render_eval_sets(3, size=128, seed=5)
    images = [img for imgs in sets.values() for img in imgs]
    assert qc.check_batch(images) == [qc.check(img) for img in images]
    assert any(not v.ok for v in qc.check_batch(images))  # the defects are caught, so the test has teeth
