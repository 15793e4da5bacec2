"""Diffusion generator: a tiny random Stable Diffusion pipeline (UNet, VAE, CLIP text encoder,
offline CLIP tokenizer, scheduler) saved to a temp folder and loaded back through the real path."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
diffusers = pytest.importorskip("diffusers")

from syncxr.errors import UserError  # noqa: E402
from syncxr.image.base import GENERATORS, ImageGenerator  # noqa: E402
from syncxr.image.diffusion import to_gray_uint8  # noqa: E402


def _clip_tokenizer():
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import CLIPTokenizer

    corpus = ["small right pleural effusion", "no acute cardiopulmonary process", "cardiomegaly"] * 5
    tok = Tokenizer(models.BPE(unk_token="<|endoftext|>", end_of_word_suffix="</w>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    specials = ["<|startoftext|>", "<|endoftext|>"]
    tok.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=120, special_tokens=specials, end_of_word_suffix="</w>"))
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in json.loads(tok.to_str())["model"]["merges"]]
    return CLIPTokenizer(vocab=tok.get_vocab(), merges=merges)


@pytest.fixture(scope="module")
def sd_dir(tmp_path_factory):
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(0)
    tokenizer = _clip_tokenizer()
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
        num_attention_heads=2, max_position_embeddings=77, projection_dim=16,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    ))
    unet = UNet2DConditionModel(
        sample_size=4, in_channels=4, out_channels=4, block_out_channels=(8, 16), layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=16, attention_head_dim=2, norm_num_groups=4,
    )
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 8), layers_per_block=1,
        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2, norm_num_groups=4,
        sample_size=32,
    )
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False, steps_offset=1)
    pipe = StableDiffusionPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    path = tmp_path_factory.mktemp("sd")
    pipe.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def generator(sd_dir):
    return GENERATORS.build("diffusion", model=str(sd_dir), steps=2, guidance_scale=3.0, height=32, width=48)


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


def test_bad_inputs_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="could not load a Stable Diffusion pipeline"):
        GENERATORS.build("diffusion", model=str(tmp_path / "missing"))
    with pytest.raises(UserError, match="multiple of 8"):
        GENERATORS.build("diffusion", model=str(tmp_path), height=30)
