"""Diffusion image generator: RoentGen or any diffusers text-to-image pipeline.

The prompt is the IMPRESSION only (as in the SynCXR recipe). Each (seed, attempt) seeds its own
torch.Generator, so a regeneration after a QC reject is a new draw, a rerun is the same draw, and
an image never depends on its batch-mates: a batch is one pipeline call with a *list* of
generators, one per request. No masks: a diffusion model does not say where it drew a finding.

Any family diffusers can load works: SD 1.x/2.x (RoentGen), SD3, PixArt-alpha/Sigma, Sana, Flux,
Lumina... (SD-1, PixArt-Sigma and Sana are tested with tiny random models). The pipeline class comes from the checkpoint's `model_index.json` (through
`AutoPipelineForText2Image`, or `DiffusionPipeline` for classes the auto mapping lacks); per-family
knobs go through `load_options` (from_pretrained keywords) and `call_options` (pipeline-call
keywords such as PixArt/Sana's `use_resolution_binning` or `max_sequence_length`).
"""

from __future__ import annotations

import inspect
import logging
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from syncxr.errors import InfrastructureError, UserError
from syncxr.fsio import missing_dependency
from syncxr.image.base import GeneratedImage, ImageRequest, ImageResult
from syncxr.records import derive_seed

log = logging.getLogger(__name__)

_DTYPES = ("float32", "float16", "bfloat16")
# Keywords the generator sets itself; a call_options entry may not override them.
_OWN_CALL_KEYS = {"prompt", "generator", "num_inference_steps", "guidance_scale", "height", "width", "output_type"}


class DiffusionGenerator:
    """ImageGenerator over a diffusers text-to-image pipeline loaded from a folder or hub name.

    steps / guidance_scale / height / width are the usual sampling knobs (RoentGen was trained at
    512 px; 75 steps and guidance 4 are its authors' suggestion, fewer steps are fine for drafts).
    batch_size: prompts per pipeline call (halved on CUDA out-of-memory, down to 1).
    dtype: float32, or bfloat16 / float16 on a GPU (bfloat16 avoids the SD VAE's fp16 overflow).
    pipeline: "auto" (from model_index.json) or a diffusers pipeline class name to force one.
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
        batch_size: int = 8,
        pipeline: str = "auto",
        load_options: dict[str, Any] | None = None,
        call_options: dict[str, Any] | None = None,
    ) -> None:
        try:
            import torch
            import diffusers  # noqa: F401
        except ImportError as e:
            raise missing_dependency("the diffusion image generator", e, "diffusion") from None
        if dtype not in _DTYPES:
            raise UserError(f"image.options.dtype {dtype!r} is not one of {', '.join(_DTYPES)}")
        if height % 8 or width % 8:
            raise UserError(f"image size {height}x{width} must be a multiple of 8 (the VAE downsamples by 8)")
        if batch_size < 1:
            raise UserError(f"image.options.batch_size must be at least 1, got {batch_size}")
        clash = sorted(_OWN_CALL_KEYS & set(call_options or {}))
        if clash:
            raise UserError(
                f"image.options.call_options may not set {clash}: use the generator's own options "
                "(steps, guidance_scale, height, width) instead"
            )
        self.pipe = load_pipeline(str(model), pipeline, getattr(torch, dtype), dict(load_options or {}))
        self.pipe.to(device)
        self.pipe.set_progress_bar_config(disable=True)
        self.device = device
        self.dtype = dtype
        self.steps = steps
        self.guidance_scale = guidance_scale
        self.height = height
        self.width = width
        self.negative_prompt = negative_prompt
        self.batch_size = batch_size
        self._call_params = {
            name for name, p in inspect.signature(self.pipe.__call__).parameters.items() if p.kind is not p.VAR_KEYWORD
        }
        self.call_options = dict(call_options or {})
        unknown = sorted(k for k in self.call_options if k not in self._call_params)
        if unknown:
            raise UserError(
                f"image.options.call_options {unknown} are not parameters of {type(self.pipe).__name__}; "
                f"accepted: {', '.join(sorted(self._call_params - _OWN_CALL_KEYS))}"
            )
        self._tokenizer, self._token_limit = self._prompt_tokenizer()
        self.backend_id = f"diffusion:{Path(str(model)).name}"

    # --- seeds and prompt accounting ---------------------------------------------------------

    def generator_seed(self, seed: int, attempt: int) -> int:
        return derive_seed(seed, f"attempt{attempt}", "diffusion")

    def _prompt_tokenizer(self) -> tuple[Any, int]:
        """The tokenizer whose length limit bounds what the model reads of the prompt, and that limit.

        Pipelines with a `max_sequence_length` call parameter (PixArt, Sana, SD3, Flux) cap their
        T5/LLM text encoder there (the highest-numbered tokenizer: `tokenizer_3` in SD3,
        `tokenizer_2` in Flux); CLIP-only pipelines cap at the tokenizer's 77. (Sana's default
        "complex human instruction" is prepended outside this budget, as Sana does.)"""
        if "max_sequence_length" in self._call_params:
            tok = next(t for t in (getattr(self.pipe, n, None) for n in ("tokenizer_3", "tokenizer_2", "tokenizer")) if t is not None)
            default = inspect.signature(self.pipe.__call__).parameters["max_sequence_length"].default
            return tok, int(self.call_options.get("max_sequence_length", default))
        tok = self.pipe.tokenizer
        if tok.model_max_length > 100_000:
            # A tokenizer saved without model_max_length pads prompts to ~1e30 tokens; the text
            # encoder's position table is the real limit (77 for CLIP).
            tok.model_max_length = self.pipe.text_encoder.config.max_position_embeddings
        return tok, int(tok.model_max_length)

    def prompt_meta(self, prompt: str) -> dict[str, float]:
        """How many tokens of the prompt (special tokens included) the text encoder saw, and 1.0
        when the prompt was longer than that and cut."""
        n = len(self._tokenizer(prompt, add_special_tokens=True, truncation=False)["input_ids"])
        return {"prompt_tokens": float(min(n, self._token_limit)), "prompt_truncated": float(n > self._token_limit)}

    # --- drawing -------------------------------------------------------------------------------

    def generate(self, impression: str, seed: int, attempt: int = 0) -> GeneratedImage:
        result = self.generate_batch([ImageRequest(impression, seed, attempt)])[0]
        if isinstance(result, Exception):
            raise result
        return result

    def generate_batch(self, requests: Sequence[ImageRequest]) -> list[ImageResult]:
        """One result per request, in order; chunks of `batch_size` prompts per pipeline call.

        CUDA out of memory halves the chunk (the smaller size is kept for later calls); at one
        prompt it raises InfrastructureError. Any other failure of a chunk is retried prompt by
        prompt, so one bad prompt is that sample's error, not its batch-mates'."""
        out: list[ImageResult] = []
        lo = 0
        while lo < len(requests):
            chunk = list(requests[lo : lo + self.batch_size])
            try:
                out.extend(self._draw(chunk))
            except InfrastructureError:
                raise
            except Exception as e:
                if _is_oom(e):
                    self._shrink_after_oom(e)
                    continue
                if len(chunk) == 1:
                    out.append(e)
                else:
                    out.extend(self._one_by_one(chunk))
            lo += len(chunk)
        return out

    def _one_by_one(self, chunk: list[ImageRequest]) -> list[ImageResult]:
        out: list[ImageResult] = []
        for r in chunk:
            try:
                out.extend(self._draw([r]))
            except Exception as e:
                if _is_oom(e):
                    raise InfrastructureError(f"CUDA out of memory drawing one {self.height}x{self.width} image: {e}") from e
                out.append(e)
        return out

    def _shrink_after_oom(self, error: Exception) -> None:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        if self.batch_size == 1:
            raise InfrastructureError(
                f"CUDA out of memory at batch size 1 ({self.height}x{self.width}, {self.dtype}): {error}; "
                "use a smaller image size, dtype bfloat16, or a GPU with more memory"
            ) from error
        self.batch_size = max(1, self.batch_size // 2)
        log.warning("CUDA out of memory: diffusion batch size halved to %d", self.batch_size)

    def _draw(self, chunk: list[ImageRequest]) -> list[GeneratedImage]:
        """One pipeline call for the chunk, one torch.Generator per request."""
        import torch

        gens = [
            torch.Generator(device=self.device).manual_seed(self.generator_seed(r.seed, r.attempt)) for r in chunk
        ]
        kwargs: dict[str, Any] = dict(self.call_options)
        kwargs.update(
            prompt=[r.prompt for r in chunk],
            num_inference_steps=self.steps,
            guidance_scale=self.guidance_scale,
            height=self.height,
            width=self.width,
            generator=gens,
            output_type="np",
        )
        if self.negative_prompt:
            kwargs["negative_prompt"] = [self.negative_prompt] * len(chunk)
        with torch.inference_mode():
            images = self.pipe(**kwargs).images  # (B, H, W, 3) float in [0, 1]
        return [
            GeneratedImage(image=to_gray_uint8(img), meta=self.prompt_meta(r.prompt)) for img, r in zip(images, chunk)
        ]


def load_pipeline(model: str, pipeline: str, torch_dtype: Any, load_options: dict[str, Any]) -> Any:
    """A diffusers text-to-image pipeline from a folder or hub name (no safety checker)."""
    import diffusers

    try:
        index = diffusers.DiffusionPipeline.load_config(model)
    except (OSError, ValueError) as e:
        raise UserError(
            f"could not load a diffusion pipeline from {model!r}: {e}. Expected a local folder or hub name in "
            "diffusers layout (model_index.json plus one folder per component: unet/ or transformer/, vae/, "
            "text_encoder/, tokenizer/, scheduler/)."
        ) from None
    options = dict(load_options)
    if "safety_checker" in index:
        # trained on natural photos, it blanks radiographs at random
        options.setdefault("safety_checker", None)
        options.setdefault("requires_safety_checker", False)
    if pipeline == "auto":
        cls = _auto_class(str(index.get("_class_name", "")))
    else:
        cls = getattr(diffusers, pipeline, None)
        if cls is None or not hasattr(cls, "from_pretrained"):
            raise UserError(
                f"image.options.pipeline {pipeline!r} is not a diffusers pipeline class; use 'auto' or a class "
                "name such as StableDiffusionPipeline, PixArtSigmaPipeline, SanaPipeline"
            )
    try:
        return cls.from_pretrained(model, dtype=torch_dtype, **options)
    except (OSError, ValueError, TypeError) as e:
        raise UserError(
            f"could not load a diffusion pipeline from {model!r} with {getattr(cls, '__name__', cls)}: {e}"
        ) from None


def _auto_class(class_name: str) -> Any:
    """AutoPipelineForText2Image when it knows the checkpoint's class, else DiffusionPipeline."""
    import diffusers
    from diffusers.pipelines.auto_pipeline import AUTO_TEXT2IMAGE_PIPELINES_MAPPING

    if any(cls.__name__ == class_name for cls in AUTO_TEXT2IMAGE_PIPELINES_MAPPING.values()):
        return diffusers.AutoPipelineForText2Image
    return diffusers.DiffusionPipeline


def _is_oom(error: BaseException) -> bool:
    import torch

    oom = getattr(torch, "OutOfMemoryError", None) or torch.cuda.OutOfMemoryError
    return isinstance(error, oom)


def to_gray_uint8(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) float [0, 1] -> (H, W) uint8; channel mean, since a CXR model's channels are copies."""
    gray = np.asarray(rgb, dtype=np.float32).mean(axis=-1)  # (H, W)
    gray = np.nan_to_num(gray, nan=0.0)
    return np.clip(np.rint(gray * 255.0), 0, 255).astype(np.uint8)
