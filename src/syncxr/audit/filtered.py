"""Write a copy of a syncxr dataset without some samples (the privacy audit's near copies).

The copy is a dataset in its own right: the same shard files (minus the dropped rows), each
dropped sample added to that shard's rejects file as stage `audit` (reason and detail say which
real sample it was close to, on what measure), and a manifest with fresh hashes and counts, so
`syncxr verify` passes and the card counts the drops like any other reject. The manifest's
config hash is marked as filtered, so `syncxr generate` refuses to resume into the copy (which
would refill the dropped samples).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from syncxr.data.integrity import verify_dataset
from syncxr.data.manifest import MANIFEST, read_manifest
from syncxr.data.schema import REJECT_SCHEMA
from syncxr.data.shards import (
    REJECTS_DIR,
    SHARDS_DIR,
    sha256_file,
    write_json_atomic,
    write_table_atomic,
)
from syncxr.errors import UserError
from syncxr.fsio import ensure_dir

STAGE = "audit"


def write_filtered(src: str | Path, dst: str | Path, drop: dict[str, tuple[str, str]],
                   record: dict | None = None) -> dict:
    """Copy dataset `src` to `dst` without the samples in `drop` (sample_id -> (reason, detail)).
    Returns the new manifest. `record`: what the filter was (measure, threshold), kept in it."""
    src, dst = Path(src), Path(dst)
    manifest = read_manifest(src)
    if manifest is None:
        raise UserError(f"{src}: no {MANIFEST}; the near-copy filter needs a syncxr dataset folder")
    problems = verify_dataset(src)
    if problems:
        raise UserError(f"{src}: does not match its manifest ({problems[0]}); run `syncxr verify {src}` first")
    if dst.resolve() == src.resolve():
        raise UserError(f"--filtered {dst} is the audited dataset itself; give a new folder")
    if dst.exists() and (not dst.is_dir() or any(dst.iterdir())):
        raise UserError(f"--filtered {dst} exists and is not an empty folder; give a new folder")
    ensure_dir(dst / SHARDS_DIR)
    ensure_dir(dst / REJECTS_DIR)
    shards, reasons, kept, dropped = [], Counter(), 0, 0
    for entry in manifest.get("shards", []):
        name = Path(entry["file"]).name
        table = pq.read_table(src / entry["file"])
        ids = table.column("sample_id").to_pylist()
        mask = pa.array([sid not in drop for sid in ids])
        out_table = table.filter(mask)
        write_table_atomic(out_table, dst / SHARDS_DIR / name)
        rejects = _rejects(src, entry, table.filter(pc.invert(mask)), drop)
        new = {"file": f"{SHARDS_DIR}/{name}", "rows": out_table.num_rows, "sha256": sha256_file(dst / SHARDS_DIR / name)}
        if rejects is not None:
            write_table_atomic(rejects, dst / REJECTS_DIR / name)
            new.update(rejects_file=f"{REJECTS_DIR}/{name}", rejects_rows=rejects.num_rows,
                       rejects_sha256=sha256_file(dst / REJECTS_DIR / name))
            for stage, reason in zip(rejects.column("stage").to_pylist(), rejects.column("reason").to_pylist()):
                reasons[f"{stage}:{reason}"] += 1
        kept += out_table.num_rows
        dropped += len(ids) - out_table.num_rows
        shards.append(new)
    digest = hashlib.sha256(json.dumps(sorted(drop)).encode()).hexdigest()[:8]
    manifest.update(
        status="complete",
        config_hash=f"{manifest.get('config_hash')}-filtered-{digest}",
        counts={**manifest.get("counts", {}), "accepted": kept, "rejected": sum(reasons.values())},
        rejects_by_reason=dict(sorted(reasons.items())),
        shards=shards,
        filtered={"from": str(src), "from_config_hash": manifest.get("config_hash"), "dropped": dropped,
                  "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **(record or {})},
    )
    write_json_atomic(manifest, dst / MANIFEST)
    return manifest


def _rejects(src: Path, entry: dict, dropped: pa.Table, drop: dict[str, tuple[str, str]]) -> pa.Table | None:
    """The shard's rejects (if any) plus one row per dropped sample."""
    old = pq.read_table(src / entry["rejects_file"]) if entry.get("rejects_file") else None
    if dropped.num_rows == 0:
        return old
    d = dropped.to_pydict()
    rows = {
        "sample_id": d["sample_id"], "index": d["index"], "seed": d["seed"],
        "stage": [STAGE] * dropped.num_rows,
        "reason": [drop[s][0] for s in d["sample_id"]],
        "detail": [drop[s][1] for s in d["sample_id"]],
        "entities": d["entities"], "findings": d["findings"], "impression": d["impression"],
        "history": d["history"], "write_attempts": d["write_attempts"], "image_attempts": d["image_attempts"],
    }
    new = pa.Table.from_pydict(rows, schema=REJECT_SCHEMA)
    return pa.concat_tables([old.cast(REJECT_SCHEMA), new]) if old is not None else new
