"""The stage contract.

A stage is a small class: `name`, the Sample fields it `requires` and `provides`, and
`process(batch) -> batch`. It runs on a plain list of records, without a pipeline around it.
A stage never raises for one bad sample: it calls `sample.reject(stage, reason, detail)` and
passes the sample on; later stages skip rejected samples.
"""

from __future__ import annotations

from typing import ClassVar, Protocol, runtime_checkable

from syncxr.records import Sample


@runtime_checkable
class Stage(Protocol):
    name: ClassVar[str]
    requires: ClassVar[tuple[str, ...]]
    provides: ClassVar[tuple[str, ...]]

    def process(self, batch: list[Sample]) -> list[Sample]: ...


def live(batch: list[Sample]) -> list[Sample]:
    """The samples of a batch that are not rejected."""
    return [s for s in batch if s.ok]
