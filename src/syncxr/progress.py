"""A rich progress bar with rate and ETA, driven by (done, total) callbacks."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Callable, Iterator

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


@contextmanager
def progress_bar(label: str, total: int, enabled: bool | None = None) -> Iterator[Callable[[int, int], None]]:
    """Yields update(done, total). Disabled (no output) when stderr is not a terminal unless enabled."""
    enabled = sys.stderr.isatty() if enabled is None else enabled
    if not enabled:
        yield lambda done, total: None
        return
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, transient=False) as prog:
        task = prog.add_task(label, total=total, rate="")

        def update(done: int, total_now: int) -> None:
            speed = prog.tasks[0].speed
            prog.update(task, completed=done, total=total_now, rate=f"{speed:.0f}/s" if speed else "")

        yield update
