"""The image stage and the built-in text-conditioned phantom generator.

`PhantomGenerator` reads the IMPRESSION with the built-in extractor, maps present/uncertain
entities whose ontology concept has a `render` id to `FindingSpec`s (absent ones draw nothing) and
renders them; each mask is stored under the concept name it draws ("vascular_congestion"). `ImageStage` generates an image per sample, runs an optional image filter,
regenerates (attempt + 1) on a failed verdict and rejects after `max_attempts` with the verdict's
reason. Images are stored as 8-bit grayscale PNG, masks as 1-bit PNG.
"""

from __future__ import annotations

import io
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from syncxr.image.base import GeneratedImage, GenerateOneByOne, ImageFilter, ImageGenerator, ImageRequest
from syncxr.image.phantom.render import VERSION as PHANTOM_VERSION, render_phantom
from syncxr.image.png import encode_bilevel_png, encode_gray_png
from syncxr.image.phantom.spec import LATERALITIES, SEVERITY_ALIASES, SEVERITIES, ZONES, FindingSpec
from syncxr.stage import live
from syncxr.errors import InfrastructureError
from syncxr.records import ABSENT, Entity, Sample, Verdict, derive_seed

log = logging.getLogger(__name__)

# compress_level 1 is ~3x faster than 6 on noisy radiographs for a few % larger files (see report)
PNG_LEVEL = 1


def encode_png(image: np.ndarray, compress_level: int = PNG_LEVEL) -> bytes:
    """(H, W) uint8 -> 8-bit grayscale PNG bytes (fast fixed-filter encoder, see image/png.py)."""
    return encode_gray_png(image, compress_level)


def encode_mask(mask: np.ndarray, compress_level: int = PNG_LEVEL) -> bytes:
    """(H, W) bool -> 1-bit grayscale PNG bytes (fast encoder, see image/png.py)."""
    return encode_bilevel_png(mask, compress_level)


def decode_png(data: bytes) -> np.ndarray:
    """PNG bytes -> (H, W) uint8 (image) or bool (1-bit mask)."""
    im = Image.open(io.BytesIO(data))
    return np.array(im) if im.mode != "1" else np.array(im, dtype=bool)


def _clean(value: str | None, allowed: tuple[str, ...]) -> str | None:
    value = SEVERITY_ALIASES.get(value or "", value)
    return value if value in allowed else None


def entities_to_specs(entities: Sequence[Entity], ontology: Any) -> list[FindingSpec]:
    """Present/uncertain entities with a `render` concept -> one spec per concept, named after it
    (its mask is stored under the concept name); sides of repeated mentions are merged."""
    by_name = ontology.by_name
    out: dict[str, FindingSpec] = {}
    for e in entities:
        concept = by_name.get(e.name)
        if e.assertion == ABSENT or concept is None or not concept.render:
            continue
        a = e.attributes or {}
        spec = FindingSpec(
            concept.render,
            _clean(a.get("laterality"), LATERALITIES),
            _clean(a.get("severity"), SEVERITIES),
            _clean(a.get("zone"), ZONES),
            entity=concept.name,
        )
        prev = out.get(concept.name)
        if prev is None:
            out[concept.name] = spec
        elif prev.laterality and spec.laterality and prev.laterality != spec.laterality:
            out[concept.name] = replace(prev, laterality="bilateral", severity=prev.severity or spec.severity,
                                        zone=prev.zone or spec.zone)
    return list(out.values())


def undrawable(ontology: Any) -> set[str]:
    """ABNORMALITY/DISEASE concepts the phantom does not draw (no `render`): the sampler should
    not offer them as present findings when `image.backend: phantom` (spec.INVISIBLE says why)."""
    return {c.name for c in ontology.concepts if c.type in ("ABNORMALITY", "DISEASE") and not c.render}


class PhantomGenerator(GenerateOneByOne):
    """Built-in procedural radiograph generator conditioned on the IMPRESSION text."""

    backend_id = PHANTOM_VERSION  # recorded per sample; bumped whenever the drawing changes

    def __init__(self, size: int = 256, extractor: Any = None, ontology: Any = None) -> None:
        self.size = size
        self._extractor = extractor
        self._ontology = ontology

    @property
    def ontology(self) -> Any:
        if self._ontology is None:
            from syncxr.vocab import load_ontology

            self._ontology = load_ontology()
        return self._ontology

    @property
    def extractor(self) -> Any:
        if self._extractor is None:  # written by the text helpers; imported lazily
            from syncxr.text.extract import LexiconExtractor

            try:
                self._extractor = LexiconExtractor(ontology=self.ontology)
            except TypeError:
                self._extractor = LexiconExtractor()
        return self._extractor

    def specs(self, impression: str) -> list[FindingSpec]:
        """The findings an IMPRESSION asks the renderer to draw."""
        return entities_to_specs(self.extractor.extract(impression, section="impression"), self.ontology)

    def generate(self, impression: str, seed: int, attempt: int = 0) -> GeneratedImage:
        """Draw an image for the IMPRESSION; a new attempt draws a different patient."""
        s = seed if attempt == 0 else derive_seed(seed, "phantom", f"attempt{attempt}")
        return render_phantom(self.specs(impression), seed=s, size=self.size)


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


def save_grid(images: Sequence[np.ndarray], captions: Sequence[str], path: str | Path, cols: int = 4) -> Path:
    """Tile (H, W) uint8 images with a caption under each into one PNG (for cards and reports)."""
    if not images:
        raise ValueError("save_grid needs at least one image")
    h, w = images[0].shape
    band = 14 * max(1, w // 256) + 4
    rows = (len(images) + cols - 1) // cols
    canvas = Image.new("L", (cols * w, rows * (h + band)), 0)
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    for i, img in enumerate(images):
        x, y = (i % cols) * w, (i // cols) * (h + band)
        canvas.paste(Image.fromarray(np.asarray(img, dtype=np.uint8)).resize((w, h)), (x, y))
        text = captions[i] if i < len(captions) else ""
        draw.text((x + 3, y + h + 2), text[: max(8, w // 6)], fill=255, font=font)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(out)
    return out
