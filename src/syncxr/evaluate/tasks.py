"""The evaluation tasks, by name: each is an options model plus a runner.

`TASKS` names each task's factory (one line per task; its module is imported only when used).
A factory returns a `Task`: the pydantic options model of the task and
`run(pretrained, dataset, options, out_dir) -> TaskOutput`. Adding a task is one new module with
such a factory plus one line here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from syncxr.registry import Registry


@dataclass(frozen=True)
class Task:
    options: type  # a RunOptions subclass (pydantic)
    run: Callable[[Any, Any, Any, Path], Any]  # (pretrained, dataset, options, out_dir) -> TaskOutput


def zeroshot() -> Task:
    from syncxr.evaluate.zeroshot import ZeroShotOptions, run_zeroshot

    return Task(ZeroShotOptions, lambda p, d, o, out: run_zeroshot(p, d, o))


def grounding() -> Task:
    from syncxr.evaluate.grounding import GroundingOptions, run_grounding

    return Task(GroundingOptions, lambda p, d, o, out: run_grounding(p, d, o))


def finetune() -> Task:
    from syncxr.evaluate.finetune import FinetuneOptions, run_finetune

    return Task(FinetuneOptions, run_finetune)


def segment() -> Task:
    from syncxr.evaluate.segment import SegmentOptions, run_segment

    return Task(SegmentOptions, run_segment)


TASKS: Registry[Task] = Registry(
    "evaluation task",
    {
        "zeroshot": "syncxr.evaluate.tasks:zeroshot",
        "grounding": "syncxr.evaluate.tasks:grounding",
        "finetune": "syncxr.evaluate.tasks:finetune",
        "segment": "syncxr.evaluate.tasks:segment",
    },
)


def task(name: str) -> Task:
    """The task called `name`; a miss lists the valid names."""
    return TASKS.build(name)
