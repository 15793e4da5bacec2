"""Acquisition faults injected into a generator's films, so image QC has something to catch.

Real collections hold a few percent of films a reader would reject (rotated, cut off, badly
exposed, a foreign object over the lungs). A renderer that never makes one leaves the QC stage
nothing to do, and the "without image QC" ablation would then measure nothing. `FaultyGenerator`
wraps any `ImageGenerator`: each drawn film becomes defective with probability `rate`, decided
from the request's own seed and attempt (so a redraw is a fresh chance, and the same seed always
gives the same bytes, whatever the batch). The defect's name is recorded in the image's `meta`
("defect_<name>": 1.0); masks are left as drawn, so a defect that QC misses is a real label error.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from syncxr.errors import UserError
from syncxr.image.base import GeneratedImage, ImageRequest, ImageResult
from syncxr.qc.defects import DEFECTS, apply_defect
from syncxr.records import derive_seed


class FaultyGenerator:
    """`inner` with acquisition faults at `rate` (module docstring)."""

    def __init__(self, inner: Any, rate: float, defects: Sequence[str] | None = None) -> None:
        if not 0.0 <= rate <= 1.0:
            raise UserError(f"image.defect_rate must be in [0, 1], got {rate}")
        chosen = tuple(defects) if defects else DEFECTS
        unknown = sorted(set(chosen) - set(DEFECTS))
        if unknown:
            raise UserError(f"image.defects: unknown defect(s) {unknown}; expected some of: {', '.join(DEFECTS)}")
        self.inner, self.rate, self.defects = inner, float(rate), chosen
        self.backend_id = f"{inner.backend_id}+faults{self.rate:g}"

    def fault(self, seed: int, attempt: int) -> str | None:
        """The defect this (seed, attempt) draws, or None for a clean film."""
        rng = np.random.default_rng(derive_seed(seed, "acquisition-fault", str(attempt)))
        if rng.random() >= self.rate:
            return None
        return self.defects[int(rng.integers(len(self.defects)))]

    def _spoil(self, result: ImageResult, request: ImageRequest) -> ImageResult:
        defect = self.fault(request.seed, request.attempt)
        if defect is None or isinstance(result, Exception):
            return result
        rng = np.random.default_rng(derive_seed(request.seed, "acquisition-fault-draw", str(request.attempt)))
        image = apply_defect(result.image, defect, rng)
        return GeneratedImage(image, result.masks, {**result.meta, f"defect_{defect}": 1.0})

    def generate(self, impression: str, seed: int, attempt: int = 0) -> GeneratedImage:
        out = self._spoil(self.inner.generate(impression, seed, attempt), ImageRequest(impression, seed, attempt))
        assert isinstance(out, GeneratedImage)
        return out

    def generate_batch(self, requests: Sequence[ImageRequest]) -> list[ImageResult]:
        return [self._spoil(r, q) for r, q in zip(self.inner.generate_batch(requests), requests)]
