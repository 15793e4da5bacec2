"""PadChest (Bustos et al. 2020) in its official layout.

`PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv` (optionally .gz) with ImageID, ImageDir,
Projection, PatientID, MethodLabel ("Physician" or "RNN_model"), Labels (a Python-list string
such as "['pneumonia', 'pleural effusion']"), ...; images as `<ImageDir>/<ImageID>` (the numbered
folders of the download) or flat in `data_dir` / `data_dir/images`. The PNGs are 16-bit;
`EvalDataset.image` windows them to 8 bits (see base.to_uint8).

Labels are mapped onto the shared vocabulary (relabel.PADCHEST_MAP; subtypes merged, other
labels keep their own snake name). A label absent from a row is a negative. Rows with no Labels
or labelled "exclude" are dropped; "suboptimal study" / "unchanged" are not findings.

Seen-class protocol: `min_positives=N` keeps only findings with at least N positive images in
the loaded rows (after split/method/view filters), so AUCs are not computed on a handful of
positives. `method="Physician"` keeps the manually labelled subset.
"""

from __future__ import annotations

import ast
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from syncxr.data.relabel import native_to_shared
from syncxr.data.sources.base import EvalDataset, find_file, read_csv
from syncxr.errors import UserError
from syncxr.records import CHEXPERT14_SNAKE

log = logging.getLogger(__name__)

CSV_NAME = "PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv"
NOT_FINDINGS = {"suboptimal study", "unchanged", "exclude", ""}


def parse_labels(text: object, where: str) -> list[str] | None:
    """"['a', ' b']" -> ['a', 'b'] (stripped, lower case); None for a missing value."""
    if text is None or (isinstance(text, float) and np.isnan(text)):
        return None
    try:
        items = ast.literal_eval(str(text))
    except (ValueError, SyntaxError):
        raise UserError(f"{where}: Labels {text!r} is not a Python list string like \"['pneumonia']\"") from None
    if not isinstance(items, (list, tuple)):
        raise UserError(f"{where}: Labels {text!r} is not a list")
    return [str(x).strip().lower() for x in items]


def _order(names: set[str]) -> list[str]:
    """CheXpert-14 names first in their canonical order, then the rest alphabetically."""
    head = [n for n in CHEXPERT14_SNAKE if n in names]
    return head + sorted(names - set(head))


def _image_paths(data_dir: Path, df: pd.DataFrame) -> list[str | None]:
    listing: dict[Path, set[str]] = {}

    def exists(d: Path, name: str) -> bool:
        if d not in listing:
            listing[d] = {p.name for p in d.iterdir()} if d.is_dir() else set()
        return name in listing[d]

    out: list[str | None] = []
    for image_dir, image_id in zip(df["ImageDir"], df["ImageID"].astype(str)):
        cands = [data_dir / str(image_dir).split(".")[0], data_dir / "images", data_dir]
        out.append(next((str(d / image_id) for d in cands if exists(d, image_id)), None))
    return out


def load_padchest(
    data_dir: str | Path,
    views: tuple[str, ...] | None = ("PA", "AP", "AP_horizontal"),
    method: str | None = None,
    min_positives: int | None = None,
    findings: list[str] | None = None,
    strict_images: bool = True,
) -> EvalDataset:
    """PadChest; `views` filters Projection (None = all), `method` MethodLabel, see module doc."""
    data_dir = Path(data_dir)
    csv = find_file(data_dir, [CSV_NAME, CSV_NAME + ".gz"], "PadChest labels CSV")
    df = read_csv(csv, ["ImageID", "ImageDir", "Projection", "Labels"], low_memory=False)
    if method is not None:
        if "MethodLabel" not in df.columns:
            raise UserError(f"{csv}: method={method!r} needs a MethodLabel column")
        df = df[df["MethodLabel"] == method]
    if views is not None:
        df = df[df["Projection"].astype(str).str.upper().isin([v.upper() for v in views])]
    parsed = [parse_labels(t, f"{csv}: ImageID {i}") for t, i in zip(df["Labels"], df["ImageID"])]
    keep = np.array([p is not None and "exclude" not in p for p in parsed], dtype=bool)
    paths = _image_paths(data_dir, df)
    found = np.array([p is not None for p in paths], dtype=bool)
    if (keep & ~found).any():
        log.warning("padchest: %d images listed in %s are missing; dropped", int((keep & ~found).sum()), csv)
    keep = keep & found
    if not keep.any():
        raise UserError(f"padchest: no labelled image found under {data_dir} (after filters)")
    df = df[keep]
    rows = [sorted({native_to_shared("padchest", x) for x in p if x not in NOT_FINDINGS})
            for p, k in zip(parsed, keep) if k]
    names = _order({n for r in rows for n in r})
    col = {n: j for j, n in enumerate(names)}
    labels = np.zeros((len(rows), len(names)), dtype=np.float32)
    for i, r in enumerate(rows):
        labels[i, [col[n] for n in r]] = 1.0
    if findings is not None:
        unknown = [f for f in findings if f not in col]
        if unknown:
            raise UserError(f"padchest: findings {unknown} do not occur; present: {names}")
        names, labels = list(findings), labels[:, [col[f] for f in findings]]
    if min_positives is not None:
        seen = labels.sum(0) >= min_positives
        log.info("padchest: %d of %d findings have >= %d positives", int(seen.sum()), len(names), min_positives)
        names, labels = [n for n, s in zip(names, seen) if s], labels[:, seen]
    meta = pd.DataFrame({
        "path": [p for p, k in zip(paths, keep) if k],
        "image_id": df["ImageID"].astype(str).to_numpy(),
        "view": df["Projection"].astype(str).to_numpy(),
        "patient_id": df["PatientID"].astype(str).to_numpy() if "PatientID" in df.columns else df["ImageID"].to_numpy(),
        "split": "all",
    })
    if "MethodLabel" in df.columns:
        meta["method"] = df["MethodLabel"].to_numpy()
    return EvalDataset("padchest", names, labels, meta, strict_images=strict_images)
