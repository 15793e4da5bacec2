"""SIIM-ACR Pneumothorax Segmentation (2019) in its official layout.

`train-rle.csv` with the header "ImageId, EncodedPixels" (note the space) and one row per
pneumothorax region: "-1" for none, several rows for several regions (their masks are united).
RLE per data/rle.py: "relative" for train-rle.csv, "absolute" for the stage-2 `stage_2_train.csv`
(`rle_format="auto"` picks by file name). Images as `<ImageId>.png`/`.jpg` in `images/`,
`png_images/`, `train_png/`, `train/` or `data_dir`, else `<ImageId>.dcm` anywhere below
`data_dir` (the DICOM tree of the download; needs pydicom). Masks are decoded at the image's size.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from syncxr.data import rle
from syncxr.data.sources.base import EvalDataset, find_file, index_images, keep_found
from syncxr.errors import UserError
from syncxr.fsio import read_csv

log = logging.getLogger(__name__)

CSV_FORMATS = {"train-rle.csv": "relative", "stage_2_train.csv": "absolute"}
IMAGE_DIRS = ("images", "png_images", "train_png", "train")
FINDING = "pneumothorax"


def read_rle_csv(path: Path) -> pd.DataFrame:
    """ImageId, EncodedPixels (stripped of the original's stray spaces)."""
    df = read_csv(path, dtype=str, keep_default_na=False)
    df.columns = [c.strip() for c in df.columns]
    if not {"ImageId", "EncodedPixels"} <= set(df.columns):
        raise UserError(
            f"{path}: expected columns 'ImageId', 'EncodedPixels' (original header: "
            f"'ImageId, EncodedPixels'); the file has {list(df.columns)}"
        )
    return df.assign(ImageId=df["ImageId"].str.strip(), EncodedPixels=df["EncodedPixels"].str.strip())


def _mask_fn(fmt: str):
    def mask(row: pd.Series, finding: str, shape: tuple[int, int]) -> np.ndarray | None:
        if finding != FINDING:
            return None
        out = np.zeros(shape, dtype=bool)
        for code in row["rle"]:
            out |= rle.decode(code, shape, fmt)
        return out

    return mask


def _images(data_dir: Path) -> dict[str, Path]:
    found = index_images([data_dir / d for d in IMAGE_DIRS] + [data_dir])
    if not found:
        found = {p.stem: p for p in sorted(data_dir.rglob("*.dcm"))}
    return found


def load_siim(
    data_dir: str | Path,
    rle_format: str = "auto",
    strict_images: bool = True,
) -> EvalDataset:
    """SIIM-ACR: binary "pneumothorax" labels and masks (see the module docstring)."""
    data_dir = Path(data_dir)
    csv = find_file(data_dir, list(CSV_FORMATS), "SIIM-ACR RLE CSV")
    fmt = CSV_FORMATS[csv.name] if rle_format == "auto" else rle_format
    if fmt not in ("relative", "absolute"):
        raise UserError(f"siim: rle_format={rle_format!r}; expected 'auto', 'relative' or 'absolute'")
    df = read_rle_csv(csv)
    codes: dict[str, list[str]] = {}
    for line, (iid, code) in enumerate(zip(df["ImageId"], df["EncodedPixels"]), start=2):
        if code != rle.EMPTY and not all(t.isdigit() for t in code.split()):
            raise UserError(f"{csv}: line {line}: EncodedPixels {code[:30]!r}; expected '-1' or RLE integers")
        codes.setdefault(iid, [])
        if code not in (rle.EMPTY, ""):
            codes[iid].append(code)
    images = _images(data_dir)
    ids = keep_found("siim", list(codes), images, f"<ImageId>.png found under {data_dir} or {list(IMAGE_DIRS)}")
    meta = pd.DataFrame({
        "path": [str(images[i]) for i in ids],
        "image_id": ids,
        "view": "FRONTAL",
        "patient_id": ids,
        "split": "train",
        "rle": [tuple(codes[i]) for i in ids],
    })
    labels = np.array([1.0 if codes[i] else 0.0 for i in ids], dtype=np.float32).reshape(-1, 1)
    return EvalDataset("siim", [FINDING], labels, meta, mask_fn=_mask_fn(fmt), strict_images=strict_images)
