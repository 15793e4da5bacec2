"""Exports of a syncxr dataset for other tools.

- WebDataset tars (open_clip, webdataset): per sample `<key>.png`, `<key>.txt` (the report or one
  section), `<key>.json` (labels, entities, seed); shards of `samples_per_tar` samples.
- A MIMIC-CXR-JPG-like folder: `files/pXX/pID/sID/<dicom>.jpg` images (JPEG, quality 95), `files/pXX/pID/sID.txt`
  reports, and `mimic-cxr-2.0.0-{metadata,split,chexpert}.csv`, so tools written for MIMIC-CXR
  (and syncxr's own `mimic:` source) read synthetic data unchanged.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import re
import tarfile
from pathlib import Path
from typing import Iterable, Iterator, Literal

from syncxr.data.shards import iter_rows, write_csv_atomic, write_text_atomic
from syncxr.errors import UserError
from syncxr.fsio import atomic_path
from syncxr.data.manifest import read_manifest
from syncxr.records import CHEXPERT14, CHEXPERT14_SNAKE

TextChoice = Literal["report", "findings", "impression"]


def _check_dataset(dataset: Path) -> None:
    if read_manifest(dataset) is None:
        raise UserError(f"{dataset}: no manifest.json; is this a syncxr dataset folder?")


def _check_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is an existing file; give a folder to export into")


def _rows(dataset: Path) -> Iterator[dict]:
    _check_dataset(dataset)
    cols = ["sample_id", "seed", "image_png", "findings", "impression", "report", "entities", *CHEXPERT14_SNAKE]
    yield from iter_rows(dataset, columns=cols)


def _labels(row: dict) -> dict[str, float | None]:
    return {k: row[k] for k in CHEXPERT14_SNAKE}


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0  # fixed, so the same dataset gives the same tar bytes
    tar.addfile(info, io.BytesIO(data))


def tar_key(sample_id: str) -> str:
    """A WebDataset key safe as a tar member name: letters, digits, '_' and '-' only (no '/',
    '..', leading '/' or dots, which WebDataset reads as the extension). A changed id gets a short
    hash of the original, so two ids never share a key; the original stays in `<key>.json`."""
    safe = re.sub(r"[^A-Za-z0-9_-]+", "_", sample_id).strip("_")[:120]
    if safe == sample_id and safe:
        return safe
    return f"{safe or 'sample'}-{hashlib.sha256(sample_id.encode()).hexdigest()[:10]}"


TAR_NAME = re.compile(r"syncxr-\d{6}\.tar")


def _write_tar(path: Path, rows: Iterable[dict], text: TextChoice) -> None:
    with atomic_path(path) as tmp, tarfile.open(tmp, "w") as tar:
        for row in rows:
            key = tar_key(row["sample_id"])
            _add(tar, f"{key}.png", row["image_png"])
            _add(tar, f"{key}.txt", row[text].encode())
            meta = {"labels": _labels(row), "entities": json.loads(row["entities"]), "seed": row["seed"]}
            if key != row["sample_id"]:
                meta["sample_id"] = row["sample_id"]
            _add(tar, f"{key}.json", json.dumps(meta, sort_keys=True).encode())


def export_webdataset(dataset: str | Path, out: str | Path, samples_per_tar: int = 1000,
                      text: TextChoice = "report") -> list[Path]:
    """Write `out/syncxr-000000.tar`, ...; returns the tar paths. Tars of an earlier export into
    the same folder that this one does not rewrite are removed, so the folder holds this dataset only."""
    if samples_per_tar < 1:
        raise UserError(f"samples_per_tar must be >= 1, got {samples_per_tar}")
    dataset, out = Path(dataset), Path(out)
    _check_dataset(dataset)
    _check_out(out)
    rows = _rows(dataset)
    paths: list[Path] = []
    while (first := next(rows, None)) is not None:
        path = out / f"syncxr-{len(paths):06d}.tar"
        _write_tar(path, itertools.chain([first], itertools.islice(rows, samples_per_tar - 1)), text)
        paths.append(path)
    if not paths:
        raise UserError(f"{dataset}: the dataset has no accepted samples to export")
    for old in out.iterdir():
        if TAR_NAME.fullmatch(old.name) and old not in paths:
            old.unlink()  # a stale tar of an earlier, larger export
    return paths


def _ids(index: int) -> tuple[int, int, str]:
    """Synthetic subject/study/dicom ids; 'p19' folders keep them apart from real MIMIC ids."""
    subject = 19_000_000 + index
    return subject, 59_000_000 + index, f"syncxr-{index:08d}"


def export_mimic(dataset: str | Path, out: str | Path) -> Path:
    """A MIMIC-CXR-JPG-like folder (every synthetic study in the 'train' split)."""
    dataset, out = Path(dataset), Path(out)
    _check_out(out)
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

