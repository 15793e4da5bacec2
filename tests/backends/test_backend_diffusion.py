"""Diffusion generator: tiny random pipelines of three families, saved to a temp folder and loaded
back through the real path: Stable Diffusion (UNet, VAE, CLIP text encoder, offline CLIP
tokenizer, DDIM), PixArt-Sigma (transformer, VAE, T5 encoder, offline T5 tokenizer) and Sana
(linear-attention transformer, DC-AE, Gemma-2 encoder, flow-matching scheduler)."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
diffusers = pytest.importorskip("diffusers")

from tiny import build_pixart, build_sana, build_sd  # noqa: E402

from syncxr.errors import InfrastructureError, UserError  # noqa: E402
from syncxr.image.base import GENERATORS, GeneratedImage, ImageGenerator, ImageRequest  # noqa: E402
from syncxr.image.diffusion import DiffusionGenerator, to_gray_uint8  # noqa: E402

LONG_PROMPT = " ".join(["small right pleural effusion and cardiomegaly"] * 30)


@pytest.fixture(scope="module")
def sd_dir(tmp_path_factory):
    return build_sd(tmp_path_factory.mktemp("sd"))


@pytest.fixture(scope="module")
def pixart_dir(tmp_path_factory):
    return build_pixart(tmp_path_factory.mktemp("pixart"))


@pytest.fixture(scope="module")
def sana(tmp_path_factory):
    # Sana prepends a long "complex human instruction" by default; off, to keep the tiny model fast
    return GENERATORS.build(
        "diffusion", model=str(build_sana(tmp_path_factory.mktemp("sana"))), steps=2, height=32, width=64,
        call_options={"use_resolution_binning": False, "complex_human_instruction": None, "max_sequence_length": 40},
    )


@pytest.fixture(scope="module")
def generator(sd_dir):
    return GENERATORS.build("diffusion", model=str(sd_dir), steps=2, guidance_scale=3.0, height=32, width=48)


@pytest.fixture(scope="module")
def pixart(pixart_dir):
    # binning would redraw at the model's aspect-ratio bins; the tiny model has none
    return GENERATORS.build(
        "diffusion", model=str(pixart_dir), steps=2, height=32, width=48, batch_size=8,
        call_options={"use_resolution_binning": False, "clean_caption": False, "max_sequence_length": 40},
    )


def _requests(n: int = 8) -> list[ImageRequest]:
    prompts = ["Small right pleural effusion.", "cardiomegaly", "No acute cardiopulmonary process.", LONG_PROMPT]
    return [ImageRequest(prompts[i % len(prompts)], seed=100 + i, attempt=i % 2) for i in range(n)]


@pytest.mark.parametrize("family", ["sd", "pixart", "sana"])
def test_batch_of_8_equals_one_at_a_time(family, generator, pixart, sana):
    gen = {"sd": generator, "pixart": pixart, "sana": sana}[family]
    gen.batch_size = 8
    requests = _requests(8)
    batched = gen.generate_batch(requests)
    assert all(isinstance(r, GeneratedImage) for r in batched)
    for req, img in zip(requests, batched):
        alone = gen.generate_batch([req])[0]
        _assert_same_draw(img.image, alone.image)
        assert img.meta == alone.meta
    # a batch chunked by 3 (3 + 3 + 2) is still the same images, in request order
    gen.batch_size = 3
    chunked = gen.generate_batch(requests)
    for a, b in zip(batched, chunked):
        _assert_same_draw(a.image, b.image)
    assert np.abs(batched[0].image.astype(int) - batched[4].image.astype(int)).mean() > 5  # same prompt, other seed


def _assert_same_draw(a: np.ndarray, b: np.ndarray) -> None:
    """The same draw: CPU BLAS sums a batch of 8 in another order than a batch of 1, so float
    pixels differ by ~1e-6 and a rare pixel rounds to the next uint8 level; nothing more."""
    diff = np.abs(a.astype(int) - b.astype(int))
    assert diff.max() <= 1 and (diff == 0).mean() >= 0.995, (diff.max(), (diff == 0).mean())


def test_families_load_through_the_auto_pipeline(generator, pixart, sana):
    assert type(generator.pipe).__name__ == "StableDiffusionPipeline"
    assert type(pixart.pipe).__name__ == "PixArtSigmaPipeline"
    assert type(sana.pipe).__name__ == "SanaPipeline"
    assert sana.generate("cardiomegaly", seed=1).image.shape == (32, 64)
    assert getattr(generator.pipe, "safety_checker", None) is None


def test_prompt_tokens_and_truncation_are_recorded(generator, pixart):
    short, long = generator.generate_batch([ImageRequest("cardiomegaly", 1), ImageRequest(LONG_PROMPT, 1)])
    n_short = len(generator.pipe.tokenizer("cardiomegaly")["input_ids"])
    assert short.meta == {"prompt_tokens": float(n_short), "prompt_truncated": 0.0} and 2 < n_short < 77
    assert long.meta == {"prompt_tokens": 77.0, "prompt_truncated": 1.0}  # CLIP's limit
    # PixArt's T5 reads up to max_sequence_length (40 here, from call_options)
    short, long = pixart.generate_batch([ImageRequest("cardiomegaly", 1), ImageRequest(LONG_PROMPT, 1)])
    assert short.meta["prompt_truncated"] == 0.0 and short.meta["prompt_tokens"] < 40
    assert long.meta == {"prompt_tokens": 40.0, "prompt_truncated": 1.0}


class _OomPipe:
    """Wraps a pipeline; raises CUDA out-of-memory for calls with more than `fits` prompts."""

    def __init__(self, pipe, fits: int) -> None:
        self.pipe, self.fits, self.calls = pipe, fits, []

    def __call__(self, **kwargs):
        self.calls.append(len(kwargs["prompt"]))
        if len(kwargs["prompt"]) > self.fits:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return self.pipe(**kwargs)


def test_out_of_memory_halves_the_batch_then_fails_the_shard(generator, monkeypatch):
    requests = _requests(5)
    generator.batch_size = 1
    expected = [r.image for r in generator.generate_batch(requests)]
    fake = _OomPipe(generator.pipe, fits=2)
    monkeypatch.setattr(generator, "pipe", fake)
    generator.batch_size = 8
    got = generator.generate_batch(requests)
    assert fake.calls == [5, 4, 2, 2, 1]  # 5 fails, 4 fails, then chunks of 2
    assert generator.batch_size == 2  # kept for later calls
    for want, img in zip(expected, got):
        np.testing.assert_array_equal(want, img.image)
    fake.fits = 0
    with pytest.raises(InfrastructureError, match="out of memory at batch size 1"):
        generator.generate_batch(requests[:3])
    generator.batch_size = 8


def test_a_failing_prompt_is_that_samples_error(generator, monkeypatch):
    real = generator.pipe

    def pipe(**kwargs):
        if "poison" in kwargs["prompt"]:
            raise ValueError("cannot draw poison")
        return real(**kwargs)

    monkeypatch.setattr(generator, "pipe", pipe)
    generator.batch_size = 4
    out = generator.generate_batch([ImageRequest("cardiomegaly", 1), ImageRequest("poison", 2), ImageRequest("effusion", 3)])
    assert isinstance(out[0], GeneratedImage) and isinstance(out[2], GeneratedImage)
    assert isinstance(out[1], ValueError) and "poison" in str(out[1])
    generator.batch_size = 8


def test_generates_grayscale_uint8_without_masks(generator, sd_dir):
    assert isinstance(generator, ImageGenerator) and generator.backend_id == f"diffusion:{sd_dir.name}"
    out = generator.generate("Small right pleural effusion.", seed=11)
    assert out.image.shape == (32, 48) and out.image.dtype == np.uint8 and out.masks == {}
    assert out.image.std() > 0  # a real decoded image, not a constant fill
    # the test tokenizer was saved without model_max_length: the loader caps it at CLIP's 77
    assert generator.pipe.tokenizer.model_max_length == 77


def test_seed_and_attempt_fix_the_draw(generator):
    a = generator.generate("cardiomegaly", seed=5).image
    b = generator.generate("cardiomegaly", seed=5).image
    c = generator.generate("cardiomegaly", seed=5, attempt=1).image
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_to_gray_uint8_rounds_and_clips():
    rgb = np.array([[[0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [0.2, 0.4, 0.6], [np.nan, np.nan, np.nan], [2.0, 2.0, 2.0]]])
    np.testing.assert_array_equal(to_gray_uint8(rgb), np.array([[0, 255, 102, 0, 255]], dtype=np.uint8))


def test_bad_inputs_are_user_errors(tmp_path, sd_dir):
    with pytest.raises(UserError, match="could not load a diffusion pipeline"):
        GENERATORS.build("diffusion", model=str(tmp_path / "missing"))
    with pytest.raises(UserError, match="multiple of 8"):
        GENERATORS.build("diffusion", model=str(tmp_path), height=30)
    with pytest.raises(UserError, match="dtype 'float8'"):
        GENERATORS.build("diffusion", model=str(sd_dir), dtype="float8")
    with pytest.raises(UserError, match="may not set"):
        GENERATORS.build("diffusion", model=str(sd_dir), call_options={"height": 64})
    with pytest.raises(UserError, match=r"\['max_sequence_length'\] are not parameters of StableDiffusionPipeline"):
        GENERATORS.build("diffusion", model=str(sd_dir), call_options={"max_sequence_length": 10})
    with pytest.raises(UserError, match="not a diffusers pipeline class"):
        GENERATORS.build("diffusion", model=str(sd_dir), pipeline="NoSuchPipeline")


def test_dtype_option_loads_half_precision_weights(sd_dir):
    gen = DiffusionGenerator(str(sd_dir), dtype="bfloat16", steps=1, height=32, width=32)
    assert gen.pipe.unet.dtype == torch.bfloat16 and gen.pipe.text_encoder.dtype == torch.bfloat16
