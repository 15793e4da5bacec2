"""RSNA Pneumonia Detection Challenge (2018) in its official layout.

`stage_2_train_labels.csv` with patientId,x,y,width,height,Target: one row per box for positive
images (Target=1), one row with blank box for negatives (Target=0). Optional
`stage_2_detailed_class_info.csv` (patientId,class) adds meta["class"]. Images as
`<patientId>.png` / `.jpg` (converted) or `.dcm` (needs pydicom) in `stage_2_train_images/`,
`images/` or `data_dir`. Boxes are in the 1024x1024 frame of the original DICOMs (`box_frame`).
One finding, "pneumonia" (the challenge target; RSNA calls the class "Lung Opacity").
All images are frontal; the view is "FRONTAL" unless the CSV carries a view column.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from syncxr.data.sources.base import Box, EvalDataset, find_file, index_images, keep_found, read_csv
from syncxr.errors import UserError

log = logging.getLogger(__name__)

LABEL_COLUMNS = ("patientId", "x", "y", "width", "height", "Target")
IMAGE_DIRS = ("stage_2_train_images", "images", "train")


def _check_rows(df: pd.DataFrame, csv: Path) -> None:
    target = pd.to_numeric(df["Target"], errors="coerce")
    if not target.isin([0, 1]).all():
        row = int(np.flatnonzero(~target.isin([0, 1]).to_numpy())[0])
        raise UserError(f"{csv}: line {row + 2}: Target {str(df['Target'].iloc[row])!r}; expected 0 or 1")
    box = df[["x", "y", "width", "height"]].apply(pd.to_numeric, errors="coerce")
    bad = ((target == 1) & box.isna().any(axis=1)) | ((target == 0) & box.notna().any(axis=1))
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise UserError(
            f"{csv}: line {row + 2}: Target={int(target.iloc[row])} with box {box.iloc[row].tolist()}; "
            "expected numeric x,y,width,height when Target=1 and blanks when Target=0"
        )


def load_rsna(
    data_dir: str | Path,
    box_frame: int = 1024,
    strict_images: bool = True,
) -> EvalDataset:
    """RSNA Pneumonia: binary "pneumonia" labels and boxes (see the module docstring)."""
    data_dir = Path(data_dir)
    csv = find_file(data_dir, ["stage_2_train_labels.csv", "stage_1_train_labels.csv"], "RSNA labels CSV")
    df = read_csv(csv, LABEL_COLUMNS)
    _check_rows(df, csv)
    ids = list(dict.fromkeys(df["patientId"].astype(str)))  # first-seen order, one row per image
    boxes: dict[str, list[Box]] = {i: [] for i in ids}
    target = dict.fromkeys(ids, 0.0)
    for r in df.itertuples(index=False):
        pid = str(r.patientId)
        if int(r.Target) == 1:
            target[pid] = 1.0
            boxes[pid].append(("pneumonia", float(r.x), float(r.y), float(r.width), float(r.height)))
    images = index_images([data_dir / d for d in IMAGE_DIRS] + [data_dir], (".png", ".jpg", ".jpeg", ".dcm"))
    ids = keep_found("rsna", ids, images, f"<patientId>.png/.jpg/.dcm found under {data_dir} or {list(IMAGE_DIRS)}")
    meta = pd.DataFrame({
        "path": [str(images[i]) for i in ids],
        "image_id": ids,
        "view": "FRONTAL",
        "patient_id": ids,
        "split": "train",
        "box_frame_w": box_frame,
        "box_frame_h": box_frame,
    })
    info = data_dir / "stage_2_detailed_class_info.csv"
    if info.is_file():
        cls = read_csv(info, ["patientId", "class"]).drop_duplicates("patientId").set_index("patientId")["class"]
        meta["class"] = meta["image_id"].map(cls).to_numpy()
    labels = np.array([[target[i]] for i in ids], dtype=np.float32).reshape(-1, 1)
    return EvalDataset("rsna", ["pneumonia"], labels, meta, boxes=[boxes[i] for i in ids],
                       strict_images=strict_images)
