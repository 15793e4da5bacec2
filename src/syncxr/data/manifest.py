"""manifest.json, part of the dataset format: resolved config, versions, per-shard hashes,
counts. Guards a folder against a second, different config. `cfg` is the generation config
(`syncxr.pipeline.config.GenerateConfig`); only its pydantic dump and `n` are read here."""

from __future__ import annotations

import hashlib
import json
import platform
import time
from collections import Counter
from pathlib import Path
from typing import Any

from pydantic import BaseModel

import pyarrow.parquet as pq

from syncxr import __version__
from syncxr.data.shards import REJECTS_DIR, SHARDS_DIR, sha256_file, write_json_atomic
from syncxr.errors import UserError
from syncxr.fsio import read_json_object

MANIFEST = "manifest.json"
FORMAT = "syncxr-dataset/1"


def identity_of(cfg: BaseModel) -> dict[str, Any]:
    """The config content that defines a dataset (`identity()` when the config has one)."""
    identity = getattr(cfg, "identity", None)
    return identity() if callable(identity) else cfg.model_dump(mode="json")


def identity_hash(cfg: BaseModel) -> str:
    """Stable hash of the dataset-defining config (key order independent)."""
    blob = json.dumps(identity_of(cfg), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def _diff(old: Any, new: Any, prefix: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for k in sorted(set(old) | set(new)):
            out += _diff(old.get(k), new.get(k), f"{prefix}.{k}" if prefix else k)
        return out
    return [] if old == new else [f"{prefix}: {old!r} (in folder) vs {new!r} (now)"]


def read_manifest(out: Path) -> dict[str, Any] | None:
    path = Path(out) / MANIFEST
    if not path.is_file():
        return None
    return read_json_object(path, "syncxr dataset manifest")


def check_folder(cfg: BaseModel, out: Path, weights: dict[str, str] | None = None) -> None:
    """Refuse a folder that holds another config, other weights or foreign files (writes nothing).
    `weights`: backend -> fingerprint of its weights (syncxr.weights); a weight changed since the
    folder was started is refused when both fingerprints pin the weights."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; give a folder path")
    old = read_manifest(out)
    if old is None:
        if out.exists() and any(p for p in out.iterdir() if not p.name.startswith(".")):
            raise UserError(
                f"{out} exists, is not empty and has no {MANIFEST}: refusing to write a dataset into "
                f"it. Choose a new --out folder or empty this one."
            )
    elif old.get("config_hash") != identity_hash(cfg):
        changes = _diff(old.get("config", {}), identity_of(cfg))
        shown = "\n  ".join(changes[:12]) or "(config hash differs)"
        raise UserError(
            f"{out} holds a dataset made with a different config; resuming would mix two datasets.\n"
            f"  {shown}\nRerun with the original config (and --n) to resume, or choose a new --out folder."
        )
    else:
        changed = _changed_weights(old.get("weights") or {}, weights or {})
        if changed:
            raise UserError(
                f"{out} was started with other model weights; resuming would mix two datasets.\n  "
                + "\n  ".join(changed) + "\nPoint the options at the original weights, or choose a new --out folder."
            )


def _changed_weights(old: dict[str, str], new: dict[str, str]) -> list[str]:
    from syncxr.weights import is_resolved

    return [
        f"{k}: {old[k]} (in folder) vs {new[k]} (now)"
        for k in sorted(set(old) & set(new))
        if old[k] != new[k] and is_resolved(old[k]) and is_resolved(new[k])
    ]


def start_manifest(cfg: BaseModel, out: Path, weights: dict[str, str] | None = None) -> None:
    """Write (or refresh) the manifest with status 'running'; keeps the first start time."""
    out = Path(out)
    old = read_manifest(out)
    manifest = {
        "format": FORMAT,
        "status": "running",
        "config_hash": identity_hash(cfg),
        "config": identity_of(cfg),
        "executor": cfg.model_dump(mode="json").get("executor"),
        "versions": _versions(),
        "weights": weights or (old or {}).get("weights") or {},
        "started": (old or {}).get("started") or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    write_json_atomic(manifest, out / MANIFEST)


def _versions() -> dict[str, str]:
    import numpy
    import pyarrow

    return {
        "syncxr": __version__,
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "pyarrow": pyarrow.__version__,
    }


def _count_rows(path: Path) -> int:
    return pq.ParquetFile(path).metadata.num_rows


def finish_manifest(cfg: BaseModel, out: Path, plan_info: dict, throughput: dict) -> dict[str, Any]:
    out = Path(out)
    shards, rejects = [], Counter()
    n_ok = 0
    for path in sorted((out / SHARDS_DIR).glob("shard-*.parquet")):
        rows = _count_rows(path)
        n_ok += rows
        rej = out / REJECTS_DIR / path.name
        entry = {"file": f"{SHARDS_DIR}/{path.name}", "rows": rows, "sha256": sha256_file(path)}
        if rej.is_file():
            t = pq.read_table(rej, columns=["stage", "reason"])
            for stage, reason in zip(t.column("stage").to_pylist(), t.column("reason").to_pylist()):
                rejects[f"{stage}:{reason}"] += 1
            entry["rejects_file"] = f"{REJECTS_DIR}/{rej.name}"
            entry["rejects_rows"] = t.num_rows
            entry["rejects_sha256"] = sha256_file(rej)
        shards.append(entry)
    manifest = read_manifest(out) or {}
    manifest.update(
        {
            "status": "complete" if n_ok >= getattr(cfg, "n") else "short",
            "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "counts": {
                "requested": getattr(cfg, "n"),  # accepted pairs asked for
                "accepted": n_ok,
                "rejected": sum(rejects.values()),
                "planned": plan_info.get("planned"),
            },
            "rejects_by_reason": dict(sorted(rejects.items())),
            "shards": shards,
            "plan": plan_info,
            "throughput_last_run": throughput,
        }
    )
    write_json_atomic(manifest, out / MANIFEST)
    return manifest
