"""The stage contract.

A stage is a small class: `name`, the Sample fields it `requires` and `provides`, and
`process(batch) -> batch`. It runs on a plain list of records, without a pipeline around it.
A stage never raises for one bad sample: it calls `sample.reject(stage, reason, detail)` and
passes the sample on; later stages skip rejected samples.
"""

from __future__ import annotations

from dataclasses import fields
from typing import ClassVar, Protocol, Sequence, runtime_checkable

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


def check_chain(stages: Sequence[Stage], available: Sequence[str]) -> None:
    """Refuse a stage chain in which a stage requires a Sample field that no earlier stage (nor
    the plan, `available`) provides, or a field two stages both claim to fill. Run once, when the
    chain is built, so a mis-ordered pipeline fails before any sample is processed."""
    known = {f.name for f in fields(Sample)}
    have = set(available)
    filled_by: dict[str, str] = {}
    for stage in stages:
        for name in (*stage.requires, *stage.provides):
            if name not in known:
                raise TypeError(f"stage {stage.name!r} names {name!r}, which is not a Sample field")
        missing = [f for f in stage.requires if f not in have]
        if missing:
            raise TypeError(
                f"stage {stage.name!r} requires {missing}, which no earlier stage provides "
                f"(chain: {[s.name for s in stages]})"
            )
        for name in stage.provides:
            if name in filled_by:
                raise TypeError(f"stages {filled_by[name]!r} and {stage.name!r} both provide {name!r}")
            filled_by[name] = stage.name
        have.update(stage.provides)
