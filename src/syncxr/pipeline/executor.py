"""The executor contract: where a run's shards are processed, and the table of executors.

The runner (pipeline/runner.py) owns everything that is the same for every executor: the checks,
the plan, which shards to run, the top-up round, finishing the dataset. An executor only runs
`pipeline/shard.py`'s code for each `ShardTask` it is given, in order, and reports each
`ShardResult`; it never changes the bytes of a shard.

Adding an executor is one module with a class implementing `Executor` and a factory whose
parameters name what it needs of the run's `context` (`workers`, `gpus`, `ray_address`,
`n_shards`), plus one line in `EXECUTORS`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Optional, Protocol, runtime_checkable

from syncxr.registry import Registry

if TYPE_CHECKING:
    from syncxr.pipeline.config import GenerateConfig
    from syncxr.pipeline.shard import ShardResult, ShardTask


@dataclass
class ShardFailure:
    """A shard that failed for a reason outside its samples; nothing final was written for it."""

    shard: int  # -1 when the executor cannot tell which shard (a Ray pipeline that stopped)
    error: str  # "TypeName: message"


@runtime_checkable
class Executor(Protocol):
    name: str
    workers: Optional[int]  # worker processes, for the manifest (None where the executor does not count them)

    def run(
        self,
        cfg: "GenerateConfig",
        bank_path: Optional[Path],
        out: Path,
        tasks: Iterable["ShardTask"],
        on_result: Callable[["ShardResult"], bool],
    ) -> list[ShardFailure]:
        """Run `tasks` in order, each through `pipeline/shard.py`, and pass each result to
        `on_result`; stop scheduling new shards once it returns False or a shard fails (those in
        flight finish). Returns the shards that failed. A `UserError` (a backend that cannot be
        built) propagates."""
        ...


# One line per executor: name -> "module:factory" (imported only when chosen).
EXECUTORS: Registry[Executor] = Registry(
    "executor",
    {
        "local": "syncxr.pipeline.local:local_executor",
        "ray": "syncxr.pipeline.ray_executor:ray_executor",
    },
    requires={"ray": ("ray",)},
)


def make_executor(name: str, **context: Any) -> Executor:
    """The executor `name`, given the run's context (`workers`, `gpus`, `ray_address`, `n_shards`);
    each factory receives only what it names."""
    return EXECUTORS.create(name, {}, context)
