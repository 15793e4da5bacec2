"""The generation runner: plan -> shards, resumable, with local worker processes.

Determinism and resume: the entity plan is computed by the balanced sampler in the parent (it is
a global, sequential algorithm), then split into shards of fixed membership. Every per-sample
random choice is seeded from (run seed, sample id), so a shard's content depends only on the
config. A shard is done when its file exists (written atomically, after its rejects file), so a
run killed at any moment and rerun with the same command gives byte-identical shards.
"""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
import os
import shutil
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from syncxr.data.shards import (
    REJECTS_DIR,
    SHARDS_DIR,
    accepted_table,
    clean_temp_files,
    rejects_table,
    shard_name,
    write_table_atomic,
)
from syncxr.pipeline.config import GenerateConfig
from syncxr.pipeline.plan import make_plan
from syncxr.data.manifest import check_folder, finish_manifest, start_manifest
from syncxr.records import Entity, Sample, derive_seed

log = logging.getLogger(__name__)


def sample_id_of(index: int) -> str:
    return f"syncxr-{index:08d}"


@dataclass
class ShardResult:
    shard: int
    n_ok: int
    n_rejected: int
    seconds: float
    stage_seconds: dict[str, float] = field(default_factory=dict)
    skipped: bool = False


# --- worker side -------------------------------------------------------------------------

_WORKER: dict[str, Any] = {}


def _init_worker(cfg_json: str, bank_path: Optional[str]) -> None:
    from syncxr.pipeline.build import build_stages

    cfg = GenerateConfig.model_validate_json(cfg_json)
    _WORKER["cfg"] = cfg
    _WORKER["stages"] = build_stages(cfg, Path(bank_path) if bank_path else None)


def _process_shard(shard: int, plan: list[str], first_index: int, out: str) -> ShardResult:
    cfg: GenerateConfig = _WORKER["cfg"]
    stages = _WORKER["stages"]
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    samples = [
        Sample(
            sample_id=sample_id_of(first_index + i),
            index=first_index + i,
            seed=derive_seed(cfg.seed, sample_id_of(first_index + i)),
            entities=[Entity.from_dict(d) for d in json.loads(ents)],
        )
        for i, ents in enumerate(plan)
    ]
    for start in range(0, len(samples), cfg.batch_size):
        batch = samples[start : start + cfg.batch_size]
        for stage in stages:
            ts = time.perf_counter()
            batch = stage.process(batch)
            timings[stage.name] = timings.get(stage.name, 0.0) + time.perf_counter() - ts
    ok = [s for s in samples if s.ok]
    bad = [s for s in samples if not s.ok]
    folder = Path(out)
    size = cfg.image.size
    # Rejects first: the shard file's presence is the "done" marker.
    write_table_atomic(rejects_table(bad), folder / REJECTS_DIR / shard_name(shard))
    write_table_atomic(accepted_table(ok, size, size), folder / SHARDS_DIR / shard_name(shard))
    return ShardResult(shard, len(ok), len(bad), time.perf_counter() - t0, timings)


# --- parent side -------------------------------------------------------------------------


def shard_ranges(n: int, shard_size: int) -> list[tuple[int, int]]:
    return [(s, min(s + shard_size, n)) for s in range(0, n, shard_size)]


def default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def run_generate(
    cfg: GenerateConfig,
    out: Path,
    workers: int | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Generate (or resume) a dataset into `out`; returns the final manifest."""
    from syncxr.pipeline.build import prepare_bank, validate_backends

    out = Path(out)
    workers = workers or default_workers()
    t_start = time.perf_counter()
    # Everything that can fail on bad input runs before anything is written.
    check_folder(cfg, out)
    validate_backends(cfg)
    t_plan = time.perf_counter()
    plan, plan_info = make_plan(cfg)
    plan_seconds = time.perf_counter() - t_plan
    created = not out.exists()
    try:
        start_manifest(cfg, out)
        clean_temp_files(out)
        bank_path = prepare_bank(cfg, out)
    except BaseException:
        if created:
            shutil.rmtree(out, ignore_errors=True)
        raise

    ranges = shard_ranges(len(plan), cfg.shard_size)
    todo = [i for i, _ in enumerate(ranges) if not (out / SHARDS_DIR / shard_name(i)).is_file()]
    todo_set = set(todo)
    done_samples = sum(b - a for i, (a, b) in enumerate(ranges) if i not in todo_set)
    if on_progress:
        on_progress(done_samples, len(plan))
    log.info("%d shards, %d to do, %d workers", len(ranges), len(todo), workers)

    results: list[ShardResult] = []
    cfg_json = cfg.model_dump_json()
    bank_arg = str(bank_path) if bank_path else None

    def submit_args(i: int) -> tuple:
        a, b = ranges[i]
        return (i, plan[a:b], a, str(out))

    t_gen = time.perf_counter()
    if workers == 1 or len(todo) <= 1:
        _init_worker(cfg_json, bank_arg)
        for i in todo:
            res = _process_shard(*submit_args(i))
            results.append(res)
            done_samples += res.n_ok + res.n_rejected
            if on_progress:
                on_progress(done_samples, len(plan))
    else:
        ctx = mp.get_context("fork" if hasattr(os, "fork") else "spawn")
        with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker, initargs=(cfg_json, bank_arg)) as ex:
            pending = {ex.submit(_process_shard, *submit_args(i)) for i in todo}
            while pending:
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in finished:
                    res = fut.result()
                    results.append(res)
                    done_samples += res.n_ok + res.n_rejected
                    if on_progress:
                        on_progress(done_samples, len(plan))
    gen_seconds = time.perf_counter() - t_gen
    throughput = _throughput(results, gen_seconds, plan_seconds, time.perf_counter() - t_start, workers)
    manifest = finish_manifest(cfg, out, plan_info, throughput)
    if on_progress:
        on_progress(len(plan), len(plan))
    return manifest


def _throughput(results: list[ShardResult], gen_s: float, plan_s: float, total_s: float, workers: int) -> dict:
    n = sum(r.n_ok + r.n_rejected for r in results)
    stage_s: dict[str, float] = {}
    for r in results:
        for k, v in r.stage_seconds.items():
            stage_s[k] = stage_s.get(k, 0.0) + v
    return {
        "samples_this_run": n,
        "workers": workers,
        "plan_seconds": round(plan_s, 3),
        "generate_seconds": round(gen_s, 3),
        "total_seconds": round(total_s, 3),
        "pairs_per_second": round(n / gen_s, 2) if gen_s > 0 and n else None,
        # per-stage rate: samples per second of one worker's busy time in that stage
        "stage_samples_per_second": {k: round(n / v, 1) for k, v in stage_s.items() if v > 0},
    }
