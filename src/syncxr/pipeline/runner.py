"""The generation runner: check, plan, schedule shards on an executor, finish the dataset.

Determinism and resume: the entity plan is made by the balanced sampler once (it is global and
sequential), for n * (1 + plan_margin) samples, and split into shards of fixed membership. Every
per-sample random choice is seeded from (run seed, sample id, attempt), so a shard's content
depends only on the config: any executor, any number of workers, killed and rerun at any moment,
gives the same bytes.

`n` counts accepted pairs. Shards are scheduled in order and scheduling stops once the shards
finished from the start hold n accepted pairs; the dataset is the first n accepted samples in
sample order (the boundary shard is cut, shards beyond it are dropped). If the whole plan holds
fewer than n, one deterministic top-up plan is run. An infrastructure failure fails its shard:
nothing final is written for it, the run ends with exit 1, and a rerun does that shard again.

The parent process never builds a model: the plan's corpus counting and the built-in QC bank run
in a spawned process when a backend is configured for a GPU.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import pyarrow as pa
import pyarrow.parquet as pq

from syncxr.data.integrity import shard_problem
from syncxr.data.manifest import check_folder, finish_manifest, read_manifest, start_manifest
from syncxr.data.shards import REJECTS_DIR, SHARDS_DIR, clean_temp_files, shard_name, write_table_atomic
from syncxr.errors import UserError
from syncxr.pipeline.config import GenerateConfig
from syncxr.pipeline.lock import FolderLock
from syncxr.pipeline.executor import EXECUTORS, Executor, ShardFailure, make_executor
from syncxr.pipeline.local import visible_gpus
from syncxr.pipeline.plan import make_plan
from syncxr.pipeline.shard import WORK_DIR, ShardResult, ShardTask

log = logging.getLogger(__name__)

# The plan is held in memory (about 1.4 kB per sample as compact JSON): 5M samples is about 7 GB.
MAX_PLANNED = 5_000_000


class RunFailed(Exception):
    """Shards failed for reasons outside the samples (outage, out of memory). Nothing of those
    shards was written; rerunning the same command resumes and retries them."""


def shard_ranges(n: int, shard_size: int, start: int = 0) -> list[tuple[int, int]]:
    return [(s, min(s + shard_size, start + n)) for s in range(start, start + n, shard_size)]


def uses_gpu(cfg: GenerateConfig) -> bool:
    """True when a configured backend asks for a CUDA device."""
    from syncxr.pipeline.build import chosen_backends

    return any(str(opts.get("device", "cpu")).startswith("cuda") for _, _, opts in chosen_backends(cfg))


class _Ledger:
    """Accepted counts per shard, and where the dataset's first n accepted pairs end."""

    def __init__(self, n: int, ranges: list[tuple[int, int]]) -> None:
        self.n = n
        self.ranges = ranges
        self.ok: dict[int, int] = {}
        self.seen: dict[int, int] = {}

    def add(self, shard: int, n_ok: int, n_seen: int) -> None:
        self.ok[shard], self.seen[shard] = n_ok, n_seen

    def cut(self) -> Optional[tuple[int, int]]:
        """(last shard, accepted rows kept in it) once the shards done from the start hold n."""
        total = 0
        for shard in range(len(self.ranges)):
            if shard not in self.ok:
                return None
            if total + self.ok[shard] >= self.n:
                return shard, self.n - total
            total += self.ok[shard]
        return None

    def accepted_prefix(self) -> int:
        total = 0
        for shard in range(len(self.ranges)):
            if shard not in self.ok:
                break
            total += self.ok[shard]
        return total


def run_generate(
    cfg: GenerateConfig,
    out: Path,
    workers: int | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    executor: str = "local",
    ray_address: str | None = None,
) -> dict[str, Any]:
    """Generate (or resume) a dataset of cfg.n accepted pairs into `out`; returns the manifest."""
    out = Path(out)
    if executor not in EXECUTORS:
        raise UserError(f"unknown executor {executor!r}; valid: {', '.join(EXECUTORS.names())}")
    from syncxr.pipeline.build import preflight, validate_backends, weight_fingerprints

    t_start = time.perf_counter()
    # Everything that can fail on bad input runs before anything is written.
    if cfg.n_planned > MAX_PLANNED:
        raise UserError(
            f"n={cfg.n} plans {cfg.n_planned:,} samples (with plan_margin={cfg.plan_margin}); one run holds at most "
            f"{MAX_PLANNED:,} in memory (about 1.4 kB each). Make several datasets with different seeds and mix them."
        )
    check_folder(cfg, out)
    validate_backends(cfg)
    weights = weight_fingerprints(cfg)
    check_folder(cfg, out, weights)
    gpus = visible_gpus() if uses_gpu(cfg) else []
    if uses_gpu(cfg) and not gpus:
        raise UserError("the config puts a backend on a CUDA device, but no GPU is visible; set device: cpu "
                        "or run on a GPU machine (`syncxr doctor --config FILE` lists what is missing)")
    preflight(cfg)
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create --out {out}: {e.strerror or e}") from None
    with FolderLock(out):
        try:
            check_folder(cfg, out, weights)  # again, under the lock: another run may have started meanwhile
            t_plan = time.perf_counter()
            plan, plan_info = _isolated(gpus, make_plan, cfg)
            plan_seconds = time.perf_counter() - t_plan
            start_manifest(cfg, out, weights)
            clean_temp_files(out)
            bank_path = _isolated(gpus, _prepare_bank, cfg, out)
        except BaseException:
            if created:
                shutil.rmtree(out, ignore_errors=True)
            raise
        n_shards = -(-len(plan) // cfg.shard_size)
        engine = make_executor(executor, workers=workers, gpus=gpus, ray_address=ray_address, n_shards=n_shards)
        results, topup = _generate(cfg, out, plan, bank_path, engine, on_progress)
        gen_seconds = time.perf_counter() - t_plan - plan_seconds
        throughput = _throughput(results, gen_seconds, plan_seconds, time.perf_counter() - t_start, engine)
        plan_info = {**plan_info, "planned": len(plan), "margin": cfg.plan_margin, "top_up": topup}
        return finish_manifest(cfg, out, plan_info, throughput)


def _prepare_bank(cfg: GenerateConfig, out: Path) -> Optional[Path]:
    from syncxr.pipeline.build import prepare_bank

    return prepare_bank(cfg, out)


def _isolated(gpus: list[str], fn: Callable[..., Any], *args: Any) -> Any:
    """fn(*args) here, or in one spawned process pinned to the first GPU when backends use one
    (the parent must not initialise CUDA: a worker forked or spawned later could not use it)."""
    if not gpus:
        return fn(*args)
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    ctx = mp.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=ctx, initializer=_pin, initargs=(gpus[0],)) as pool:
        return pool.submit(fn, *args).result()


def _pin(gpu: str) -> None:
    os.environ["CUDA_VISIBLE_DEVICES"] = gpu


def _generate(
    cfg: GenerateConfig,
    out: Path,
    plan: list[str],
    bank_path: Optional[Path],
    engine: Executor,
    on_progress: Callable[[int, int], None] | None,
) -> tuple[list[ShardResult], dict[str, Any]]:
    """Main round, then (only if short) one top-up round; returns results and top-up info."""
    ranges = shard_ranges(len(plan), cfg.shard_size)
    ledger = _Ledger(cfg.n, ranges)
    results = _round(cfg, out, plan, ranges, ledger, bank_path, engine, on_progress)
    topup: dict[str, Any] = {"samples": 0}
    if ledger.cut() is None:  # the whole plan is done and holds fewer than n accepted pairs
        short = cfg.n - ledger.accepted_prefix()
        rate = max(ledger.accepted_prefix() / max(1, len(plan)), 0.05)
        extra_n = int(math.ceil(short * (1 + cfg.plan_margin) / rate))
        log.warning("the plan gave %d accepted pairs of %d; top-up round of %d samples", cfg.n - short, cfg.n, extra_n)
        extra, _ = make_plan(cfg, n=extra_n, stream="top-up")
        first = len(plan)
        top_ranges = shard_ranges(len(extra), cfg.shard_size, start=first)
        all_ranges = ranges + top_ranges
        ledger.ranges = all_ranges
        results += _round(cfg, out, plan + extra, all_ranges, ledger, bank_path, engine, on_progress, skip=len(ranges))
        topup = {"samples": len(extra), "shards": len(top_ranges)}
    cut = ledger.cut()
    _finalise(out, ledger, cut)
    if cut is None:
        log.warning("only %d accepted pairs of the %d asked for, after the top-up round; read the reject "
                    "reasons in the card", ledger.accepted_prefix(), cfg.n)
    if on_progress:
        on_progress(cfg.n, cfg.n)
    return results, topup


def _round(
    cfg: GenerateConfig,
    out: Path,
    plan: list[str],
    ranges: list[tuple[int, int]],
    ledger: _Ledger,
    bank_path: Optional[Path],
    engine: Executor,
    on_progress: Callable[[int, int], None] | None,
    skip: int = 0,
) -> list[ShardResult]:
    done = _existing_shards(out, ranges, ledger, skip)
    if on_progress:
        on_progress(min(ledger.accepted_prefix(), cfg.n), cfg.n)
    if ledger.cut() is not None:
        return []
    results: list[ShardResult] = []

    def tasks() -> Iterator[ShardTask]:
        for i in range(skip, len(ranges)):
            if i not in done:
                a, b = ranges[i]
                yield ShardTask(i, a, tuple(plan[a:b]))

    def on_result(res: ShardResult) -> bool:
        results.append(res)
        ledger.add(res.shard, res.n_ok, res.n_ok + res.n_rejected)
        if on_progress:
            on_progress(min(ledger.accepted_prefix(), cfg.n), cfg.n)
        _early_stop(cfg, out, ledger)
        return ledger.cut() is None

    failures: list[ShardFailure] = engine.run(cfg, bank_path, out, tasks(), on_result)
    if failures:
        lines = "\n  ".join(f"shard {f.shard}: {f.error}" for f in failures[:5])
        raise RunFailed(
            f"{len(failures)} shard(s) failed for reasons outside the samples; nothing of them was written, "
            f"and {sum(1 for _ in ledger.ok)} shard(s) are done.\n  {lines}\n"
            "Fix the cause (server, GPU memory) and rerun the same command: it resumes and retries them."
        )
    return results


def _existing_shards(out: Path, ranges: list[tuple[int, int]], ledger: _Ledger, skip: int) -> set[int]:
    """Shards already on disk that hold what they should (else they are redone)."""
    done = set()
    recorded = {e["file"]: e.get("sha256") for e in (read_manifest(out) or {}).get("shards", []) if isinstance(e, dict)}
    for i in range(skip, len(ranges)):
        path = out / SHARDS_DIR / shard_name(i)
        if not path.is_file():
            continue
        problem = shard_problem(path, ranges[i], recorded.get(f"{SHARDS_DIR}/{path.name}"))
        if problem:
            log.warning("%s: %s; generating this shard again", path, problem)
            path.unlink()
            (out / REJECTS_DIR / path.name).unlink(missing_ok=True)
            continue
        n_ok = pq.ParquetFile(path).metadata.num_rows
        rej = out / REJECTS_DIR / path.name
        n_bad = pq.ParquetFile(rej).metadata.num_rows if rej.is_file() else 0
        ledger.add(i, n_ok, n_ok + n_bad)
        done.add(i)
    return done


def _early_stop(cfg: GenerateConfig, out: Path, ledger: _Ledger) -> None:
    rule = cfg.early_stop
    if rule.min_accept_rate <= 0 or len(ledger.seen) < rule.after_shards or len(ledger.seen) > rule.after_shards:
        return
    seen, ok = sum(ledger.seen.values()), sum(ledger.ok.values())
    if seen and ok / seen < rule.min_accept_rate:
        reasons = Counter()
        for path in (out / REJECTS_DIR).glob("shard-*.parquet"):
            t = pq.read_table(path, columns=["stage", "reason"])
            reasons.update(f"{s}:{r}" for s, r in zip(t.column("stage").to_pylist(), t.column("reason").to_pylist()))
        top = ", ".join(f"{k} ({v})" for k, v in reasons.most_common(4))
        raise UserError(
            f"stopping early: the first {len(ledger.seen)} shards accepted {ok} of {seen} samples "
            f"({ok / seen:.1%}), below early_stop.min_accept_rate={rule.min_accept_rate}. Most common reject "
            f"reasons: {top}. Read rejects/*.parquet (or the card), fix the backends or prompts, and rerun; "
            "set early_stop.min_accept_rate=0 to go on anyway."
        )


def _finalise(out: Path, ledger: _Ledger, cut: Optional[tuple[int, int]]) -> None:
    """Keep exactly the first n accepted pairs: cut the boundary shard, drop shards past it."""
    if cut is None:
        return
    last, keep = cut
    path = out / SHARDS_DIR / shard_name(last)
    table = pq.read_table(path)
    if table.num_rows > keep:
        cut_index = table.column("index")[keep].as_py()  # first surplus sample
        write_table_atomic(table.slice(0, keep), path)
        rej = out / REJECTS_DIR / shard_name(last)
        if rej.is_file():
            rejects = pq.read_table(rej)
            mask = pa.array([i < cut_index for i in rejects.column("index").to_pylist()], type=pa.bool_())
            write_table_atomic(rejects.filter(mask), rej)
    for folder in (SHARDS_DIR, REJECTS_DIR):
        for p in (out / folder).glob("shard-*.parquet"):
            if int(p.stem.split("-")[1]) > last:
                p.unlink()
    shutil.rmtree(out / WORK_DIR, ignore_errors=True)


def _throughput(results: list[ShardResult], gen_s: float, plan_s: float, total_s: float, engine: Executor) -> dict:
    n = sum(r.n_ok + r.n_rejected for r in results)
    stage_s: dict[str, float] = {}
    for r in results:
        for k, v in r.stage_seconds.items():
            stage_s[k] = stage_s.get(k, 0.0) + v
    return {
        "samples_this_run": n,
        "executor": engine.name,
        "workers": engine.workers,
        "plan_seconds": round(plan_s, 3),
        "generate_seconds": round(gen_s, 3),
        "total_seconds": round(total_s, 3),
        "pairs_per_second": round(n / gen_s, 2) if gen_s > 0 and n else None,
        # per-stage rate: samples per second of one worker's busy time in that stage
        "stage_samples_per_second": {k: round(n / v, 1) for k, v in stage_s.items() if v > 0},
        "resumed_from_work_folder": sorted({r.resumed_after for r in results if r.resumed_after}),
    }

