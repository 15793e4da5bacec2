"""Protocols of image-QC backends."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from syncxr.records import Verdict
from syncxr.registry import Registry


@runtime_checkable
class FeatureExtractor(Protocol):
    backend_id: str

    def features(self, images: list[np.ndarray]) -> np.ndarray:
        """(N, D) float32 L2-normalised features of (H, W) uint8 images."""
        ...


@runtime_checkable
class ImageFilter(Protocol):
    def check(self, image: np.ndarray) -> Verdict:
        """ok, or a reason code (e.g. 'qc_bank_similarity', 'qc_too_dark') with scores."""
        ...


FEATURES: Registry[FeatureExtractor] = Registry("image feature backend")
