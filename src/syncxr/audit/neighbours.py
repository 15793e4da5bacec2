"""Nearest neighbours by blocks of a similarity matrix: N x M never held in memory at once.

Every similarity here is a matrix product (cosine of L2-normalised rows, n-gram set overlap of
binary rows), so a `chunk` x `chunk` block costs one BLAS / sparse product; 2k x 2k takes well
under a second.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import scipy.sparse as sp

Block = Callable[[slice, slice], np.ndarray]


def dense_block(x) -> np.ndarray:
    return np.asarray(x.toarray() if sp.issparse(x) else x, dtype=np.float64)


def cosine_block(a, b) -> Block:
    """Block function of a @ b.T for row-normalised dense or sparse matrices."""
    return lambda rows, cols: dense_block(a[rows] @ b[cols].T)


def overlap_block(a: sp.csr_matrix, b: sp.csr_matrix, metric: str = "jaccard") -> Block:
    """Block function of the set overlap of binary rows (n-gram sets): jaccard |A∩B|/|A∪B| or
    containment |A∩B|/|A| (how much of the row of `a` is found in the row of `b`). Empty sets
    score 0."""
    na = np.asarray(a.sum(axis=1)).ravel()
    nb = np.asarray(b.sum(axis=1)).ravel()

    def block(rows: slice, cols: slice) -> np.ndarray:
        inter = dense_block(a[rows] @ b[cols].T)
        if metric == "containment":
            denom = np.broadcast_to(na[rows, None], inter.shape)
        else:
            denom = na[rows, None] + nb[None, cols] - inter
        return np.divide(inter, denom, out=np.zeros_like(inter), where=denom > 0)

    return block


def nearest(block: Block, n: int, m: int, chunk: int = 2048,
            skip: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(index (n,), score (n,)) of the highest-scoring column for each row; ties go to the
    lowest column index. `skip[i]`: a column row i may not match (itself, when a set is compared
    with itself); -1 for none."""
    best = np.full(n, -np.inf)
    arg = np.full(n, -1, dtype=np.int64)
    for r0 in range(0, n, chunk):
        rows = slice(r0, min(n, r0 + chunk))
        for c0 in range(0, m, chunk):
            cols = slice(c0, min(m, c0 + chunk))
            s = block(rows, cols)
            if skip is not None:
                own = skip[rows]
                hit = (own >= cols.start) & (own < cols.stop)
                s[np.flatnonzero(hit), own[hit] - cols.start] = -np.inf
            j = s.argmax(axis=1)
            v = s[np.arange(len(j)), j]
            better = v > best[rows]
            best[rows] = np.where(better, v, best[rows])
            arg[rows] = np.where(better, j + c0, arg[rows])
    return arg, best
