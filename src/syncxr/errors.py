"""User-facing errors. The CLI turns a UserError into one clear message and exit code 2."""

from __future__ import annotations

from typing import Callable, Iterable, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class UserError(Exception):
    """Bad input from the user: say what was wrong, where, what was expected and how to fix it."""


class SampleError(Exception):
    """One sample's content failure (an unparsable answer, a malformed output): a stage turns it
    into a reject with `reason`, and the run goes on."""

    reason = "sample_error"


class InfrastructureError(Exception):
    """The machinery failed, not the sample (server unreachable after retries, out of memory):
    the shard fails and nothing final is written, so a rerun does it again."""

    reason = "infrastructure_error"


def each_or_error(call: Callable[[T], R], items: Iterable[T]) -> list[R | Exception]:
    """`call` on each item, in order; one item's exception is its result (a sample's failure is
    data), except an InfrastructureError, which is raised (it fails the shard)."""
    out: list[R | Exception] = []
    for item in items:
        try:
            out.append(call(item))
        except InfrastructureError:
            raise
        except Exception as e:
            out.append(e)
    return out
