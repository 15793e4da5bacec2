"""The local executor: shards on worker processes of this machine.

Spawn-safe by construction: worker processes start with `spawn` (never `fork`, which breaks a
CUDA context), each builds the stages itself, and on a GPU box each worker is pinned to one GPU
with `CUDA_VISIBLE_DEVICES` before anything imports torch, so a backend configured with
`device: cuda` sees exactly one card. The parent process never builds a model.

With one worker and no GPU backend the shards run in this process (no start-up cost).
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional

from syncxr.errors import UserError
from syncxr.pipeline.config import GenerateConfig
from syncxr.pipeline.executor import ShardFailure
from syncxr.pipeline.shard import ShardResult, ShardTask, process_shard

log = logging.getLogger(__name__)


class ShardWorker:
    """The stages of one worker, built once, applied to shard after shard."""

    def __init__(self, cfg: GenerateConfig, bank_path: Optional[Path]) -> None:
        from syncxr.pipeline.build import build_stages

        self.cfg = cfg
        self.stages = build_stages(cfg, bank_path)

    def __call__(self, task: ShardTask, out: Path) -> ShardResult:
        cfg = self.cfg
        return process_shard(self.stages, cfg.seed, cfg.batch_size, cfg.image.size, task, out)


# --- worker-process side (these globals exist only inside spawned workers) -------------------

_PROCESS_WORKER: Optional[ShardWorker] = None
_INIT_ERROR: Optional[BaseException] = None


def _init_process(cfg_json: str, bank_path: Optional[str], gpus: Any) -> None:
    global _PROCESS_WORKER, _INIT_ERROR
    if gpus is not None:  # pin before anything imports torch
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpus.get())
    try:
        cfg = GenerateConfig.model_validate_json(cfg_json)
        _PROCESS_WORKER = ShardWorker(cfg, Path(bank_path) if bank_path else None)
    except BaseException as e:  # reported with the first task, not as a broken pool
        _INIT_ERROR = e


def _run_in_process(task: ShardTask, out: str) -> ShardResult:
    if _INIT_ERROR is not None:
        raise _INIT_ERROR
    assert _PROCESS_WORKER is not None
    return _PROCESS_WORKER(task, Path(out))


# --- parent side ------------------------------------------------------------------------------


def default_workers() -> int:
    """The CPU cores this process may use."""
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def local_executor(workers: Optional[int], gpus: list[str], n_shards: int) -> "LocalExecutor":
    """The executor `--executor local` gets: `workers` processes (default one per visible GPU
    when a backend uses one, else one per core), never more than there are shards (each would
    start, build every model, and wait); one CPU worker runs in this process."""
    cores = default_workers()
    wanted = workers or (len(gpus) if gpus else cores)
    if workers and workers > cores and not gpus:
        log.warning("--workers %d is more than the %d CPU cores here", workers, cores)
    return LocalExecutor(max(1, min(wanted, n_shards)), gpus=gpus or None, in_process=True)


class LocalExecutor:
    """Run shard tasks in order on `workers` processes (one per GPU in `gpus`, if given)."""

    name = "local"

    def __init__(self, workers: int, gpus: Optional[list[str]] = None, in_process: bool = False) -> None:
        if gpus:
            workers = min(workers, len(gpus))
        self.workers = max(1, workers)
        self.gpus = gpus
        self.in_process = in_process and self.workers == 1 and not gpus

    def run(
        self,
        cfg: GenerateConfig,
        bank_path: Optional[Path],
        out: Path,
        tasks: Iterable[ShardTask],
        on_result: Callable[[ShardResult], bool],
    ) -> list[ShardFailure]:
        """Run `tasks` (in order) until they are done, `on_result` returns False, or a shard fails
        (then no new shard starts; those in flight finish). Returns the failures."""
        if self.in_process:
            return _run_here(ShardWorker(cfg, bank_path), out, iter(tasks), on_result)
        ctx = mp.get_context("spawn")
        gpus = None
        if self.gpus:
            gpus = ctx.Queue()
            for g in self.gpus[: self.workers]:
                gpus.put(g)
        init = (cfg.model_dump_json(), str(bank_path) if bank_path else None, gpus)
        with ProcessPoolExecutor(self.workers, mp_context=ctx, initializer=_init_process, initargs=init) as pool:
            return _run_pool(pool, self.workers, str(out), iter(tasks), on_result)


def _run_here(worker: ShardWorker, out: Path, tasks: Iterator[ShardTask], on_result: Callable[[ShardResult], bool]) -> list[ShardFailure]:
    from syncxr.errors import InfrastructureError

    for task in tasks:
        try:
            result = worker(task, out)
        except (InfrastructureError, OSError, MemoryError) as e:
            return [ShardFailure(task.shard, f"{type(e).__name__}: {e}")]
        if not on_result(result):
            break
    return []


def _run_pool(
    pool: ProcessPoolExecutor, width: int, out: str, tasks: Iterator[ShardTask], on_result: Callable[[ShardResult], bool]
) -> list[ShardFailure]:
    pending: dict[Future, int] = {}
    failures: list[ShardFailure] = []
    scheduling = True

    def fill() -> None:
        while scheduling and len(pending) < width:
            task = next(tasks, None)
            if task is None:
                return
            pending[pool.submit(_run_in_process, task, out)] = task.shard

    fill()
    while pending:
        finished, _ = wait(pending, return_when=FIRST_COMPLETED)
        for fut in finished:
            shard = pending.pop(fut)
            try:
                result = fut.result()
            except UserError:
                raise  # a backend that cannot be built: the config is wrong (exit 2)
            except Exception as e:  # the shard failed; nothing final was written for it
                log.error("shard %d failed: %s: %s", shard, type(e).__name__, e)
                failures.append(ShardFailure(shard, f"{type(e).__name__}: {e}"))
                scheduling = False
                continue
            if not on_result(result):
                scheduling = False
        fill()
    return failures


def visible_gpus() -> list[str]:
    """GPU ids this process may use, found without initialising CUDA: CUDA_VISIBLE_DEVICES if
    set, else what `nvidia-smi` lists, else none."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [g.strip() for g in env.split(",") if g.strip() and g.strip() != "-1"]
    import shutil
    import subprocess

    if not shutil.which("nvidia-smi"):
        return []
    try:
        listing = subprocess.run(["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"],
                                 capture_output=True, text=True, timeout=20, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in listing.splitlines() if line.strip()]
