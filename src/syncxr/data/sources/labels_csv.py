"""A generic labels CSV: bring your own evaluation set.

`<data_dir>/labels.csv` with an `image` column (paths relative to data_dir) and one column per
finding holding 1, 0 or blank (unknown). Finding columns may have any names; they are turned into
snake_case, so "Pleural Effusion" is recognised as the CheXpert-14 `pleural_effusion`.
Optional columns: view, patient_id, split, study_id, sex, age (kept in meta, not findings).

Optional extras: masks as `<data_dir>/<mask_dir>/<finding>/<image stem>.png` (no file = empty
mask, no folder = no masks for that finding), and `<data_dir>/boxes.csv` with columns
image, finding, x, y, w, h in image pixels. A missing image file is an error here (the CSV is the
user's own, so a wrong path is a mistake, not a partial download).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from syncxr.data.relabel import snake_name
from syncxr.data.sources.base import Box, EvalDataset, read_csv
from syncxr.errors import UserError
from syncxr.fsio import is_inside
from syncxr.imread import ImageReadError, read_gray

META_OPTIONAL = ("view", "patient_id", "split", "study_id", "sex", "age")
BOX_COLUMNS = ("image", "finding", "x", "y", "w", "h")


def _finding_columns(df: pd.DataFrame, csv: Path, findings: list[str] | None) -> list[str]:
    candidates = [c for c in df.columns if c != "image" and snake_name(c) not in META_OPTIONAL]
    if findings is not None:
        by_snake = {snake_name(c): c for c in candidates}
        missing = [f for f in findings if snake_name(f) not in by_snake]
        if missing:
            raise UserError(f"{csv}: finding column(s) {missing} not found; the file has {list(df.columns)}")
        return [by_snake[snake_name(f)] for f in findings]
    if not candidates:
        raise UserError(
            f"{csv}: no finding columns; expected 'image' plus one 1/0/blank column per finding "
            f"(optional {list(META_OPTIONAL)}); the file has {list(df.columns)}"
        )
    return candidates


def _label_matrix(df: pd.DataFrame, cols: list[str], csv: Path) -> np.ndarray:
    out = np.empty((len(df), len(cols)), dtype=np.float32)
    for j, col in enumerate(cols):
        vals = pd.to_numeric(df[col], errors="coerce")
        bad = (vals.isna() & df[col].notna()) | ~(vals.isin([0, 1]) | vals.isna())
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise UserError(
                f"{csv}: line {row + 2}, column {col!r}: value {str(df[col].iloc[row])!r}; expected 1, 0 or "
                f"blank. Columns other than image/{'/'.join(META_OPTIONAL)} are read as findings."
            )
        out[:, j] = vals.to_numpy(dtype=np.float32)
    return out


def _read_boxes(path: Path, images: list[str]) -> list[list[Box]]:
    df = read_csv(path, BOX_COLUMNS)
    by_image: dict[str, list[Box]] = {}
    for r in df.itertuples(index=False):
        try:
            box = (snake_name(str(r.finding)), float(r.x), float(r.y), float(r.w), float(r.h))
        except ValueError:
            raise UserError(f"{path}: non-numeric box for image {r.image!r}") from None
        by_image.setdefault(str(r.image), []).append(box)
    unknown = set(by_image) - set(images)
    if unknown:
        raise UserError(f"{path}: boxes for images not in the labels CSV (e.g. {sorted(unknown)[0]!r})")
    return [by_image.get(i, []) for i in images]


def _mask_fn(mask_root: Path):
    def mask(row: pd.Series, finding: str, shape: tuple[int, int]) -> np.ndarray | None:
        folder = mask_root / finding
        if not folder.is_dir():
            return None
        path = folder / (Path(str(row["image_id"])).stem + ".png")
        if not path.is_file():
            return np.zeros(shape, dtype=bool)
        try:
            m = read_gray(path) > 0
        except ImageReadError as e:
            raise UserError(f"mask {e}") from None
        if m.shape != shape:
            raise UserError(f"{path}: mask is {m.shape}, image is {shape}; expected the same size")
        return m

    return mask


def load_labels_csv(
    data_dir: str | Path,
    csv: str = "labels.csv",
    findings: list[str] | None = None,
    mask_dir: str | None = None,
    boxes_csv: str = "boxes.csv",
    name: str = "csv",
    strict_images: bool = True,
    allow_outside_root: bool = False,
) -> EvalDataset:
    """Generic labels CSV (see the module docstring). Image paths must resolve inside `data_dir`
    unless `allow_outside_root` (--set dataset_options.allow_outside_root=true)."""
    data_dir = Path(data_dir)
    path = data_dir / csv
    if not path.is_file():
        raise UserError(f"labels CSV not found: {path}")
    # Identifiers are text: "00123" must stay "00123" (pandas would read it as the number 123).
    df = read_csv(path, ["image"], dtype={c: str for c in ("image", "view", "patient_id", "split", "study_id")})
    cols = _finding_columns(df, path, findings)
    labels = _label_matrix(df, cols, path)
    images = df["image"].astype(str).tolist()
    outside = [i for i in images if not allow_outside_root and not is_inside(data_dir / i, data_dir)]
    if outside:
        raise UserError(
            f"{path}: {len(outside)} image path(s) point outside {data_dir} (first: {outside[0]!r}); "
            "keep the images under data_dir, or pass --set dataset_options.allow_outside_root=true to read them"
        )
    missing = [i for i in images if not (data_dir / i).is_file()]
    if missing:
        raise UserError(f"{path}: {len(missing)} image(s) not found under {data_dir} (first: {missing[0]!r})")
    meta = pd.DataFrame({
        "path": [str(data_dir / i) for i in images],
        "image_id": images,
        "view": df["view"].astype(str).to_numpy() if "view" in df.columns else "UNKNOWN",
        "patient_id": df["patient_id"].astype(str).to_numpy() if "patient_id" in df.columns else images,
        "split": df["split"].astype(str).to_numpy() if "split" in df.columns else "all",
    })
    for col in ("study_id", "sex", "age"):
        if col in df.columns:
            meta[col] = df[col].to_numpy()
    boxes = _read_boxes(data_dir / boxes_csv, images) if (data_dir / boxes_csv).is_file() else None
    mask_fn = _mask_fn(data_dir / mask_dir) if mask_dir is not None else None
    return EvalDataset(name, [snake_name(c) for c in cols], labels, meta, boxes=boxes,
                       mask_fn=mask_fn, strict_images=strict_images)
