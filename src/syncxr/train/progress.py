"""A rich progress bar over optimizer steps (rate, ETA, running loss); a no-op when disabled."""

from __future__ import annotations

from types import TracebackType
from typing import Optional


class Progress:
    def __init__(self, total: int, done: int = 0, enabled: bool = True) -> None:
        self.total, self.done, self.enabled = total, done, enabled
        self._bar = None
        self._task = None

    def __enter__(self) -> "Progress":
        if self.enabled:
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress as RichProgress, TextColumn,
                                       TimeElapsedColumn, TimeRemainingColumn)

            self._bar = RichProgress(
                TextColumn("train"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                TextColumn("loss {task.fields[loss]}"),
            )
            self._bar.__enter__()
            self._task = self._bar.add_task("train", total=self.total, completed=self.done, loss="-", rate="")
        return self

    def advance(self, loss: float) -> None:
        if self._bar is not None:
            speed = self._bar.tasks[0].speed
            rate = f"{speed:.2f} step/s" if speed else ""
            self._bar.update(self._task, advance=1, loss=f"{loss:.4f}", rate=rate)

    def __exit__(self, exc_type: Optional[type], exc: Optional[BaseException], tb: Optional[TracebackType]) -> None:
        if self._bar is not None:
            self._bar.__exit__(exc_type, exc, tb)
