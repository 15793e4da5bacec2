"""Exports of a syncxr dataset for other tools.

- WebDataset tars (open_clip, webdataset): per sample `<key>.png`, `<key>.txt` (the report or one
  section), `<key>.json` (labels, entities, seed); shards of `samples_per_tar` samples.
- A MIMIC-CXR-JPG-like folder: `files/pXX/pID/sID/<dicom>.jpg` images (JPEG, quality 95), `files/pXX/pID/sID.txt`
  reports, and `mimic-cxr-2.0.0-{metadata,split,chexpert}.csv`, so tools written for MIMIC-CXR
  (and syncxr's own `mimic:` source) read synthetic data unchanged.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import Iterator, Literal

from syncxr.data.shards import iter_rows, write_csv_atomic, write_text_atomic
from syncxr.errors import UserError
from syncxr.data.manifest import read_manifest
from syncxr.records import CHEXPERT14, CHEXPERT14_SNAKE

TextChoice = Literal["report", "findings", "impression"]


def _rows(dataset: Path) -> Iterator[dict]:
    if read_manifest(dataset) is None:
        raise UserError(f"{dataset}: no manifest.json; is this a syncxr dataset folder?")
    cols = ["sample_id", "seed", "image_png", "findings", "impression", "report", "entities", *CHEXPERT14_SNAKE]
    yield from iter_rows(dataset, columns=cols)


def _labels(row: dict) -> dict[str, float | None]:
    return {k: row[k] for k in CHEXPERT14_SNAKE}


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0  # fixed, so the same dataset gives the same tar bytes
    tar.addfile(info, io.BytesIO(data))


def export_webdataset(dataset: str | Path, out: str | Path, samples_per_tar: int = 1000,
                      text: TextChoice = "report") -> list[Path]:
    """Write `out/syncxr-000000.tar`, ...; returns the tar paths."""
    if samples_per_tar < 1:
        raise UserError(f"samples_per_tar must be >= 1, got {samples_per_tar}")
    dataset, out = Path(dataset), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    tar, tmp, count = None, None, 0
    for row in _rows(dataset):
        if tar is None:
            path = out / f"syncxr-{len(paths):06d}.tar"
            tmp = path.with_suffix(".tar.tmp")
            tar = tarfile.open(tmp, "w")
            paths.append(path)
        key = row["sample_id"]
        _add(tar, f"{key}.png", row["image_png"])
        _add(tar, f"{key}.txt", row[text].encode())
        meta = {"labels": _labels(row), "entities": json.loads(row["entities"]), "seed": row["seed"]}
        _add(tar, f"{key}.json", json.dumps(meta, sort_keys=True).encode())
        count += 1
        if count % samples_per_tar == 0:
            tar.close()
            tmp.replace(paths[-1])
            tar = None
    if tar is not None:
        tar.close()
        tmp.replace(paths[-1])
    if not paths:
        raise UserError(f"{dataset}: the dataset has no accepted samples to export")
    return paths


def _ids(index: int) -> tuple[int, int, str]:
    """Synthetic subject/study/dicom ids; 'p19' folders keep them apart from real MIMIC ids."""
    subject = 19_000_000 + index
    return subject, 59_000_000 + index, f"syncxr-{index:08d}"


def export_mimic(dataset: str | Path, out: str | Path) -> Path:
    """A MIMIC-CXR-JPG-like folder (every synthetic study in the 'train' split)."""
    dataset, out = Path(dataset), Path(out)
    meta, split, chex = [], [], []
    for i, row in enumerate(_rows(dataset)):
        subject, study, dicom = _ids(i)
        folder = out / "files" / f"p{str(subject)[:2]}" / f"p{subject}"
        (folder / f"s{study}").mkdir(parents=True, exist_ok=True)
        write_text_atomic(_jpeg(row["image_png"]), folder / f"s{study}" / f"{dicom}.jpg")
        report = f" FINDINGS: {row['findings']}\n\n IMPRESSION: {row['impression']}\n"
        write_text_atomic(report, folder / f"s{study}.txt")
        meta.append([dicom, subject, study, "PA"])
        split.append([dicom, study, subject, "train"])
        chex.append([subject, study] + ["" if row[k] is None else f"{row[k]:.1f}" for k in CHEXPERT14_SNAKE])
    if not meta:
        raise UserError(f"{dataset}: the dataset has no accepted samples to export")
    write_csv_atomic(out / "mimic-cxr-2.0.0-metadata.csv", ["dicom_id", "subject_id", "study_id", "ViewPosition"], meta)
    write_csv_atomic(out / "mimic-cxr-2.0.0-split.csv", ["dicom_id", "study_id", "subject_id", "split"], split)
    write_csv_atomic(out / "mimic-cxr-2.0.0-chexpert.csv", ["subject_id", "study_id", *CHEXPERT14], chex)
    return out


def _jpeg(png: bytes) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.open(io.BytesIO(png)).convert("L").save(buf, format="JPEG", quality=95)
    return buf.getvalue()

