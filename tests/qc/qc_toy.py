"""A tiny procedural chest-like radiograph for QC tests (independent of the phantom renderer).

Dark lungs with vessel texture and ribs, a bright mediastinum, heart, spine and diaphragm, small
per-seed variation in shape, exposure and noise: enough structure for the QC features to see
rotation, cropping, inversion, collimation and the other defects.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def toy_chest(seed: int, size: int = 256) -> np.ndarray:
    rng = np.random.default_rng(seed)
    s = size
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float32) / s  # (s, s) in [0, 1)
    img = np.full((s, s), 0.25, np.float32)
    # Body: a wide ellipse of soft tissue.
    body = ((xx - 0.5) / 0.47) ** 2 + ((yy - 0.55) / 0.62) ** 2 < 1.0
    img[body] = 0.55 + rng.uniform(-0.05, 0.05)
    # Lungs: two ellipses, dark, with smoothed-noise vessel texture.
    lung = np.zeros((s, s), bool)
    for side in (-1, 1):
        cx = 0.5 + side * rng.uniform(0.17, 0.21)
        cy = rng.uniform(0.42, 0.47)
        lung |= ((xx - cx) / rng.uniform(0.13, 0.16)) ** 2 + ((yy - cy) / rng.uniform(0.27, 0.31)) ** 2 < 1
    texture = ndimage.gaussian_filter(rng.normal(0, 1, (s, s)).astype(np.float32), s / 128)
    img[lung] = 0.22 + 0.04 * texture[lung]
    # Ribs: bright bands following shallow curves across each lung.
    for k in range(9):
        y0 = 0.18 + 0.065 * k + rng.uniform(-0.01, 0.01)
        curve = y0 + 0.10 * (xx - 0.5) ** 2 * 4 - 0.02
        band = np.abs(yy - curve) < 0.012
        img[band & lung] += 0.12
    # Mediastinum, spine and heart.
    img[(np.abs(xx - 0.5) < 0.06) & body] = np.maximum(img[(np.abs(xx - 0.5) < 0.06) & body], 0.75)
    heart = ((xx - 0.53) / rng.uniform(0.13, 0.17)) ** 2 + ((yy - 0.66) / 0.12) ** 2 < 1
    img[heart] = 0.72 + rng.uniform(-0.04, 0.04)
    # Diaphragm: bright below the lung bases.
    img[(yy > 0.74 + 0.05 * np.abs(xx - 0.5)) & body] = 0.7
    img = ndimage.gaussian_filter(img, s / 170)
    gamma = rng.uniform(0.85, 1.15)
    img = np.clip(img, 0, 1) ** gamma
    img += rng.normal(0, rng.uniform(0.008, 0.02), (s, s)).astype(np.float32)
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)
