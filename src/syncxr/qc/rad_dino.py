"""RAD-DINO image features: a DINOv2 ViT (transformers AutoModel) trained on chest X-rays.

The feature of an image is the model's pooled CLS embedding (pooler_output: the final
layer-normed CLS token), L2-normalised. Grayscale radiographs are repeated to three channels,
which is how RAD-DINO was trained; resizing / cropping / normalisation follow the checkpoint's
own image-processor config.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from syncxr.errors import InfrastructureError, UserError
from syncxr.fsio import missing_dependency

log = logging.getLogger(__name__)


_DTYPES = ("float32", "float16", "bfloat16")


class RadDinoFeatures:
    """FeatureExtractor over a RAD-DINO (or any DINOv2 / ViT) checkpoint from a folder or hub name.

    dtype: float32, or bfloat16 / float16 on a GPU (features are normalised in float32)."""

    def __init__(self, model: str | Path, device: str = "cpu", batch_size: int = 16, dtype: str = "float32") -> None:
        try:
            import torch
            from transformers import AutoImageProcessor, AutoModel
        except ImportError as e:
            raise missing_dependency("the rad-dino features", e, "train") from None
        if dtype not in _DTYPES:
            raise UserError(f"qc.feature_options.dtype {dtype!r} is not one of {', '.join(_DTYPES)}")
        try:
            self.processor = AutoImageProcessor.from_pretrained(str(model))
            self.model = AutoModel.from_pretrained(str(model))
        except (OSError, ValueError) as e:
            raise UserError(
                f"could not load RAD-DINO from {str(model)!r}: {e}. Expected a local folder or hub name with "
                "config.json, weights and preprocessor_config.json (a DINOv2/ViT image model)."
            ) from None
        self.dtype = getattr(torch, dtype)
        self.model.to(device=device, dtype=self.dtype).eval()
        self.device = device
        self.batch_size = batch_size
        self.dim = int(self.model.config.hidden_size)
        self.backend_id = f"rad-dino:{Path(str(model)).name}"

    def features(self, images: list[np.ndarray]) -> np.ndarray:
        """(N, D) float32, L2-normalised, for (H, W) uint8 grayscale images."""
        import torch

        out = []
        lo = 0
        while lo < len(images):
            batch = [_to_rgb(img, lo + i) for i, img in enumerate(images[lo : lo + self.batch_size])]
            try:
                out.append(self._embed(batch))
            except torch.OutOfMemoryError as e:  # halve; at batch 1 the shard fails, not the samples
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
                if self.batch_size <= 1:
                    raise InfrastructureError(f"rad-dino: CUDA out of memory at batch size 1: {e}") from e
                self.batch_size //= 2
                log.warning("rad-dino: CUDA out of memory, batch size halved to %d", self.batch_size)
                continue
            lo += len(batch)
        if not out:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.concatenate(out).astype(np.float32, copy=False)

    def _embed(self, batch: list[np.ndarray]) -> np.ndarray:
        """(B, D) normalised features of (H, W, 3) uint8 images."""
        import torch

        pixels = self.processor(images=batch, return_tensors="pt")["pixel_values"]  # (B, 3, h, w)
        pixels = pixels.to(device=self.device, dtype=self.dtype)
        with torch.inference_mode():
            result = self.model(pixel_values=pixels)
        pooled = getattr(result, "pooler_output", None)
        if pooled is None:  # a model without a pooler: take the CLS token
            pooled = result.last_hidden_state[:, 0]  # (B, D)
        return torch.nn.functional.normalize(pooled.float(), dim=-1).cpu().numpy()  # (B, D)


def _to_rgb(image: np.ndarray, index: int) -> np.ndarray:
    """(H, W) uint8 -> (H, W, 3) uint8 with the gray channel repeated."""
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim != 2 or arr.dtype != np.uint8:
        raise UserError(
            f"image {index}: expected an (H, W) uint8 grayscale array, got shape {arr.shape} dtype {arr.dtype}"
        )
    return np.repeat(arr[..., None], 3, axis=-1)
