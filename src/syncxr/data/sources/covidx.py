"""COVIDx (Wang et al., COVID-Net) in its official layout.

`train.txt` / `test.txt` (also `val.txt`), space-separated: patient id, filename, class, source;
e.g. "3 SARS-10.1148rg.2020200159-g002.png COVID-19 cohen". Classes normal | pneumonia |
COVID-19 give a 3-class multiclass dataset (no_finding, pneumonia, covid_19); the COVIDx CXR-3/4
classes positive | negative give one binary finding, covid_19. Images in `<split>/<filename>`.
Filenames may contain spaces in old releases: the class is found by value, and everything between
the patient id and the class is the filename.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from syncxr.data.relabel import native_to_shared
from syncxr.data.sources.base import EvalDataset, find_file
from syncxr.errors import UserError

log = logging.getLogger(__name__)

THREE_CLASS = ("normal", "pneumonia", "COVID-19")
BINARY = ("negative", "positive")


def parse_split_file(path: Path) -> pd.DataFrame:
    """Rows of (patient_id, filename, label, source) from a COVIDx split file."""
    rows = []
    for line_no, line in enumerate(path.read_text().splitlines(), start=1):
        toks = line.split()
        if not toks:
            continue
        pos = [k for k in range(2, len(toks)) if toks[k] in THREE_CLASS + BINARY]
        if not pos:
            raise UserError(
                f"{path}: line {line_no}: no class in {line!r}; expected "
                f"'patient_id filename class source' with class in {list(THREE_CLASS + BINARY)}"
            )
        k = pos[-1]
        rows.append((toks[0], " ".join(toks[1:k]), toks[k], " ".join(toks[k + 1:])))
    if not rows:
        raise UserError(f"{path}: no rows")
    return pd.DataFrame(rows, columns=["patient_id", "filename", "label", "source"])


def load_covidx(
    data_dir: str | Path,
    split: str = "test",
    strict_images: bool = True,
) -> EvalDataset:
    """COVIDx `split` ("train", "val" or "test"): multiclass, or binary covid_19 for CXR-3/4."""
    data_dir = Path(data_dir)
    txt = find_file(data_dir, [f"{split}.txt", f"{split}_split.txt"], f"COVIDx {split}.txt")
    df = parse_split_file(txt)
    classes = set(df["label"])
    if classes <= set(BINARY):
        findings, task = ["covid_19"], "multilabel"
        labels = (df["label"] == "positive").to_numpy(dtype=np.float32).reshape(-1, 1)
    elif classes <= set(THREE_CLASS):
        findings, task = [native_to_shared("covidx", c) for c in THREE_CLASS], "multiclass"
        labels = np.zeros((len(df), 3), dtype=np.float32)
        labels[np.arange(len(df)), df["label"].map(THREE_CLASS.index).to_numpy()] = 1.0
    else:
        raise UserError(f"{txt}: mixes class sets {sorted(classes)}; expected {list(THREE_CLASS)} or {list(BINARY)}")
    paths = [data_dir / split / f for f in df["filename"]]
    found = np.array([p.is_file() for p in paths], dtype=bool)
    if not found.all():
        first = paths[int(np.flatnonzero(~found)[0])]
        log.warning("covidx: %d images of %s missing (first: %s); dropped", int((~found).sum()), txt, first)
    if not found.any():
        raise UserError(f"covidx: no image of {txt.name} found under {data_dir / split}")
    df, labels = df[found], labels[found]
    paths = [p for p, f in zip(paths, found) if f]
    meta = pd.DataFrame({
        "path": [str(p) for p in paths],
        "image_id": df["filename"].to_numpy(),
        "view": "FRONTAL",
        "patient_id": df["patient_id"].to_numpy(),
        "split": split,
        "source": df["source"].to_numpy(),
    })
    return EvalDataset("covidx", findings, labels, meta, task=task, strict_images=strict_images)
