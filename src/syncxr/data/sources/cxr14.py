"""NIH ChestX-ray14 (Wang et al. 2017) in its official layout.

Files under `data_dir`: `Data_Entry_2017.csv` (or `Data_Entry_2017_v2020.csv`) with "Image Index",
"Finding Labels" ("|"-separated, "No Finding"), "Follow-up #", "Patient ID", "Patient Age",
"Patient Gender", "View Position", ...; `train_val_list.txt` / `test_list.txt` (one image name a
line); images in `images/` (or the `images_0NN/images/` folders of the download, or flat);
`BBox_List_2017.csv` with the odd header "Image Index","Finding Label","Bbox [x","y","w","h]"
-> boxes in the 1024x1024 pixel frame of the distributed PNGs.

Labels are 0/1 (no uncertainty in CXR14). Rows whose image file is absent are dropped with a
warning (many users download a few of the 12 archives); none present is an error.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd

from syncxr.data.relabel import CXR14_MAP, native_to_shared
from syncxr.data.sources.base import Box, EvalDataset, find_file, index_images, read_csv
from syncxr.errors import UserError

log = logging.getLogger(__name__)

ENTRY_FILES = ("Data_Entry_2017.csv", "Data_Entry_2017_v2020.csv")
SPLIT_FILES = {"test": "test_list.txt", "train_val": "train_val_list.txt"}
BOX_COLUMNS = ("Image Index", "Finding Label", "Bbox [x", "y", "w", "h]")
NATIVE_LABELS = (
    "Atelectasis", "Cardiomegaly", "Effusion", "Infiltration", "Mass", "Nodule", "Pneumonia",
    "Pneumothorax", "Consolidation", "Edema", "Emphysema", "Fibrosis", "Pleural_Thickening",
    "Hernia", "No Finding",
)
# Short column names some NIH subsets (e.g. a labelled sample of films) use for the same content.
SHORT_COLUMNS = {"image": "Image Index", "labels": "Finding Labels", "patient": "Patient ID", "view": "View Position",
                 "age": "Patient Age", "sex": "Patient Gender"}
FRAME = 1024  # the distributed PNGs are 1024x1024; BBox_List coordinates are in that frame


def _image_index(data_dir: Path) -> dict[str, Path]:
    """File name -> path over images/, images_0NN/images/ and data_dir itself."""
    found: dict[str, Path] = {}
    dirs = [data_dir / "images", *sorted(data_dir.glob("images_*/images")), data_dir]
    for d in dirs:
        for p in index_images([d]).values():
            found.setdefault(p.name, p)
    return found


def _read_list(path: Path) -> set[str]:
    return {line.strip() for line in path.read_text().splitlines() if line.strip()}


def _labels(entries: pd.DataFrame, csv: Path) -> np.ndarray:
    """(N, 15) 0/1 labels from the "|"-separated Finding Labels column."""
    col = {name: j for j, name in enumerate(NATIVE_LABELS)}
    labels = np.zeros((len(entries), len(NATIVE_LABELS)), dtype=np.float32)
    for i, text in enumerate(entries["Finding Labels"].astype(str)):
        for name in (t.strip() for t in text.split("|")):
            if name not in col:
                raise UserError(
                    f"{csv}: line {i + 2}: unknown finding {name!r} in 'Finding Labels'; "
                    f"expected '|'-separated names from {list(NATIVE_LABELS)}"
                )
            labels[i, col[name]] = 1.0
    return labels


def _age(v: object) -> float:
    m = re.search(r"\d+", str(v))
    return float(m.group()) if m else np.nan


def _boxes(data_dir: Path, names: list[str]) -> list[list[Box]] | None:
    path = data_dir / "BBox_List_2017.csv"
    if not path.is_file():
        return None
    df = read_csv(path, BOX_COLUMNS)
    by_image: dict[str, list[Box]] = {}
    for r in df[list(BOX_COLUMNS)].itertuples(index=False, name=None):
        try:
            box = tuple(float(v) for v in r[2:6])
        except ValueError:
            raise UserError(f"{path}: non-numeric box for {r[0]!r}; expected x, y, w, h in pixels") from None
        finding = native_to_shared("cxr14", str(r[1]))
        by_image.setdefault(str(r[0]), []).append((finding, *box))  # type: ignore[arg-type]
    return [by_image.get(n, []) for n in names]


def load_cxr14(
    data_dir: str | Path,
    split: str = "test",
    boxes_only: bool = False,
    strict_images: bool = True,
    entries: str | None = None,
) -> EvalDataset:
    """ChestX-ray14 `split` ("test", "train_val" or "all"); boxes_only keeps the BBox subset.
    `entries` names another entry CSV under data_dir (a subset of the collection); it may use the
    short column names image, labels, patient, view (age, sex) instead of the official ones."""
    data_dir = Path(data_dir)
    if entries is None:
        csv = find_file(data_dir, ENTRY_FILES, "ChestX-ray14 Data_Entry_2017.csv")
    else:
        csv = data_dir / entries
        if not csv.is_file():
            raise UserError(f"cxr14: entries file {csv} not found; give a CSV under data_dir (dataset_options.entries)")
    header = set(pd.read_csv(csv, nrows=0).columns)
    short = {k: v for k, v in SHORT_COLUMNS.items() if k in header and v not in header}  # short -> official
    official = ("Image Index", "Finding Labels", "Patient ID", "View Position")
    as_named = {v: k for k, v in short.items()}
    entries = read_csv(csv, [as_named.get(c, c) for c in official]).rename(columns=short)
    split_of = pd.Series("unlisted", index=entries.index)
    for name, fname in SPLIT_FILES.items():
        if (data_dir / fname).is_file():
            split_of[entries["Image Index"].isin(_read_list(data_dir / fname))] = name
    if split in SPLIT_FILES:
        if not (data_dir / SPLIT_FILES[split]).is_file():
            raise UserError(f"cxr14: split {split!r} needs {data_dir / SPLIT_FILES[split]}")
        keep = (split_of == split).to_numpy()
    elif split == "all":
        keep = np.ones(len(entries), dtype=bool)
    else:
        raise UserError(f"cxr14: split={split!r}; expected 'test', 'train_val' or 'all'")
    labels = _labels(entries, csv)
    images = _image_index(data_dir)
    present = entries["Image Index"].isin(images.keys()).to_numpy()
    if (keep & ~present).any():
        first = entries["Image Index"][keep & ~present].iloc[0]
        log.warning("cxr14: %d listed images are missing under %s (first: %s); dropped",
                    int((keep & ~present).sum()), data_dir, first)
    keep = keep & present
    if not keep.any():
        raise UserError(f"cxr14: no image of split {split!r} found under {data_dir}/images")
    names = entries["Image Index"][keep].astype(str).tolist()
    sub = entries[keep]
    meta = pd.DataFrame({
        "path": [str(images[n]) for n in names],
        "image_id": names,
        "view": sub["View Position"].astype(str).to_numpy(),
        "patient_id": sub["Patient ID"].astype(str).to_numpy(),
        "split": split_of[keep].to_numpy(),
        "box_frame_w": FRAME,
        "box_frame_h": FRAME,
    })
    if "Patient Age" in sub.columns:
        meta["age"] = sub["Patient Age"].map(_age).to_numpy()
    if "Patient Gender" in sub.columns:
        meta["sex"] = sub["Patient Gender"].to_numpy()
    boxes = _boxes(data_dir, names)
    findings = [CXR14_MAP[n] for n in NATIVE_LABELS]
    ds = EvalDataset("cxr14", findings, labels[keep], meta, boxes=boxes, strict_images=strict_images)
    if boxes_only:
        if boxes is None:
            raise UserError(f"cxr14: boxes_only=True needs {data_dir / 'BBox_List_2017.csv'}")
        ds = ds.subset([i for i, b in enumerate(boxes) if b])
    return ds
