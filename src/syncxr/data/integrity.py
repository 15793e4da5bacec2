"""Checks that a dataset folder holds what its manifest says: `syncxr verify DIR`, and the
runner's check of shards it finds before it trusts them on resume."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import pyarrow.parquet as pq

from syncxr.data.shards import REJECTS_DIR, SHARDS_DIR, sample_id_of, sha256_file


def shard_problem(path: Path, index_range: tuple[int, int], sha256: Optional[str] = None) -> str:
    """Why a shard file is not the shard it should be ("" when it is): unreadable, sample ids
    outside its range, duplicates, or a hash different from the manifest's record."""
    try:
        table = pq.read_table(path, columns=["sample_id", "index"])
    except Exception as e:  # truncated or not Parquet
        return f"unreadable ({type(e).__name__}: {str(e)[:120]})"
    a, b = index_range
    indices = table.column("index").to_pylist()
    ids = table.column("sample_id").to_pylist()
    if any(not a <= i < b for i in indices) or ids != [sample_id_of(i) for i in indices]:
        return f"holds samples outside its range {sample_id_of(a)}..{sample_id_of(b - 1)} (copied from another shard?)"
    if len(set(indices)) != len(indices) or indices != sorted(indices):
        return "holds duplicate or unordered samples"
    if sha256 and sha256_file(path) != sha256:
        return "its content differs from the hash the manifest recorded"
    return ""


def verify_dataset(folder: Path) -> list[str]:
    """Every problem found in a dataset folder (empty when it is sound)."""
    folder = Path(folder)
    path = folder / "manifest.json"
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        return [f"{path}: missing; {folder} is not a syncxr dataset (made by `syncxr generate`)"]
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        return [f"{path}: not valid JSON ({e})"]
    if not isinstance(manifest, dict):
        return [f"{path}: expected a JSON object, found {type(manifest).__name__}"]
    problems: list[str] = []
    if manifest.get("status") != "complete":
        problems.append(f"{path}: status is {manifest.get('status')!r}, not 'complete' (rerun the generate command)")
    shard_size = (manifest.get("config") or {}).get("shard_size")
    listed = {e.get("file"): e for e in manifest.get("shards", []) if isinstance(e, dict)}
    on_disk = {f"{SHARDS_DIR}/{p.name}" for p in (folder / SHARDS_DIR).glob("shard-*.parquet")}
    problems += [f"{f}: listed in the manifest but missing" for f in sorted(set(listed) - on_disk)]
    problems += [f"{f}: on disk but not in the manifest" for f in sorted(on_disk - set(listed))]
    seen: dict[str, str] = {}
    rows = 0
    for rel in sorted(on_disk & set(listed)):
        entry, shard_path = listed[rel], folder / rel
        k = int(Path(rel).stem.split("-")[1])
        span = (k * shard_size, (k + 1) * shard_size) if isinstance(shard_size, int) else (0, 1 << 62)
        problem = shard_problem(shard_path, span, entry.get("sha256"))
        if problem:
            problems.append(f"{rel}: {problem}")
            continue
        ids = pq.read_table(shard_path, columns=["sample_id"]).column("sample_id").to_pylist()
        rows += len(ids)
        if entry.get("rows") is not None and entry["rows"] != len(ids):
            problems.append(f"{rel}: {len(ids)} rows, the manifest says {entry['rows']}")
        for sid in ids:
            if sid in seen:
                problems.append(f"{rel}: sample {sid} also in {seen[sid]}")
            seen[sid] = rel
        rej = entry.get("rejects_file")
        if rej and entry.get("rejects_sha256") and (not (folder / rej).is_file() or sha256_file(folder / rej) != entry["rejects_sha256"]):
            problems.append(f"{rej}: missing or different from the hash the manifest recorded")
    accepted = (manifest.get("counts") or {}).get("accepted")
    if accepted is not None and accepted != rows and not problems:
        problems.append(f"{path}: counts.accepted is {accepted} but the shards hold {rows} rows")
    if not (folder / REJECTS_DIR).is_dir():
        problems.append(f"{folder / REJECTS_DIR}: missing")
    return problems
