"""Mixtures of pair sources: plain concatenation, or weighted sampling with fixed ratios."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from syncxr.data.pairs import PairSource
from syncxr.errors import UserError


class MixSource(PairSource):
    """ratios=None: concatenation. ratios=[w1, w2, ...]: an epoch of `size` pairs (default the
    sum of source sizes) drawn with source probabilities w / sum(w), the draw fixed by `seed`
    (sampling within a source is without replacement while it lasts, then it cycles)."""

    kind = "mix"

    def __init__(
        self, sources: Sequence[PairSource], ratios: Sequence[float] | None = None,
        size: int | None = None, seed: int = 0,
    ) -> None:
        super().__init__("+".join(s.where for s in sources))
        if not sources:
            raise UserError("data.sources: give at least one source")
        self.sources = list(sources)
        self.ratios = None if ratios is None else [float(r) for r in ratios]
        if self.ratios is None:
            self._index = [(k, i) for k, s in enumerate(self.sources) for i in range(len(s))]
        else:
            self._index = self._weighted(size or sum(len(s) for s in self.sources), seed)
        self._texts = [self.sources[k].text(i) for k, i in self._index]
        self.finish()

    def _weighted(self, size: int, seed: int) -> list[tuple[int, int]]:
        if len(self.ratios) != len(self.sources):
            raise UserError(f"data.ratios: {len(self.ratios)} ratios for {len(self.sources)} sources")
        if any(r < 0 for r in self.ratios) or sum(self.ratios) <= 0:
            raise UserError(f"data.ratios: must be >= 0 with a positive sum, got {self.ratios}")
        rng = np.random.default_rng(seed)
        p = np.asarray(self.ratios) / sum(self.ratios)
        which = rng.choice(len(self.sources), size=size, p=p)
        index: list[tuple[int, int]] = []
        for k, src in enumerate(self.sources):
            n_k = int((which == k).sum())
            reps = -(-n_k // len(src)) if n_k else 0
            order = np.concatenate([rng.permutation(len(src)) for _ in range(reps)])[:n_k] if n_k else []
            index += [(k, int(i)) for i in order]
        perm = rng.permutation(len(index))
        return [index[j] for j in perm]

    def __getitem__(self, i: int) -> tuple[np.ndarray, str]:
        k, j = self._index[i]
        return self.sources[k][j]

    def describe(self) -> dict[str, Any]:
        counts = np.bincount([k for k, _ in self._index], minlength=len(self.sources))
        return {
            "kind": "mix", "mode": "concat" if self.ratios is None else "weighted",
            "ratios": self.ratios, "pairs": len(self),
            "sources": [dict(s.describe(), drawn=int(c)) for s, c in zip(self.sources, counts)],
        }
