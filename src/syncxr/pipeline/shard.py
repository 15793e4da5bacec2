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

from syncxr.data.shards import REJECTS_DIR, SHARDS_DIR, accepted_table, rejects_table, shard_name, write_table_atomic
from syncxr.records import Entity, Sample, derive_seed
from syncxr.stage import Stage

WORK_DIR = "work"


def sample_id_of(index: int) -> str:
    return f"syncxr-{index:08d}"


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


def run_stages(
    stages: Sequence[Stage],
    samples: list[Sample],
    batch_size: int,
    checkpoints: Path | None = None,
    timings: dict[str, float] | None = None,
) -> tuple[list[Sample], str]:
    """Run the stages over the samples in batches; with `checkpoints`, save after each stage but
    the last and start from the latest saved stage. Returns (samples, stage resumed after)."""
    resumed = ""
    start = 0
    if checkpoints is not None:
        for i in range(len(stages) - 1, -1, -1):
            saved = checkpoints / f"after-{stages[i].name}.json"
            if i < len(stages) - 1 and saved.is_file():
                samples = [Sample.from_state(s) for s in json.loads(saved.read_text())]
                resumed, start = stages[i].name, i + 1
                break
    for i in range(start, len(stages)):
        stage = stages[i]
        t0 = time.perf_counter()
        for lo in range(0, len(samples), batch_size):
            stage.process(samples[lo : lo + batch_size])
        if timings is not None:
            timings[stage.name] = timings.get(stage.name, 0.0) + time.perf_counter() - t0
        if checkpoints is not None and i < len(stages) - 1:
            _save(checkpoints / f"after-{stage.name}.json", samples)
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


def process_shard(stages: Sequence[Stage], run_seed: int, batch_size: int, image_size: int, task: ShardTask, out: Path) -> ShardResult:
    """Generate one shard into `out` (resuming from its work folder), then clear its work folder."""
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    folder = work_dir(out, task.shard)
    samples, resumed = run_stages(stages, make_samples(run_seed, task), batch_size, folder, timings)
    n_ok, n_bad = write_shard(out, task.shard, samples, image_size)
    shutil.rmtree(folder, ignore_errors=True)
    return ShardResult(task.shard, n_ok, n_bad, time.perf_counter() - t0, timings, resumed)
