"""One view of an audited image-text set: ids, texts, finding labels and images on demand.

The pair sources give texts and images; an audit also needs a stable id per row (to name the
closest pairs and to drop rows) and the finding labels (to group images per finding), which the
sources do not expose. This module adds both on top of a source, per kind:

  syncxr  id = sample_id; labels = the shard's CheXpert-14 columns (1 = positive)
  mimic   id = the image path under the root; labels = mimic-cxr-2.0.0-chexpert.csv by study
  csv     id = the image path as written in the CSV; labels = an optional column of
          separator-joined finding names ("Effusion|Pneumonia"), NIH names mapped to CheXpert's
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from syncxr.errors import UserError

log = logging.getLogger(__name__)

REAL_KINDS = ("mimic", "syncxr", "csv")


@dataclass
class AuditSet:
    """Rows of one side of an audit. `labels[i]` is the set of positive findings (snake names)."""

    where: str
    kind: str
    ids: list[str]
    texts: list[str]
    labels: list[frozenset[str]]
    load_image: Callable[[int], np.ndarray]
    has_labels: bool = True
    skipped: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ids)


def open_set(path: str | Path, kind: str = "syncxr", section: str = "both", **options: Any) -> AuditSet:
    """The audit view of a dataset or corpus of `kind` (syncxr | mimic | csv).

    options: mimic `views`, `split` (default "all": a memorised report may come from any split),
    `reports`; csv `image_col`, `text_col`, `label_col`, `label_sep`; mimic/csv `allow_outside_root`."""
    if kind not in REAL_KINDS:
        raise UserError(f"unknown corpus kind {kind!r}; valid kinds: {', '.join(REAL_KINDS)}")
    path = Path(path)
    if kind == "csv":
        if not path.is_file():
            raise UserError(f"{path}: not a file; --real-kind csv needs the CSV of images (and texts)")
    elif not path.is_dir():
        raise UserError(f"{path}: not a folder; give a {kind} dataset folder")
    builder = {"syncxr": _syncxr, "mimic": _mimic, "csv": _csv}[kind]
    return builder(path, section, **options)


def _source(kind: str, path: Path, section: str, **options: Any):
    from syncxr.data.sources import SourceConfig, open_source

    try:
        cfg = SourceConfig(kind=kind, path=str(path), section=section, **options)
    except ValueError as e:  # pydantic: an option of the wrong type
        raise UserError(f"{kind} corpus {path}: bad option ({e})") from None
    return open_source(cfg)


def _row_image(src) -> Callable[[int], np.ndarray]:
    # The source's per-row reader: `src[i]` would fall forward to the next readable row on a bad
    # image, which would pair an id with another row's image.
    return src._load_image


def _syncxr(path: Path, section: str, **options: Any) -> AuditSet:
    if options:
        raise UserError(f"a syncxr dataset takes no reader options; got {sorted(options)}")
    import pyarrow.parquet as pq

    from syncxr.records import CHEXPERT14_SNAKE

    src = _source("syncxr", path, section)
    by_id: dict[str, frozenset[str]] = {}
    for f in src.files:
        names = pq.read_schema(f).names
        cols = [c for c in CHEXPERT14_SNAKE if c in names]
        t = pq.read_table(f, columns=["sample_id", *cols]).to_pydict()
        for r, sid in enumerate(t["sample_id"]):
            by_id[str(sid)] = frozenset(c for c in cols if t[c][r] == 1)
    ids = list(src._ids)
    return AuditSet(str(path), "syncxr", ids, src.texts(), [by_id.get(i, frozenset()) for i in ids],
                    _row_image(src), True, dict(src.skipped))


def _mimic(path: Path, section: str, split: str = "all", **options: Any) -> AuditSet:
    from syncxr.records import CHEXPERT14, snake

    src = _source("mimic", path, section, split=split, **options)
    ids = [src._name(i) for i in range(len(src))]
    chex = path / "mimic-cxr-2.0.0-chexpert.csv"
    labels = [frozenset()] * len(ids)
    if chex.is_file():
        from syncxr.fsio import read_csv

        df = read_csv(chex, dtype=str, keep_default_na=False)
        cols = [c for c in CHEXPERT14 if c in df.columns]
        if "study_id" not in df.columns:
            raise UserError(f"{chex}: no study_id column; the file has {list(df.columns)}")
        positive = {c: [_is_positive(v) for v in df[c]] for c in cols}
        by_study = {
            str(s).strip().lstrip("sS"): frozenset(snake(c) for c in cols if positive[c][r])
            for r, s in enumerate(df["study_id"])
        }
        labels = [by_study.get(Path(p).parent.name.lstrip("s"), frozenset()) for p in src._paths]
    else:
        log.info("%s: no %s; findings are not known for this corpus", path, chex.name)
    return AuditSet(str(path), "mimic", ids, src.texts(), labels, _row_image(src), chex.is_file(), dict(src.skipped))


def _is_positive(value: str) -> bool:
    try:
        return float(value) == 1.0
    except ValueError:
        return False


def _csv(path: Path, section: str, image_col: str = "image", text_col: str = "text",
         label_col: Optional[str] = None, label_sep: str = "|", allow_outside_root: bool = False) -> AuditSet:
    from syncxr.data.relabel import CXR14_MAP
    from syncxr.fsio import read_csv
    from syncxr.records import snake_name

    src = _source("csv", path, "both", image_col=image_col, text_col=text_col, allow_outside_root=allow_outside_root)
    ids = [str(p.relative_to(path.parent)) if p.is_relative_to(path.parent) else str(p) for p in src._paths]
    labels = [frozenset()] * len(ids)
    if label_col is not None:
        df = read_csv(path, dtype=str, keep_default_na=False)
        if label_col not in df.columns:
            raise UserError(f"{path}: no column {label_col!r} (--real-label-col); the file has {list(df.columns)}")
        by_image = {}
        for img, value in zip(df[image_col], df[label_col]):
            names = [v.strip() for v in str(value).split(label_sep) if v.strip()]
            by_image[str((path.parent / img).resolve())] = frozenset(CXR14_MAP.get(n, snake_name(n)) for n in names)
        labels = [by_image.get(str(p.resolve()), frozenset()) for p in src._paths]
    return AuditSet(str(path), "csv", ids, src.texts(), labels, _row_image(src), label_col is not None,
                    dict(src.skipped))


def image_features(aset: AuditSet, extractor, batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """(features (K, D) float32, rows (K,) int) over the readable images of `aset`, decoded and
    described `batch_size` at a time so memory stays flat. Unreadable images are skipped and
    counted in `aset.skipped['unreadable_image']`."""
    feats: list[np.ndarray] = []
    rows: list[int] = []
    for lo in range(0, len(aset), batch_size):
        imgs, idx = [], []
        for i in range(lo, min(len(aset), lo + batch_size)):
            try:
                imgs.append(aset.load_image(i))
                idx.append(i)
            except (ValueError, FileNotFoundError) as e:
                aset.skipped["unreadable_image"] = aset.skipped.get("unreadable_image", 0) + 1
                log.warning("%s: skipping unreadable image %s: %s", aset.where, aset.ids[i], e)
        if imgs:
            feats.append(np.asarray(extractor.features(imgs), dtype=np.float32))
            rows += idx
    if not feats:
        raise UserError(f"{aset.where}: no readable image")
    return np.concatenate(feats), np.asarray(rows, dtype=np.int64)


def feature_extractor(name: str = "builtin", model: Optional[str] = None, device: str = "cpu"):
    """An image FeatureExtractor from the QC registry; rad-dino needs `model` (no download by default)."""
    from syncxr.qc.base import FEATURES

    if name != "builtin" and model is None:
        raise UserError(f"--features {name} needs --model (a local folder or hub name of the weights)")
    return FEATURES.create(name, {"model": model, "device": device} if model else {})
