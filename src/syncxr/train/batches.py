"""Train/val split and the resumable, rank-aware batch sampler.

Global batch b of epoch e is perm_e[b*G:(b+1)*G] with G the global batch size and perm_e a
permutation fixed by (seed, epoch); rank r takes every world-th element of it. So a 2-rank run
sees exactly the global batches of a 1-process run, and a resumed run restarts at any batch.
"""

from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np


def split_indices(n: int, val_fraction: float, val_max: int, seed: int) -> tuple[list[int], list[int]]:
    """Deterministic (train, val) index split; val gets round(n*fraction) capped at val_max."""
    perm = np.random.default_rng([seed, 7919]).permutation(n)
    n_val = min(int(round(n * val_fraction)), val_max, max(n - 1, 0))
    return sorted(perm[n_val:].tolist()), sorted(perm[:n_val].tolist())


class EpochBatches:
    """Batch sampler yielding lists of (index, epoch) keys for this rank (drop_last)."""

    def __init__(self, indices: Sequence[int], global_batch: int, rank: int, world: int, seed: int) -> None:
        if global_batch % world:
            raise ValueError(f"global batch {global_batch} is not divisible by world size {world}")
        self.indices = np.asarray(indices)
        self.global_batch, self.rank, self.world, self.seed = global_batch, rank, world, seed
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        self.epoch, self.start = epoch, start_batch

    def batches_per_epoch(self) -> int:
        return len(self.indices) // self.global_batch

    def __len__(self) -> int:
        return max(self.batches_per_epoch() - self.start, 0)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        perm = self.indices[np.random.default_rng([self.seed, self.epoch]).permutation(len(self.indices))]
        g = self.global_batch
        for b in range(self.start, self.batches_per_epoch()):
            chunk = perm[b * g : (b + 1) * g][self.rank :: self.world]
            yield [(int(i), self.epoch) for i in chunk]
