"""Cut-off anatomy: does the film show a whole chest, centred, from apices to diaphragm?

A frontal chest film is framed so that both lateral chest walls, the apices and the domes of the
diaphragm are inside the image and the mediastinum sits near the middle. A crop (collimated too
tightly, patient off-centre, a film cut down) breaks that frame. The cues, on a 32² thumbnail
stretched to its own 5th-95th percentile range:

  off_centre    the brightest column of the lung band (mediastinum / spine) is far from the middle
  asymmetry     the lung band's column profile is not mirror-symmetric (one lung cut off)
  no_diaphragm  the bottom rows are no brighter than the lungs (diaphragm and abdomen cut off)
  mirror        the whole thumbnail correlates poorly with its mirror image

Each is ~0 on whole, centred chests (clean phantom renders and the NIH reference films) and
grows with the size of the cut.
"""

from __future__ import annotations

import numpy as np

SIDE = 32
LUNG_ROWS = slice(6, 19)  # lung band: rows 19%-59% of the height
CENTRE_COLS = slice(6, 26)  # where the lungs and the mediastinum are on a whole chest


def _stretched(thumb: np.ndarray, p5: np.ndarray, p95: np.ndarray, small: np.ndarray | None = None) -> np.ndarray:
    """(N, 32, 32) thumbnail mapped so that the image's p5 -> 0 and p95 -> 1.

    small: the (N, 32, 32) 2x2 block means of `thumb` when the caller already has them.
    """
    n = len(thumb)
    t = thumb.reshape(n, SIDE, 2, SIDE, 2).mean(axis=(2, 4)) if small is None else small
    return (t - p5[:, None, None]) / (p95 - p5 + 0.02)[:, None, None]


def crop_cues(
    thumb: np.ndarray, p5: np.ndarray, p95: np.ndarray, small: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """Raw cues (N,) each from the (N, 64, 64) thumbnail and its grey-level p5/p95 (N,).

    small: optional (N, 32, 32) 2x2 block means of `thumb` (saves recomputing them).
    """
    u = _stretched(thumb, p5, p95, small)
    profile = u[:, LUNG_ROWS].mean(axis=1)  # (N, 32) column profile of the lung band
    peak = profile[:, SIDE // 4 : 3 * SIDE // 4].argmax(axis=1) + SIDE // 4
    rows = u[:, :, CENTRE_COLS].mean(axis=2)  # (N, 32) row profile
    z = u - u.mean(axis=(1, 2), keepdims=True)
    mirror = (z * z[:, :, ::-1]).sum(axis=(1, 2)) / ((z * z).sum(axis=(1, 2)) + 1e-6)
    return {
        "off_centre": np.abs(peak - (SIDE - 1) / 2.0),  # in 32nds of the width; 0.5 when centred
        "asymmetry": np.abs(profile - profile[:, ::-1]).mean(axis=1),
        "diaphragm": rows[:, -3:].mean(axis=1) - rows[:, 8:20].min(axis=1),
        "mirror": mirror,
    }


def crop_evidence(
    thumb: np.ndarray, p5: np.ndarray, p95: np.ndarray, small: np.ndarray | None = None
) -> np.ndarray:
    """(N,) sum of the cues beyond the range of whole, centred chests (small: see crop_cues)."""
    c = crop_cues(thumb, p5, p95, small)
    return (
        np.maximum(c["off_centre"] - 3.5, 0.0) / 3.0
        + np.maximum(c["asymmetry"] - 0.26, 0.0) / 0.15
        + np.maximum(0.22 - c["diaphragm"], 0.0) / 0.1
        + np.maximum(0.35 - c["mirror"], 0.0) / 0.4
    ).astype(np.float32)
