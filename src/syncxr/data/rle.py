"""Run-length encoding of masks in the SIIM-ACR Pneumothorax convention.

Pixels are numbered column-major (down the first column, then the next: index = x * H + y).
The SIIM `train-rle.csv` ("relative" format) lists pairs "gap length": the first gap is the
0-based index of the first foreground pixel; each later gap counts the background pixels since
the end of the previous run. "-1" means an empty mask.

The "absolute" format (the usual Kaggle RLE, used by SIIM's stage-2 files) lists pairs
"start length" with 1-based absolute starts, in the same column-major order.
"""

from __future__ import annotations

import numpy as np

from syncxr.errors import UserError

EMPTY = "-1"


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(starts, lengths) of foreground runs, 0-based column-major indices."""
    flat = np.asarray(mask, dtype=bool).ravel(order="F")  # (H*W,) column-major
    padded = np.concatenate([[False], flat, [False]])
    edges = np.flatnonzero(padded[1:] != padded[:-1])  # alternating run starts and ends
    starts, ends = edges[0::2], edges[1::2]
    return starts, ends - starts


def encode(mask: np.ndarray, fmt: str = "relative") -> str:
    """(H, W) bool mask -> RLE string ("-1" when empty)."""
    starts, lengths = _runs(mask)
    if starts.size == 0:
        return EMPTY
    if fmt == "relative":
        prev_end = np.concatenate([[0], starts[:-1] + lengths[:-1]])
        firsts = starts - prev_end
    elif fmt == "absolute":
        firsts = starts + 1
    else:
        raise ValueError(f"fmt must be 'relative' or 'absolute', got {fmt!r}")
    pairs = np.stack([firsts, lengths], axis=1).ravel()
    return " ".join(str(int(v)) for v in pairs)


def decode(rle: str, shape: tuple[int, int], fmt: str = "relative") -> np.ndarray:
    """RLE string -> (H, W) bool mask; "-1" or "" -> all False. Bad strings raise UserError."""
    h, w = shape
    mask = np.zeros(h * w, dtype=bool)  # column-major flat
    text = str(rle).strip()
    if text in (EMPTY, ""):
        return mask.reshape((h, w), order="F")
    try:
        nums = np.array([int(t) for t in text.split()], dtype=np.int64)
    except ValueError:
        raise UserError(f"RLE {text[:40]!r}...: expected integers in 'gap length' pairs or -1") from None
    if nums.size % 2 or (nums < 0).any():
        raise UserError(f"RLE {text[:40]!r}...: expected an even number of non-negative integers")
    firsts, lengths = nums[0::2], nums[1::2]
    if fmt == "relative":
        # start_k = sum of all gaps up to k + sum of all previous lengths
        starts = np.cumsum(firsts) + np.concatenate([[0], np.cumsum(lengths)[:-1]])
    elif fmt == "absolute":
        starts = firsts - 1
    else:
        raise ValueError(f"fmt must be 'relative' or 'absolute', got {fmt!r}")
    ends = starts + lengths
    if starts.min() < 0 or ends.max() > h * w:
        raise UserError(f"RLE {text[:40]!r}...: runs fall outside a {h}x{w} image ({fmt} format)")
    # Mark run boundaries and integrate: +1 at each start, -1 at each end.
    delta = np.zeros(h * w + 1, dtype=np.int64)
    np.add.at(delta, starts, 1)
    np.add.at(delta, ends, -1)
    mask = np.cumsum(delta[:-1]) > 0
    return mask.reshape((h, w), order="F")
