"""Image-text pair sources: the common interface and the shared decode/skip helpers.

A source is a map-style dataset of (uint8 (H, W) image, text) pairs with `len`, `__getitem__`,
`text(i)` (no image decode, for tokenizer training) and `describe()` (counts). Bad rows are
counted and skipped with a warning listing examples; a source with nothing usable left raises
UserError. Images are decoded lazily; one found corrupt at read time is logged, counted and
replaced by the next readable pair so a long run never dies on a single bad file.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Literal, Sequence

import numpy as np

from syncxr.errors import UserError
from syncxr.imread import ImageReadError, read_gray

log = logging.getLogger(__name__)

Section = Literal["findings", "impression", "both"]
MAX_EXAMPLES = 5


def decode_image(data: bytes | Path) -> np.ndarray:
    """PNG/JPEG bytes or a file path -> uint8 (H, W) through the one image reader
    (syncxr.imread.read_gray). Raises ImageReadError (a ValueError) when unusable."""
    try:
        return read_gray(data)
    except ImageReadError as exc:
        if exc.reason == "unreadable_image":
            raise ImageReadError(f"unreadable image: {exc}", exc.reason) from None
        raise


def _skip_reason(exc: Exception) -> str:
    """Counted reason of an image skipped at read time ('too_many_pixels' or 'corrupt_image')."""
    return "too_many_pixels" if getattr(exc, "reason", "") == "too_many_pixels" else "corrupt_image"


def choose_text(findings: str | None, impression: str | None, section: Section) -> str:
    """The training text for `section`; "" when the chosen section(s) are empty."""
    f, i = (findings or "").strip(), (impression or "").strip()
    if section == "findings":
        return f
    if section == "impression":
        return i
    return " ".join(x for x in (f, i) if x)


def check_columns(path: Path | str, have: Sequence[str], need: Sequence[str]) -> None:
    """UserError naming the file, the missing and the existing columns."""
    missing = [c for c in need if c not in have]
    if missing:
        raise UserError(
            f"{path}: missing column(s) {missing}; the file has {list(have)}. "
            f"Expected columns {list(need)} (rename them or set the column options)."
        )


class PairSource:
    """Base class. Subclasses set `self._texts` and implement `_load_image(i)`."""

    kind = "pairs"

    def __init__(self, where: str) -> None:
        self.where = where
        self._texts: list[str] = []
        self.skipped: Counter[str] = Counter()
        self.examples: dict[str, list[str]] = defaultdict(list)
        self._bad: set[int] = set()

    # -- bookkeeping -------------------------------------------------------------------------
    def skip(self, reason: str, example: str) -> None:
        self.skipped[reason] += 1
        if len(self.examples[reason]) < MAX_EXAMPLES:
            self.examples[reason].append(example)

    def finish(self) -> None:
        """Warn about skipped rows and refuse a source with no usable pair."""
        self.skipped = Counter({k: n for k, n in self.skipped.items() if n > 0})  # drop zero tallies
        if self.skipped:
            detail = "; ".join(
                f"{reason}: {n}" + (f" (e.g. {', '.join(self.examples[reason])})" if self.examples[reason] else "")
                for reason, n in self.skipped.items()
            )
            log.warning("%s %s: skipped %d row(s): %s", self.kind, self.where, sum(self.skipped.values()), detail)
        if not self._texts:
            raise UserError(
                f"{self.kind} source {self.where}: no usable image-text pair "
                f"(skipped: {dict(self.skipped) or 'none found'}). Check the path and section choice."
            )

    def validate_images(self) -> None:
        """Decode every image now (small datasets / tests): bad ones are counted and dropped."""
        keep = []
        for i in range(len(self._texts)):
            try:
                self._load_image(i)
                keep.append(i)
            except (ValueError, FileNotFoundError) as exc:
                self.skip(_skip_reason(exc), f"{self._name(i)} ({exc})")
        self._select(keep)
        self.finish()

    # -- interface ---------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._texts)

    def text(self, i: int) -> str:
        return self._texts[i]

    def texts(self) -> list[str]:
        return list(self._texts)

    def __getitem__(self, i: int) -> tuple[np.ndarray, str]:
        n = len(self)
        for k in range(n):  # fall forward past images that turn out unreadable
            j = (i + k) % n
            if j in self._bad:
                continue
            try:
                return self._load_image(j), self._texts[j]
            except (ValueError, FileNotFoundError) as exc:
                self._bad.add(j)
                self.skip(_skip_reason(exc), self._name(j))
                log.warning("%s: skipping unreadable image %s: %s", self.where, self._name(j), exc)
        raise UserError(f"{self.kind} source {self.where}: every image is unreadable")

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "where": self.where, "pairs": len(self), "skipped": dict(self.skipped)}

    # -- for subclasses ----------------------------------------------------------------------
    def _load_image(self, i: int) -> np.ndarray:
        raise NotImplementedError

    def _name(self, i: int) -> str:
        return f"row {i}"

    def _select(self, keep: list[int]) -> None:
        """Keep only rows `keep` (subclasses re-index their per-row lists here)."""
        self._texts = [self._texts[i] for i in keep]
