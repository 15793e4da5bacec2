"""The image stage: draw an image per sample from its IMPRESSION, QC it, redraw the failures
(attempt + 1) in rounds and reject after `max_attempts` with the verdict's reason. Images are
stored as 8-bit grayscale PNG, masks as 1-bit PNG.
"""

from __future__ import annotations

import logging
from typing import ClassVar

import numpy as np

from syncxr.errors import InfrastructureError
from syncxr.image.base import GeneratedImage, ImageFilter, ImageGenerator, ImageRequest
from syncxr.image.png import PNG_LEVEL, encode_mask, encode_png
from syncxr.records import Sample, Verdict
from syncxr.stage import live

log = logging.getLogger(__name__)


class ImageStage:
    """Generate an image per live sample, QC it, retry, and store PNG bytes and masks."""

    name: ClassVar[str] = "image"
    requires: ClassVar[tuple[str, ...]] = ("impression",)
    provides: ClassVar[tuple[str, ...]] = ("image_png", "masks", "image_attempts", "qc")

    def __init__(
        self,
        generator: ImageGenerator,
        image_filter: ImageFilter | None = None,
        max_attempts: int = 3,
        compress_level: int = PNG_LEVEL,
    ) -> None:
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {max_attempts}")
        self.generator = generator
        self.image_filter = image_filter
        self.max_attempts = max_attempts
        self.compress_level = compress_level

    def process(self, batch: list[Sample]) -> list[Sample]:
        """Rounds: draw every pending sample in one batched call, QC the batch, and redraw only
        the failures (attempt + 1: a new patient and a new noise draw)."""
        pending = live(batch)
        backend = getattr(self.generator, "backend_id", type(self.generator).__name__)
        last: dict[str, Verdict] = {}
        for sample in pending:
            sample.backends[self.name] = backend
        for attempt in range(self.max_attempts):
            if not pending:
                break
            pending = self._round(pending, attempt, last)
        for s in pending:
            verdict = last[s.sample_id]
            s.reject(self.name, verdict.reason or "qc_failed", verdict.detail)
        return batch

    def _round(self, pending: list[Sample], attempt: int, last: dict[str, Verdict]) -> list[Sample]:
        """One attempt for every pending sample; returns those to draw again."""
        requests = [ImageRequest(s.impression, s.seed, attempt) for s in pending]
        results = self.generator.generate_batch(requests)  # an InfrastructureError fails the shard
        drawn: list[tuple[Sample, GeneratedImage]] = []
        for s, out in zip(pending, results):
            s.image_attempts = attempt + 1
            if isinstance(out, Exception):  # one sample's failure is data, not a crash
                log.warning("image generation failed for %s: %s", s.sample_id, out)
                s.reject(self.name, "image_error", f"{type(out).__name__}: {out}")
            else:
                drawn.append((s, out))
        verdicts = self._check_all([out.image for _, out in drawn])
        again = []
        for (s, out), verdict in zip(drawn, verdicts):
            if isinstance(verdict, Exception):
                s.reject(self.name, "qc_error", f"{type(verdict).__name__}: {verdict}")
                continue
            s.qc = {**verdict.scores, **out.meta}
            if verdict.ok:
                s.image_png = encode_png(out.image, self.compress_level)
                s.masks = {k: encode_mask(m, self.compress_level) for k, m in out.masks.items()}
                continue
            s.history.append(f"image#{attempt}: {verdict.reason}")
            last[s.sample_id] = verdict
            again.append(s)
        return again

    def _check_all(self, images: list[np.ndarray]) -> list[Verdict | Exception]:
        """QC verdicts in one batch; if the batch fails, image by image, so a broken image is
        that sample's reject."""
        if self.image_filter is None:
            return [Verdict(ok=True) for _ in images]
        try:
            return list(self.image_filter.check_batch(images))
        except InfrastructureError:
            raise
        except Exception:
            out: list[Verdict | Exception] = []
            for image in images:
                try:
                    out.append(self.image_filter.check(image))
                except InfrastructureError:
                    raise
                except Exception as e:
                    out.append(e)
            return out
