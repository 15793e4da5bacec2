"""The evaluation dataset contract (torchxrayvision-like) and the helpers every loader shares.

An `EvalDataset` is a table: `labels` (N, K) float32 in {1, 0, NaN = unknown} over `findings`
(shared snake_case names, see data/relabel.py), and `meta`, a row-aligned DataFrame with at least
the columns `path` (absolute image path), `image_id`, `view`, `patient_id`, `split`. Images are
read lazily by `.image(i)` as (H, W) uint8. Boxes are (finding, x, y, w, h) in pixels of the image
file as distributed (`meta["box_frame_w"/"box_frame_h"]` name that frame); masks come from a
per-dataset function of the meta row.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from syncxr.data.relabel import merge_columns
from syncxr.errors import UserError
from syncxr import fsio
from syncxr.fsio import missing_dependency
from syncxr.imread import ImageReadError, read_gray
from syncxr.imread import to_uint8 as _to_uint8

log = logging.getLogger(__name__)

Box = tuple[str, float, float, float, float]  # (finding, x, y, w, h)
MaskFn = Callable[[pd.Series, str, tuple[int, int]], "np.ndarray | None"]

META_COLUMNS = ("path", "image_id", "view", "patient_id", "split")
FRONTAL_VIEWS = frozenset({"PA", "AP", "AP_HORIZONTAL", "AP_SUPINE", "FRONTAL"})
LATERAL_VIEWS = frozenset({"LATERAL", "L", "LL", "RL"})
IMAGE_EXTS = (".png", ".jpg", ".jpeg")
LOW_RANGE = 48  # grey levels between the 1st and 99th percentile below which a warning is logged


class ImageRangeError(UserError):
    """An image that is not a usable 8-bit radiograph after loading (constant, wrong bit depth)."""


# ----------------------------------------------------------------------------- image reading


def to_uint8(arr: np.ndarray, path: str | Path = "<array>") -> np.ndarray:
    """(H, W) array of any dtype -> uint8 (syncxr.imread.to_uint8); a mask is an ImageRangeError."""
    try:
        return _to_uint8(arr, path)
    except ImageReadError as e:
        raise ImageRangeError(str(e)) from None


def check_range(img: np.ndarray, path: str | Path, min_range: int = 8) -> None:
    """Raise ImageRangeError when an image is not a usable 8-bit radiograph.

    Catches the silent failures of evaluation pipelines: a 16-bit image read as 8-bit (all black
    or all white), a blank or corrupt file, a mask passed as an image (values 0..1).
    """
    if img.dtype != np.uint8 or img.ndim != 2:
        raise ImageRangeError(f"{path}: expected an (H, W) uint8 image, got {img.dtype} {img.shape}")
    lo, hi = np.percentile(img, [1, 99])
    if hi - lo < min_range:
        raise ImageRangeError(
            f"{path}: image is nearly constant after loading (1st-99th percentile {lo:.0f}..{hi:.0f}, "
            f"min {int(img.min())}, max {int(img.max())}); expected an 8-bit radiograph spanning "
            "0-255. Check the file (blank/corrupt?) and its bit depth (16-bit PNG, DICOM)."
        )
    if hi - lo < LOW_RANGE:
        # e.g. 12-bit data divided by 256 into 8 bits: loads fine, evaluates badly
        log.warning("%s: low dynamic range after loading (1st-99th percentile %.0f..%.0f of 0..255); "
                    "check how the file was converted to 8 bits", path, lo, hi)


def read_dicom(path: Path) -> np.ndarray:
    """Pixel data of a DICOM file, rescaled and with MONOCHROME1 inverted (needs pydicom)."""
    try:
        import pydicom
    except ImportError as e:
        raise missing_dependency(f"reading DICOM ({path})", e, None, "pydicom") from None
    ds = pydicom.dcmread(str(path))
    arr = ds.pixel_array.astype(np.float64)
    arr = arr * float(getattr(ds, "RescaleSlope", 1.0)) + float(getattr(ds, "RescaleIntercept", 0.0))
    if str(getattr(ds, "PhotometricInterpretation", "")) == "MONOCHROME1":
        arr = arr.max() - arr  # MONOCHROME1 stores air bright; radiographs show air dark
    return arr


def load_gray_u8(path: str | Path, strict: bool = True) -> np.ndarray:
    """Read one image file as (H, W) uint8 grayscale, with the range check (see check_range)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"image not found: {path}")
    try:
        img = to_uint8(np.asarray(read_dicom(path)), path) if path.suffix.lower() == ".dcm" else read_gray(path)
    except ImageReadError as e:
        raise UserError(str(e)) from None
    try:
        check_range(img, path)
    except ImageRangeError:
        if strict:
            raise
        log.warning("image range check failed for %s (strict=False: returned as is)", path)
    return img


def image_shape(path: str | Path) -> tuple[int, int]:
    """(H, W) of an image file, read from its header."""
    with Image.open(path) as im:
        return im.size[1], im.size[0]


# ----------------------------------------------------------------------------- file helpers


def find_file(data_dir: Path, candidates: Sequence[str], what: str) -> Path:
    """First existing `data_dir/candidate`, else a UserError listing what was tried."""
    for name in candidates:
        p = data_dir / name
        if p.is_file():
            return p
    tried = ", ".join(str(data_dir / c) for c in candidates)
    raise UserError(f"{what} not found; looked for: {tried}. Point data_dir at the dataset folder.")


def read_csv(path: Path, required: Iterable[str], **kw: Any) -> pd.DataFrame:
    """Read a CSV and check its columns (the one CSV reader, syncxr.fsio.read_csv)."""
    return fsio.read_csv(path, required, **kw)


def index_images(dirs: Iterable[Path], exts: Sequence[str] = IMAGE_EXTS) -> dict[str, Path]:
    """Map file stem -> path for the images in the first of `dirs` that holds any."""
    for d in dirs:
        if not d.is_dir():
            continue
        found = {
            p.stem: p for p in sorted(d.iterdir()) if p.is_file() and p.suffix.lower() in exts
        }
        if found:
            return found
    return {}


def keep_found(dataset: str, ids: Sequence[str], images: Mapping[str, Path], expected: str) -> list[str]:
    """The ids that have an image; warns about missing ones (partial downloads are common) and
    refuses when none is left. `expected` completes "no image ..." in that message."""
    missing = [i for i in ids if i not in images]
    if missing:
        log.warning("%s: %d of %d images missing (first: %s); dropped", dataset, len(missing), len(ids), missing[0])
    kept = [i for i in ids if i in images]
    if not kept:
        raise UserError(f"{dataset}: no image {expected}")
    return kept


def resolve_paths(rel: Sequence[str], bases: Sequence[Path], what: str) -> list[str]:
    """Resolve relative image paths against the first base where the first path exists."""
    if not rel:
        return []
    for base in bases:
        if (base / rel[0]).exists():
            return [str(base / r) for r in rel]
    raise UserError(
        f"{what}: image {rel[0]!r} not found under any of {[str(b) for b in bases]}; "
        "point data_dir at the folder the CSV paths are relative to"
    )


def normalize_view(v: Any) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return "UNKNOWN"
    s = str(v).strip().upper().replace(" ", "_")
    return s or "UNKNOWN"


# ----------------------------------------------------------------------------- the dataset


class EvalDataset:
    """Images + labels (N, K) over `findings` + row-aligned `meta`; optional boxes and masks.

    task: "multilabel" (independent binary findings, NaN = unknown) or "multiclass" (one-hot
    rows; `targets` gives the class index).
    """

    def __init__(
        self,
        name: str,
        findings: Sequence[str],
        labels: np.ndarray,
        meta: pd.DataFrame,
        *,
        task: str = "multilabel",
        boxes: Sequence[list[Box]] | None = None,
        mask_fn: MaskFn | None = None,
        strict_images: bool = True,
    ) -> None:
        labels = np.asarray(labels, dtype=np.float32)
        if labels.ndim != 2 or labels.shape != (len(meta), len(findings)):
            raise ValueError(f"labels {labels.shape} do not match meta {len(meta)} x findings {len(findings)}")
        missing = [c for c in META_COLUMNS if c not in meta.columns]
        if missing:
            raise ValueError(f"meta lacks columns {missing}")
        if task not in ("multilabel", "multiclass"):
            raise ValueError(f"task must be multilabel or multiclass, got {task!r}")
        self.name = name
        self.findings = list(findings)
        self.labels = labels
        self.meta = meta.reset_index(drop=True)
        self.task = task
        self._boxes = list(boxes) if boxes is not None else None
        self._mask_fn = mask_fn
        self.strict_images = strict_images

    def __len__(self) -> int:
        return len(self.meta)

    def __repr__(self) -> str:
        return f"EvalDataset({self.name!r}, n={len(self)}, findings={self.findings})"

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"index": i, "image": self.image(i), "labels": self.labels[i]}

    # -- per-item access
    def image(self, i: int) -> np.ndarray:
        """(H, W) uint8 grayscale image of row i (range-checked: see check_range)."""
        return load_gray_u8(self.meta.at[i, "path"], strict=self.strict_images)

    @property
    def has_boxes(self) -> bool:
        return self._boxes is not None

    @property
    def has_masks(self) -> bool:
        return self._mask_fn is not None

    def boxes(self, i: int, image_shape: tuple[int, int] | None = None) -> list[Box]:
        """Boxes of row i as (finding, x, y, w, h) in the original image frame.

        With image_shape=(H, W) the boxes are rescaled from the frame in meta box_frame_h/w to
        that shape (for images resized after download).
        """
        if self._boxes is None:
            return []
        out = list(self._boxes[i])
        if image_shape is not None and "box_frame_w" in self.meta.columns:
            sx = image_shape[1] / float(self.meta.at[i, "box_frame_w"])
            sy = image_shape[0] / float(self.meta.at[i, "box_frame_h"])
            out = [(f, x * sx, y * sy, w * sx, h * sy) for f, x, y, w, h in out]
        return out

    def mask(self, i: int, finding: str) -> np.ndarray | None:
        """(H, W) bool mask of `finding` in row i; None where the dataset has no masks for it."""
        if self._mask_fn is None:
            return None
        shape = image_shape(self.meta.at[i, "path"])
        return self._mask_fn(self.meta.iloc[i], finding, shape)

    @property
    def targets(self) -> np.ndarray:
        """(N,) int class index of a multiclass dataset."""
        if self.task != "multiclass":
            raise UserError(f"{self.name}: targets are defined for multiclass datasets only")
        return np.argmax(np.nan_to_num(self.labels, nan=0.0), axis=1)

    # -- derived datasets
    def _derive(self, idx: np.ndarray, findings: list[str] | None = None,
                labels: np.ndarray | None = None) -> "EvalDataset":
        return EvalDataset(
            self.name,
            findings if findings is not None else self.findings,
            labels if labels is not None else self.labels[idx],
            self.meta.iloc[idx],
            task=self.task,
            boxes=[self._boxes[j] for j in idx] if self._boxes is not None else None,
            mask_fn=self._mask_fn,
            strict_images=self.strict_images,
        )

    def subset(self, indices: Sequence[int] | np.ndarray) -> "EvalDataset":
        """Rows `indices` (any order, repeats allowed), as a new dataset."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < -len(self) or idx.max() >= len(self)):
            raise UserError(f"{self.name}: subset indices out of range 0..{len(self) - 1}")
        return self._derive(idx)

    def view_filter(self, views: str | Iterable[str]) -> "EvalDataset":
        """Keep rows whose view is in `views` (case-insensitive; "frontal"/"lateral" are groups)."""
        wanted: set[str] = set()
        for v in [views] if isinstance(views, str) else views:
            key = normalize_view(v)
            wanted |= FRONTAL_VIEWS if key == "FRONTAL" else LATERAL_VIEWS if key == "LATERAL" else {key}
        have = self.meta["view"].map(normalize_view)
        idx = np.flatnonzero(have.isin(wanted).to_numpy())
        if idx.size == 0:
            raise UserError(
                f"{self.name}: no image has a view in {sorted(wanted)}; views present: "
                f"{sorted(have.unique())}"
            )
        return self._derive(idx)

    def relabel(self, vocab_map: Mapping[str, str | None] | str, keep_unmapped: bool = True) -> "EvalDataset":
        """Map findings onto other names (merging several onto one: positive if any is)."""
        findings, labels = merge_columns(self.findings, self.labels, vocab_map, keep_unmapped)
        return self._derive(np.arange(len(self)), findings, labels)

    def random_split(self, fractions: Sequence[float], seed: int = 0) -> list["EvalDataset"]:
        """Split by patient (no patient in two parts) into parts of about the given fractions."""
        frac = np.asarray(fractions, dtype=np.float64)
        if frac.min() < 0 or not np.isclose(frac.sum(), 1.0):
            raise UserError(f"split fractions must be >= 0 and sum to 1, got {list(fractions)}")
        patients = self.meta["patient_id"].astype(str).to_numpy()
        uniq = np.unique(patients)
        np.random.default_rng(seed).shuffle(uniq)
        cuts = np.round(np.cumsum(frac)[:-1] * len(uniq)).astype(int)
        part_of = {p: k for k, group in enumerate(np.split(uniq, cuts)) for p in group}
        parts = np.array([part_of[p] for p in patients])
        return [self._derive(np.flatnonzero(parts == k)) for k in range(len(frac))]

    # -- summary
    def counts(self) -> pd.DataFrame:
        """Per finding: positives, negatives, unknown."""
        lab = self.labels
        return pd.DataFrame(
            {
                "positive": (lab == 1).sum(0),
                "negative": (lab == 0).sum(0),
                "unknown": np.isnan(lab).sum(0),
            },
            index=pd.Index(self.findings, name="finding"),
        )

    def describe(self) -> str:
        """Human-readable summary: size, task, views, splits, per-finding counts, boxes, masks."""
        lines = [
            f"{self.name}: {len(self)} images, {len(self.findings)} findings ({self.task})",
            f"views: {self.meta['view'].value_counts().to_dict()}",
            f"splits: {self.meta['split'].value_counts().to_dict()}",
            f"patients: {self.meta['patient_id'].nunique()}",
        ]
        if self._boxes is not None:
            n_img = sum(1 for b in self._boxes if b)
            lines.append(f"boxes: {sum(len(b) for b in self._boxes)} on {n_img} images")
        lines.append(f"masks: {'yes' if self.has_masks else 'no'}")
        lines.append(self.counts().to_string())
        return "\n".join(lines)
