"""The problematic-image bank: features of known-bad images, compared against each new image.

In the paper the bank holds real images that a multimodal LLM judged problematic, embedded with
RAD-DINO. Here it can be built two ways:

- `build_bank`: render phantom radiographs and apply each known defect (image.phantom.defects);
- `bank_from_images`: embed a user's own problematic images (e.g. flagged by an MLLM judge).

On disk a bank is `bank.npz` (features float32 (N, D), labels as a fixed-width unicode array:
loadable with allow_pickle=False) plus a `bank.json` sidecar (backend id, shape, label counts).
"""

from __future__ import annotations

import json
import zipfile
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from syncxr.errors import UserError
from syncxr.fsio import atomic_path, write_json_atomic
from syncxr.imread import ImageReadError, read_gray
from syncxr.qc.defects import DEFECTS, apply_defect
from syncxr.qc.base import FEATURES, FeatureExtractor
from syncxr.records import derive_seed

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
# (seed, size) -> (size, size) uint8 clean radiograph.
Renderer = Callable[[int, int], np.ndarray]


@dataclass
class ProblemBank:
    features: np.ndarray  # (N, D) float32, L2-normalised rows
    labels: list[str]  # N labels: the defect name or the user's tag of each image
    backend_id: str  # feature backend that produced `features`; a filter must use the same one
    skipped: dict[str, int] = field(default_factory=dict)  # images left out when building, by reason

    def __post_init__(self) -> None:
        self.features = np.asarray(self.features, dtype=np.float32)
        self.labels = [str(x) for x in self.labels]
        if self.features.ndim != 2 or len(self.labels) != len(self.features):
            raise UserError(
                f"problem bank: expected features of shape (N, D) and N labels, got {self.features.shape} "
                f"and {len(self.labels)} labels"
            )

    def __len__(self) -> int:
        return len(self.labels)

    def sidecar(self) -> dict:
        return {
            "format": "syncxr-problem-bank",
            "version": FORMAT_VERSION,
            "backend_id": self.backend_id,
            "n": len(self),
            "dim": int(self.features.shape[1]),
            "label_counts": dict(sorted(Counter(self.labels).items())),
            **({"skipped": dict(sorted(self.skipped.items()))} if self.skipped else {}),
        }

    def save(self, path: str | Path) -> Path:
        """Write the bank (.npz) and its `.json` sidecar atomically; returns the .npz path.

        `path` is used as given when it ends in .npz; an existing folder gets `bank.npz` inside
        it; any other path gets `.npz` appended (`bank` -> `bank.npz`, `bank.v2` -> `bank.v2.npz`).
        """
        path = bank_path(path)
        labels = np.array(self.labels, dtype=str) if self.labels else np.zeros(0, dtype="<U1")
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:  # a file object: np.savez would append .npz to a path
                np.savez(f, features=self.features, labels=labels)
        write_json_atomic(path.with_suffix(".json"), self.sidecar(), sort_keys=False)
        return path

    @classmethod
    def load(cls, path: str | Path) -> "ProblemBank":
        """Read a bank written by `save` (never unpickles)."""
        path = Path(path)
        side_path = path.with_suffix(".json")
        if not path.is_file() or not side_path.is_file():
            raise UserError(
                f"problem bank {path}: expected {path.with_suffix('.npz').name} and {side_path.name} side by side; "
                "build one with `syncxr qc build-bank --out bank.npz`"
            )
        try:
            side = json.loads(side_path.read_text())
            with np.load(path, allow_pickle=False) as z:
                features, labels = z["features"], z["labels"]
        except (ValueError, KeyError, OSError, EOFError, zipfile.BadZipFile) as e:
            raise UserError(f"problem bank {path}: unreadable ({e}); rebuild it with `syncxr qc build-bank`") from None
        if not isinstance(side, dict):
            raise UserError(f"problem bank {side_path}: expected a JSON object, got a {type(side).__name__}; rebuild the bank")
        if side.get("format") != "syncxr-problem-bank" or side.get("version") != FORMAT_VERSION:
            raise UserError(
                f"problem bank {side_path}: expected format 'syncxr-problem-bank' version {FORMAT_VERSION}, "
                f"got {side.get('format')!r} version {side.get('version')!r}; rebuild the bank"
            )
        if features.shape != (side.get("n"), side.get("dim")):
            raise UserError(
                f"problem bank {path}: features shape {features.shape} disagrees with the sidecar "
                f"(n={side.get('n')}, dim={side.get('dim')}); the two files do not belong together"
            )
        return cls(features, [str(x) for x in labels], str(side["backend_id"]))


def bank_path(path: str | Path) -> Path:
    """Where `save(path)` writes the .npz (see ProblemBank.save)."""
    p = Path(path)
    if p.is_dir():
        return p / "bank.npz"
    return p if p.suffix.lower() == ".npz" else p.with_name(p.name + ".npz")


def resolve_features(backend: str | FeatureExtractor) -> FeatureExtractor:
    """A feature extractor from its registry name (e.g. 'builtin') or an instance."""
    if not isinstance(backend, str):
        return backend
    import syncxr.qc.features  # noqa: F401  (registers 'builtin')

    try:
        return FEATURES.build(backend)
    except KeyError as e:
        raise UserError(str(e.args[0])) from None


def phantom_renderer(max_findings: int = 2) -> Renderer:
    """The built-in phantom radiograph as a (seed, size) -> uint8 function.

    Each seed draws 0..max_findings random findings (devices included), so banks and measurements
    cover the variety of clean images the generator produces, e.g. a pacemaker is not a defect.
    """

    def render(seed: int, size: int) -> np.ndarray:
        from syncxr.image.phantom.render import render_phantom  # sibling module, imported late
        from syncxr.image.phantom.spec import FINDINGS, FindingSpec

        rng = np.random.default_rng(derive_seed(seed, "qc-findings"))
        names = rng.choice(FINDINGS, size=int(rng.integers(0, max_findings + 1)), replace=False)
        return render_phantom([FindingSpec(str(n)) for n in names], seed, size).image

    return render


def build_bank(
    n_per_defect: int,
    size: int = 256,
    seed: int = 0,
    feature_backend: str | FeatureExtractor = "builtin",
    defects: Sequence[str] = DEFECTS,
    render: Renderer | None = None,
) -> ProblemBank:
    """Render clean radiographs, apply each defect `n_per_defect` times, embed them all.

    Seeds come from derive_seed(seed, 'bank/<defect>/<i>'), so bank images never coincide with the
    'eval/...' images `evaluate_filter` measures on.
    """
    if n_per_defect < 1:
        raise UserError(f"build_bank: n_per_defect must be >= 1, got {n_per_defect}")
    render = render or phantom_renderer()
    extractor = resolve_features(feature_backend)
    images, labels = [], []
    for defect in defects:
        for i in range(n_per_defect):
            s = derive_seed(seed, f"bank/{defect}/{i}")
            clean = render(s, size)
            images.append(apply_defect(clean, defect, np.random.default_rng(derive_seed(s, "defect"))))
            labels.append(defect)
    log.info("problem bank: embedding %d images with %s", len(images), extractor.backend_id)
    return ProblemBank(extractor.features(images), labels, extractor.backend_id)


def _load_gray(path: Path) -> np.ndarray:
    """One problem image through the project's image reader; a too-large image is left to the
    caller (skipped and counted), any other unreadable file is a UserError."""
    try:
        return read_gray(path)
    except ImageReadError as e:
        if e.reason == "too_many_pixels":
            raise
        raise UserError(f"problem image {path}: cannot be read as an image ({e}); expected a PNG/JPEG file") from None


def bank_from_images(
    images: Sequence[str | Path | np.ndarray],
    feature_backend: str | FeatureExtractor = "builtin",
    labels: Sequence[str] | None = None,
) -> ProblemBank:
    """A bank from the user's own problematic images (paths or (H, W) uint8 arrays).

    `labels` tags each image (e.g. the MLLM judge's complaint); by default a path's file stem,
    or 'problem' for arrays.
    """
    if labels is not None and len(labels) != len(images):
        raise UserError(f"bank_from_images: {len(images)} images but {len(labels)} labels; give one label per image")
    arrays, tags, skipped = [], [], Counter()
    for i, item in enumerate(images):
        if isinstance(item, np.ndarray):
            arrays.append(item)
            tags.append("problem" if labels is None else labels[i])
            continue
        try:
            arrays.append(_load_gray(Path(item)))
        except ImageReadError as e:  # a decompression bomb: skip it, count it, carry on
            skipped[e.reason] += 1
            log.warning("problem bank: skipped %s", e)
            continue
        tags.append(Path(item).stem if labels is None else labels[i])
    if not arrays:
        raise UserError(f"problem bank: no usable image among {len(images)} (skipped: {dict(skipped)})")
    extractor = resolve_features(feature_backend)
    feats = extractor.features(arrays)
    return ProblemBank(feats, tags, extractor.backend_id, skipped=dict(skipped))
