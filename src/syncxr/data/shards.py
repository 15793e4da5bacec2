"""Parquet shards: Sample records -> rows (SHARD_SCHEMA / REJECT_SCHEMA), atomic writes, hashes."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from syncxr import fsio
from syncxr.fsio import atomic_path
from syncxr.data.schema import REJECT_SCHEMA, SHARD_SCHEMA
from syncxr.records import CHEXPERT14_SNAKE, Sample

SHARDS_DIR, REJECTS_DIR = "shards", "rejects"


def sample_id_of(index: int) -> str:
    """The id of the sample at position `index` of a run (part of the dataset format)."""
    return f"syncxr-{index:08d}"


def shard_name(shard: int) -> str:
    return f"shard-{shard:05d}.parquet"


def _entities_json(entities: list) -> str:
    return json.dumps([e.to_dict() for e in entities], sort_keys=True)


def report_text(findings: str, impression: str) -> str:
    return f"FINDINGS: {findings}\n\nIMPRESSION: {impression}"


def accepted_table(samples: list[Sample], width: int, height: int) -> pa.Table:
    rows: dict[str, list] = {name: [] for name in SHARD_SCHEMA.names}
    for s in samples:
        rows["sample_id"].append(s.sample_id)
        rows["index"].append(s.index)
        rows["seed"].append(s.seed)
        rows["image_png"].append(s.image_png)
        rows["width"].append(width)
        rows["height"].append(height)
        rows["findings"].append(s.findings)
        rows["impression"].append(s.impression)
        rows["report"].append(report_text(s.findings, s.impression))
        rows["entities"].append(_entities_json(s.entities))
        rows["extracted"].append(_entities_json(s.extracted))
        rows["masks"].append([{"name": k, "png": v} for k, v in sorted(s.masks.items())])
        for label in (*CHEXPERT14_SNAKE, "no_finding_chexpert"):
            rows[label].append(s.labels.get(label))
        rows["qc"].append(json.dumps(s.qc, sort_keys=True))
        rows["write_attempts"].append(s.write_attempts)
        rows["image_attempts"].append(s.image_attempts)
        rows["backends"].append(json.dumps(s.backends, sort_keys=True))
        rows["history"].append(json.dumps(s.history))
    return pa.Table.from_pydict(rows, schema=SHARD_SCHEMA)


def rejects_table(samples: list[Sample]) -> pa.Table:
    rows: dict[str, list] = {name: [] for name in REJECT_SCHEMA.names}
    for s in samples:
        assert s.rejected is not None
        rows["sample_id"].append(s.sample_id)
        rows["index"].append(s.index)
        rows["seed"].append(s.seed)
        rows["stage"].append(s.rejected.stage)
        rows["reason"].append(s.rejected.reason)
        rows["detail"].append(s.rejected.detail)
        rows["entities"].append(_entities_json(s.entities))
        rows["findings"].append(s.findings)
        rows["impression"].append(s.impression)
        rows["history"].append(json.dumps(s.history))
        rows["write_attempts"].append(s.write_attempts)
        rows["image_attempts"].append(s.image_attempts)
    return pa.Table.from_pydict(rows, schema=REJECT_SCHEMA)


def write_table_atomic(table: pa.Table, path: Path) -> None:
    """Write through the atomic writer (syncxr.fsio.atomic_path): a reader never sees half a file."""
    with atomic_path(path) as tmp:
        # Fixed writer options so the same rows give the same bytes.
        pq.write_table(table, tmp, compression="zstd", row_group_size=256, write_statistics=False)


def write_json_atomic(obj: object, path: Path) -> None:
    fsio.write_json_atomic(path, obj)


def write_text_atomic(text: str | bytes, path: Path) -> None:
    fsio.write_bytes_atomic(path, text.encode() if isinstance(text, str) else text)


def write_csv_atomic(path: Path, header: list[str], rows: list[list]) -> None:
    import csv
    import io

    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(header)
    w.writerows(rows)
    write_text_atomic(buf.getvalue(), path)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def iter_rows(folder: Path, sub: str = SHARDS_DIR, columns: list[str] | None = None) -> Iterator[dict]:
    """Stream rows of a dataset folder's shards (or rejects), one record batch at a time."""
    for path in sorted((folder / sub).glob("shard-*.parquet")):
        pf = pq.ParquetFile(path)
        for batch in pf.iter_batches(batch_size=256, columns=columns):
            yield from batch.to_pylist()


def clean_temp_files(folder: Path) -> int:
    """Remove temp files left by a killed run; returns how many were removed."""
    n = 0
    for sub in (SHARDS_DIR, REJECTS_DIR):
        for tmp in (folder / sub).glob(".*.tmp"):
            tmp.unlink(missing_ok=True)
            n += 1
    return n
