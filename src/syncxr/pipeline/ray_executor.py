"""The Ray executor: the same stages on a Ray cluster, through Ray Data.

One Ray Data row is one shard. Each model stage is an actor pool (`map_batches` over one shard
at a time) with its own `num_gpus` / `num_cpus` / `concurrency` from `executor.stages.<name>`;
the label stage, CPU only and cheap, runs as tasks. Rows stream: a shard is written as soon as
its last stage is done, atomically, by the same code as the local executor (`pipeline/shard.py`),
so for a fixed seed and config both executors write the same bytes and resume skips the same
finished shards. Retries are rounds inside a stage's actor (write+verify, draw+QC), because a
Ray Data pipeline does not loop back.

Between stages a shard travels as the JSON state of its samples; each stage also saves that
state in the work folder (`work/shard-NNNNN/after-<stage>.json`), so a failure in a later stage
never repeats an earlier stage on rerun. The LLM runs inside the write actor through the
configured transport: with `transport: vllm` the vLLM engine lives in that actor (on the GPUs the
stage asks for); with `transport: openai` the actor is a client of a vLLM server. Ray Data's own
`ray.data.llm` processors are not used because a verification round needs the verifier between
two LLM calls.

Multi-node runs must write `--out` on a filesystem every node sees (NFS or similar): the actors
write the shard files themselves.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

from syncxr.errors import UserError
from syncxr.fsio import missing_dependency
from syncxr.pipeline.config import GenerateConfig
from syncxr.pipeline.executor import ShardFailure
from syncxr.pipeline.shard import (
    ShardResult,
    ShardTask,
    apply_stage,
    finish_shard,
    load_checkpoint,
    make_samples,
    work_dir,
)
from syncxr.records import Sample

log = logging.getLogger(__name__)


def _import_ray() -> Any:
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as e:
        raise missing_dependency("--executor ray", e, "ray") from None
    return ray


class _StageRunner:
    """Runs stage `index` of the chain on one shard row; the last stage writes the shard."""

    def __init__(self, cfg_json: str, bank_path: Optional[str], index: int, out: str) -> None:
        from syncxr.pipeline.build import STAGE_NAMES, build_stage

        self.cfg = GenerateConfig.model_validate_json(cfg_json)
        self.names = STAGE_NAMES
        self.index = index
        self.out = Path(out)
        self.stage = build_stage(self.cfg, STAGE_NAMES[index], Path(bank_path) if bank_path else None)
        self.batch_size = self.cfg.batch_size  # as the local executor: same batches, same bytes

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        rows = [dict(zip(batch, values)) for values in zip(*batch.values())]
        return _columns([self._one(row) for row in rows])

    def _one(self, row: dict[str, Any]) -> dict[str, Any]:
        shard = int(row["shard"])
        folder = work_dir(self.out, shard)
        last = self.index == len(self.names) - 1
        saved = folder / f"after-{self.stage.name}.json"
        t0 = time.perf_counter()
        if not last and saved.is_file():  # this stage is done for this shard (an earlier run)
            samples = load_checkpoint(folder, self.stage.name)
            resumed = self.stage.name
            seconds = 0.0
        else:
            samples, resumed = self._input(row, folder)
            seconds = apply_stage(self.stage, samples, self.batch_size, None if last else saved)
        timings = {**json.loads(row["timings"]), self.stage.name: seconds}
        out = {**row, "timings": json.dumps(timings), "resumed": row["resumed"] or resumed}
        if last:
            n_ok, n_bad = finish_shard(self.out, shard, samples, self.cfg.image.size)
            out.update(state="", n_ok=n_ok, n_bad=n_bad, seconds=float(row["seconds"]) + time.perf_counter() - t0)
        else:
            out.update(state=json.dumps([s.to_state() for s in samples]), seconds=float(row["seconds"]) + time.perf_counter() - t0)
        return out

    def _input(self, row: dict[str, Any], folder: Path) -> tuple[list[Sample], str]:
        if row["state"]:
            return [Sample.from_state(s) for s in json.loads(row["state"])], ""
        task = ShardTask(int(row["shard"]), int(row["first"]), tuple(json.loads(row["plan"])))
        return make_samples(self.cfg.seed, task), ""


def _columns(rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
    import numpy as np

    keys = list(rows[0]) if rows else []
    return {k: np.array([r[k] for r in rows], dtype=object) for k in keys}


def _label_task(cfg_json: str, out: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """The label stage as a plain function (Ray tasks), built on first use in each worker."""
    from syncxr.pipeline.build import STAGE_NAMES

    index = STAGE_NAMES.index("label")
    cache: dict[str, _StageRunner] = {}

    def run(batch: dict[str, Any]) -> dict[str, Any]:
        if "runner" not in cache:
            cache["runner"] = _StageRunner(cfg_json, None, index, out)
        return cache["runner"](batch)

    return run


def ray_executor(ray_address: Optional[str]) -> "RayExecutor":
    """The executor `--executor ray` gets: a Ray cluster at `ray_address` (else $RAY_ADDRESS,
    else a local Ray started here); stage resources come from the config's `executor:` section."""
    return RayExecutor(address=ray_address)


class RayExecutor:
    """Run shard tasks through a Ray Data pipeline (one actor pool per model stage)."""

    name = "ray"

    def __init__(self, address: Optional[str] = None, init_kwargs: Optional[dict[str, Any]] = None) -> None:
        self.address = address or os.environ.get("RAY_ADDRESS") or None
        self.init_kwargs = init_kwargs or {}
        self.workers = None

    def _connect(self) -> Any:
        ray = _import_ray()
        _quiet(ray)
        if not ray.is_initialized():
            # A local Ray started here: no dashboard, loopback only, a modest object store.
            local = {} if self.address else {"include_dashboard": False, "_node_ip_address": "127.0.0.1",
                                             "object_store_memory": 1 << 30}
            try:
                ray.init(address=self.address, ignore_reinit_error=True, log_to_driver=False, **{**local, **self.init_kwargs})
            except ConnectionError as e:
                raise UserError(f"cannot reach the Ray cluster at {self.address!r}: {e}; start it with "
                                "`ray start --head` or check RAY_ADDRESS") from None
        return ray

    def run(
        self,
        cfg: GenerateConfig,
        bank_path: Optional[Path],
        out: Path,
        tasks: Iterable[ShardTask],
        on_result: Callable[[ShardResult], bool],
    ) -> list[ShardFailure]:
        ray = self._connect()
        from ray.data import ActorPoolStrategy

        from syncxr.pipeline.build import STAGE_NAMES

        rows = [
            {"shard": t.shard, "first": t.first_index, "plan": json.dumps(list(t.plan)), "state": "",
             "timings": "{}", "resumed": "", "seconds": 0.0, "n_ok": -1, "n_bad": -1}
            for t in tasks
        ]
        if not rows:
            return []
        cfg_json, bank = cfg.model_dump_json(), str(bank_path) if bank_path else None
        # One block per shard, so shards stream through the stages independently.
        ds = ray.data.from_items(rows, override_num_blocks=len(rows))
        for index, name in enumerate(STAGE_NAMES):
            res = cfg.executor.resources(name)
            if name == "label":
                ds = ds.map_batches(_label_task(cfg_json, str(out)), batch_size=1, num_cpus=res.num_cpus, batch_format="numpy")
            else:
                ds = ds.map_batches(
                    _StageRunner,
                    fn_constructor_args=(cfg_json, bank, index, str(out)),
                    batch_size=1,
                    compute=ActorPoolStrategy(size=res.concurrency),
                    num_gpus=res.num_gpus or None,
                    num_cpus=res.num_cpus,
                    batch_format="numpy",
                )
        return _consume(ds, on_result)


def _quiet(ray: Any) -> None:
    """Ray Data's per-operator progress logs drown the run's own progress bar."""
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    for name in ("ray", "ray.data"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _consume(ds: Any, on_result: Callable[[ShardResult], bool]) -> list[ShardFailure]:
    """Stream finished shards to `on_result`; stop early when it says so. A failed stage fails
    the whole run's remaining shards (Ray Data stops the pipeline); those are retried on rerun."""
    try:
        for row in ds.iter_rows():
            result = ShardResult(
                int(row["shard"]), int(row["n_ok"]), int(row["n_bad"]), float(row["seconds"]),
                json.loads(row["timings"]), str(row["resumed"]),
            )
            if not on_result(result):
                break
    except UserError:
        raise
    except Exception as e:  # a stage raised (outage, OOM) inside Ray: the shard is not written
        cause = _root_cause(e)
        if isinstance(cause, UserError):
            raise cause from None
        log.error("ray pipeline failed: %s", cause)
        return [ShardFailure(-1, f"{type(cause).__name__}: {cause}")]
    return []


def _root_cause(e: BaseException) -> BaseException:
    """The user-level exception inside Ray's wrappers (RayTaskError keeps it as `.cause`)."""
    seen = set()
    while id(e) not in seen:
        seen.add(id(e))
        inner = getattr(e, "cause", None) or e.__cause__
        if inner is None or inner is e:
            break
        e = inner
    return e
