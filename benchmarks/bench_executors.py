"""Local vs Ray executor on the same config: wall time, pairs/s, and the Ray overhead ratio.

    RAY_AUTH_MODE=disabled .venv/bin/python benchmarks/bench_executors.py --n 3000 --workers 2

Both runs start from an empty folder (plan and QC bank included) in fresh processes, so start-up
costs (spawned workers, a local Ray) are counted. Prints a table and checks that both wrote the
same bytes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]


def digest(out: Path) -> str:
    h = hashlib.sha256()
    for sub in ("shards", "rejects"):
        for p in sorted((out / sub).glob("*.parquet")):
            h.update(p.name.encode() + p.read_bytes())
    return h.hexdigest()[:16]


def run(executor: str, n: int, workers: int, config: Path, tmp: Path) -> dict:
    out = tmp / executor
    cmd = [sys.executable, "-m", "syncxr", "generate", "--config", str(config), "--out", str(out), "--n", str(n),
           "--executor", executor, "--no-card"]
    if executor == "local":
        cmd += ["--workers", str(workers)]
    env = dict(os.environ, RAY_AUTH_MODE="disabled", RAY_DISABLE_USAGE_STATS="1")
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    manifest = json.loads((out / "manifest.json").read_text())
    tp = manifest["throughput_last_run"]
    return {"executor": executor, "wall_s": wall, "generate_s": tp["generate_seconds"],
            "pairs": manifest["counts"]["accepted"], "digest": digest(out)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--config", type=Path, default=ROOT / "configs/generate/quick.yaml")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = [run(e, args.n, args.workers, args.config, Path(tmp)) for e in ("local", "ray")]
    table = Table(title=f"executors, n={args.n}, {os.cpu_count()} cores")
    for col in ("executor", "wall s", "generate s", "pairs/s (wall)", "ratio to local", "shards digest"):
        table.add_column(col)
    base = rows[0]["wall_s"]
    for r in rows:
        table.add_row(r["executor"], f"{r['wall_s']:.1f}", f"{r['generate_s']:.1f}", f"{r['pairs'] / r['wall_s']:.1f}",
                      f"{r['wall_s'] / base:.2f}", r["digest"])
    Console().print(table)
    print("same bytes:", rows[0]["digest"] == rows[1]["digest"])


if __name__ == "__main__":
    main()
