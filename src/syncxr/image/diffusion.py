"""Diffusion image generator: RoentGen or any Stable Diffusion checkpoint through diffusers.

The prompt is the IMPRESSION only (as in the SynCXR recipe). Each (seed, attempt) seeds its own
torch.Generator, so a regeneration after a QC reject is a new draw and a rerun is the same draw.
No masks: a diffusion model does not say where it drew a finding.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from syncxr.errors import UserError
from syncxr.image.base import GeneratedImage, GenerateOneByOne
from syncxr.records import derive_seed

log = logging.getLogger(__name__)

_DTYPES = ("float32", "float16", "bfloat16")


class DiffusionGenerator(GenerateOneByOne):
    """ImageGenerator over a diffusers StableDiffusionPipeline loaded from a folder or hub name.

    steps / guidance_scale / height / width are the usual sampling knobs (RoentGen was trained at
    512 px; 75 steps and guidance 4 are its authors' suggestion, fewer steps are fine for drafts).
    """

    def __init__(
        self,
        model: str | Path,
        device: str = "cpu",
        dtype: str = "float32",
        steps: int = 50,
        guidance_scale: float = 4.0,
        height: int = 512,
        width: int = 512,
        negative_prompt: str | None = None,
    ) -> None:
        try:
            import torch
            from diffusers import StableDiffusionPipeline
        except ImportError as e:
            raise UserError(
                f"the diffusion image generator needs diffusers ({e}); install it with: pip install 'syncxr[diffusion]'"
            ) from None
        if dtype not in _DTYPES:
            raise UserError(f"image.dtype {dtype!r} is not one of {', '.join(_DTYPES)}")
        if height % 8 or width % 8:
            raise UserError(f"image size {height}x{width} must be a multiple of 8 (the VAE downsamples by 8)")
        try:
            # No safety checker: it is trained on natural photos and blanks radiographs at random.
            self.pipe = StableDiffusionPipeline.from_pretrained(
                str(model), dtype=getattr(torch, dtype), safety_checker=None, requires_safety_checker=False
            )
        except (OSError, ValueError) as e:
            raise UserError(
                f"could not load a Stable Diffusion pipeline from {str(model)!r}: {e}. Expected a local folder or "
                "hub name in diffusers layout (model_index.json, unet/, vae/, text_encoder/, tokenizer/, scheduler/)."
            ) from None
        self.pipe.to(device)
        tok = self.pipe.tokenizer
        if tok.model_max_length > 100_000:
            # A tokenizer saved without model_max_length pads prompts to ~1e30 tokens; the text
            # encoder's position table is the real limit (77 for CLIP).
            tok.model_max_length = self.pipe.text_encoder.config.max_position_embeddings
        self.pipe.set_progress_bar_config(disable=True)
        self.device = device
        self.steps = steps
        self.guidance_scale = guidance_scale
        self.height = height
        self.width = width
        self.negative_prompt = negative_prompt
        self.backend_id = f"diffusion:{Path(str(model)).name}"

    def generator_seed(self, seed: int, attempt: int) -> int:
        return derive_seed(seed, f"attempt{attempt}", "diffusion")

    def generate(self, impression: str, seed: int, attempt: int = 0) -> GeneratedImage:
        import torch

        gen = torch.Generator(device=self.device).manual_seed(self.generator_seed(seed, attempt))
        kwargs: dict[str, Any] = dict(
            prompt=impression,
            num_inference_steps=self.steps,
            guidance_scale=self.guidance_scale,
            height=self.height,
            width=self.width,
            generator=gen,
            output_type="np",
        )
        if self.negative_prompt:
            kwargs["negative_prompt"] = self.negative_prompt
        with torch.no_grad():
            images = self.pipe(**kwargs).images  # (1, H, W, 3) float in [0, 1]
        return GeneratedImage(image=to_gray_uint8(images[0]))


def to_gray_uint8(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) float [0, 1] -> (H, W) uint8; channel mean, since a CXR model's channels are copies."""
    gray = np.asarray(rgb, dtype=np.float32).mean(axis=-1)  # (H, W)
    gray = np.nan_to_num(gray, nan=0.0)
    return np.clip(np.rint(gray * 255.0), 0, 255).astype(np.uint8)
