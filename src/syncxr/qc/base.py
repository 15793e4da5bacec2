"""Protocols of image-QC backends."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from syncxr.image.base import ImageFilter  # noqa: F401  (what the image stage asks of a QC filter)
from syncxr.registry import Registry


@runtime_checkable
class FeatureExtractor(Protocol):
    backend_id: str

    def features(self, images: list[np.ndarray]) -> np.ndarray:
        """(N, D) float32 L2-normalised features of (H, W) uint8 images."""
        ...


# One line per backend: name -> "module:factory" (imported only when chosen).
FEATURES: Registry[FeatureExtractor] = Registry(
    "image feature backend",
    {
        "builtin": "syncxr.qc.features:BuiltinFeatures",
        "rad-dino": "syncxr.qc.rad_dino:RadDinoFeatures",
    },
    requires={"rad-dino": ("torch", "transformers")},
)
