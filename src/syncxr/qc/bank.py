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
import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError

from syncxr.errors import UserError
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
        }

    def save(self, path: str | Path) -> Path:
        """Write `path` (.npz) and its `.json` sidecar; returns the .npz path."""
        path = Path(path).with_suffix(".npz")
        path.parent.mkdir(parents=True, exist_ok=True)
        labels = np.array(self.labels, dtype=str) if self.labels else np.zeros(0, dtype="<U1")
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(tmp, features=self.features, labels=labels)
        tmp.replace(path)  # atomic: a reader never sees half a bank
        path.with_suffix(".json").write_text(json.dumps(self.sidecar(), indent=2) + "\n")
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
        except (ValueError, KeyError, OSError, json.JSONDecodeError) as e:
            raise UserError(f"problem bank {path}: unreadable ({e}); rebuild it with `syncxr qc build-bank`") from e
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
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("L"))
    except (OSError, UnidentifiedImageError) as e:
        raise UserError(f"problem image {path}: cannot be read as an image ({e}); expected a PNG/JPEG file") from e


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
    arrays, tags = [], []
    for i, item in enumerate(images):
        if isinstance(item, np.ndarray):
            arrays.append(item)
            tags.append("problem")
        else:
            arrays.append(_load_gray(Path(item)))
            tags.append(Path(item).stem)
    extractor = resolve_features(feature_backend)
    feats = extractor.features(arrays)
    return ProblemBank(feats, list(labels) if labels is not None else tags, extractor.backend_id)
