"""One shard of a generation run, from its slice of the plan to its two Parquet files.

Executors (local processes, Ray) all end up here, so a shard's bytes depend only on the config
and the plan, never on how or where it ran. The stages run one after the other over the whole
shard (each in batches of `batch_size`); after each stage but the last, the shard's samples are
saved in the work folder (`work/shard-NNNNN/after-<stage>.json`), so a failure in a later stage
(an outage, out of memory) never repeats the earlier, expensive work (the LLM's) on rerun.

A shard is done when its shard file exists. Its rejects file is written first, then the shard
file, both atomically; then the shard's work folder is removed.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from syncxr.data.shards import (
    REJECTS_DIR,
    SHARDS_DIR,
    accepted_table,
    rejects_table,
    sample_id_of,
    shard_name,
    write_table_atomic,
)
from syncxr.records import Entity, Sample, derive_seed
from syncxr.stage import Stage

WORK_DIR = "work"


@dataclass(frozen=True)
class ShardTask:
    """Shard `shard` holds plan items first_index .. first_index + len(plan) - 1."""

    shard: int
    first_index: int
    plan: tuple[str, ...]  # one compact JSON entity list per sample

    @property
    def indices(self) -> range:
        return range(self.first_index, self.first_index + len(self.plan))


@dataclass
class ShardResult:
    shard: int
    n_ok: int
    n_rejected: int
    seconds: float
    stage_seconds: dict[str, float] = field(default_factory=dict)
    resumed_after: str = ""  # the stage whose work-folder checkpoint this run started from


def work_dir(out: Path, shard: int) -> Path:
    return Path(out) / WORK_DIR / shard_name(shard).replace(".parquet", "")


def make_samples(run_seed: int, task: ShardTask) -> list[Sample]:
    samples = []
    for i, ents in zip(task.indices, task.plan):
        sid = sample_id_of(i)
        samples.append(Sample(sample_id=sid, index=i, seed=derive_seed(run_seed, sid),
                              entities=[Entity.from_dict(d) for d in json.loads(ents)]))
    return samples


def resume_point(stages: Sequence[Stage], checkpoints: Path | None) -> tuple[int, str]:
    """(index of the first stage to run, name of the stage resumed after) from the latest
    checkpoint in the shard's work folder; (0, "") when there is none."""
    if checkpoints is not None:
        for i in range(len(stages) - 2, -1, -1):  # the last stage is never checkpointed
            if (checkpoints / f"after-{stages[i].name}.json").is_file():
                return i + 1, stages[i].name
    return 0, ""


def load_checkpoint(checkpoints: Path, stage_name: str) -> list[Sample]:
    return [Sample.from_state(s) for s in json.loads((checkpoints / f"after-{stage_name}.json").read_text())]


def apply_stage(stage: Stage, samples: list[Sample], batch_size: int, checkpoint: Path | None = None) -> float:
    """Run one stage over the samples in batches (and save them after it); returns seconds."""
    t0 = time.perf_counter()
    for lo in range(0, len(samples), batch_size):
        stage.process(samples[lo : lo + batch_size])
    if checkpoint is not None:
        _save(checkpoint, samples)
    return time.perf_counter() - t0


def run_stages(
    stages: Sequence[Stage],
    samples: list[Sample],
    batch_size: int,
    checkpoints: Path | None = None,
    timings: dict[str, float] | None = None,
) -> tuple[list[Sample], str]:
    """Run the stages over the samples in batches; with `checkpoints`, save after each stage but
    the last and start from the latest saved stage. Returns (samples, stage resumed after)."""
    start, resumed = resume_point(stages, checkpoints)
    if resumed:
        assert checkpoints is not None
        samples = load_checkpoint(checkpoints, resumed)
    for i in range(start, len(stages)):
        stage = stages[i]
        save = checkpoints / f"after-{stage.name}.json" if checkpoints is not None and i < len(stages) - 1 else None
        seconds = apply_stage(stage, samples, batch_size, save)
        if timings is not None:
            timings[stage.name] = timings.get(stage.name, 0.0) + seconds
    return samples, resumed


def _save(path: Path, samples: list[Sample]) -> None:
    from syncxr.data.shards import write_text_atomic

    write_text_atomic(json.dumps([s.to_state() for s in samples], separators=(",", ":")), path)


def write_shard(out: Path, shard: int, samples: list[Sample], image_size: int) -> tuple[int, int]:
    """Rejects first, then the shard (its presence is the "done" marker); returns (ok, rejected)."""
    ok = [s for s in samples if s.ok]
    bad = [s for s in samples if not s.ok]
    write_table_atomic(rejects_table(bad), Path(out) / REJECTS_DIR / shard_name(shard))
    write_table_atomic(accepted_table(ok, image_size, image_size), Path(out) / SHARDS_DIR / shard_name(shard))
    return len(ok), len(bad)


def finish_shard(out: Path, shard: int, samples: list[Sample], image_size: int) -> tuple[int, int]:
    """Write the shard's files, then clear its work folder; returns (ok, rejected)."""
    counts = write_shard(out, shard, samples, image_size)
    shutil.rmtree(work_dir(out, shard), ignore_errors=True)
    return counts


def process_shard(stages: Sequence[Stage], run_seed: int, batch_size: int, image_size: int, task: ShardTask, out: Path) -> ShardResult:
    """Generate one shard into `out` (resuming from its work folder), then clear its work folder."""
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    folder = work_dir(out, task.shard)
    samples, resumed = run_stages(stages, make_samples(run_seed, task), batch_size, folder, timings)
    n_ok, n_bad = finish_shard(out, task.shard, samples, image_size)
    return ShardResult(task.shard, n_ok, n_bad, time.perf_counter() - t0, timings, resumed)
