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

from syncxr.errors import UserError
from syncxr.fsio import missing_dependency

log = logging.getLogger(__name__)


class RadDinoFeatures:
    """FeatureExtractor over a RAD-DINO (or any DINOv2 / ViT) checkpoint from a folder or hub name."""

    def __init__(self, model: str | Path, device: str = "cpu", batch_size: int = 16) -> None:
        try:
            import torch  # noqa: F401
            from transformers import AutoImageProcessor, AutoModel
        except ImportError as e:
            raise missing_dependency("the rad-dino features", e, "train") from None
        try:
            self.processor = AutoImageProcessor.from_pretrained(str(model))
            self.model = AutoModel.from_pretrained(str(model))
        except (OSError, ValueError) as e:
            raise UserError(
                f"could not load RAD-DINO from {str(model)!r}: {e}. Expected a local folder or hub name with "
                "config.json, weights and preprocessor_config.json (a DINOv2/ViT image model)."
            ) from None
        self.model.to(device).eval()
        self.device = device
        self.batch_size = batch_size
        self.dim = int(self.model.config.hidden_size)
        self.backend_id = f"rad-dino:{Path(str(model)).name}"

    def features(self, images: list[np.ndarray]) -> np.ndarray:
        """(N, D) float32, L2-normalised, for (H, W) uint8 grayscale images."""
        import torch

        out = []
        for lo in range(0, len(images), self.batch_size):
            batch = [_to_rgb(img, lo + i) for i, img in enumerate(images[lo : lo + self.batch_size])]
            pixels = self.processor(images=batch, return_tensors="pt")["pixel_values"].to(self.device)  # (B, 3, h, w)
            with torch.no_grad():
                result = self.model(pixel_values=pixels)
            pooled = getattr(result, "pooler_output", None)
            if pooled is None:  # a model without a pooler: take the CLS token
                pooled = result.last_hidden_state[:, 0]
            feats = torch.nn.functional.normalize(pooled.float(), dim=-1)  # (B, D)
            out.append(feats.cpu().numpy())
        if not out:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.concatenate(out).astype(np.float32, copy=False)


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
