"""Scalar defect detectors on reduced images: ~0 on a normal radiograph, O(1)+ on a defect.

Each detector is a physical measurement (`measure`), centred and scaled (`detectors`) by constants
chosen from clean real radiographs (the 48 NIH reference images) and clean phantom renders, so
that the clean range maps to about [0, 0.3]. They are the discriminative part of the built-in QC
features (see syncxr.qc.features). All of them read the 64² thumbnail, its histogram and the 16²
roughness map, never the full image, so they cost microseconds per image.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

from syncxr.qc.layout import crop_evidence

if TYPE_CHECKING:
    from syncxr.qc.features import Reduced

DETECTOR_NAMES = (
    "noise",
    "dark",
    "bright",
    "low_contrast",
    "saturated_blob",
    "inverted",
    "atypical_layout",
    "light_border",
    "dark_corners",
    "cut_off",
)
# Gain of each detector in the feature vector: how strongly a firing detector pulls away from normal.
GAIN = {
    "noise": 1.5,
    "dark": 1.0,
    "bright": 1.0,
    "low_contrast": 1.0,
    "saturated_blob": 2.5,
    "inverted": 1.5,
    "atypical_layout": 1.0,
    "light_border": 1.0,
    "dark_corners": 1.0,
    "cut_off": 1.5,
}
NOISE_CLEAN = 6.0  # median |pair difference| (grey levels) just above clean renders (2-4) and NIH films (1-2)


def _relu(v: np.ndarray) -> np.ndarray:
    return np.maximum(v, 0.0)


def percentiles(hist: np.ndarray, qs: tuple[float, ...]) -> np.ndarray:
    """(len(qs), N) grey-level percentiles in [0, 1] from (N, 256) normalised histograms."""
    cdf = np.cumsum(hist, axis=1)
    return np.stack([(cdf < q).sum(axis=1) / 255.0 for q in qs])


@lru_cache(maxsize=1)
def _chest_template() -> np.ndarray:
    """(256,) z-scored 16x16 template of a frontal chest: bright midline, dark lungs either side."""
    yy, xx = (np.mgrid[0:16, 0:16] + 0.5) / 16.0
    t = np.zeros((16, 16))
    t[(np.abs(xx - 0.5) < 0.09) & (yy > 0.05)] = 1.0
    t[(np.abs(xx - 0.5) > 0.15) & (np.abs(xx - 0.5) < 0.38) & (yy > 0.15) & (yy < 0.7)] = -1.0
    t = t.ravel() - t.mean()
    t = t / t.std()
    t.setflags(write=False)  # one cached array for every caller: read-only
    return t


def _flat(red: "Reduced") -> np.ndarray:
    """(N, 16, 16) in [0, 1]: how much smoother than the chest's own grain each block is.

    1 where a block has (almost) no pixel-scale texture although the middle of the image has
    some: no exposure at all (collimator shutter) or detector saturation. Relative, so an image
    that is smooth everywhere (heavily downsampled) shows little.
    """
    grain = np.median(red.rough[:, 4:-4, 4:-4].reshape(len(red.rough), -1), axis=1)
    return np.clip(1.0 - red.rough / (0.3 * np.maximum(grain, 1.0))[:, None, None], 0.0, 1.0)


def pool4(thumb: np.ndarray) -> np.ndarray:
    """(N, 64, 64) -> (N, 16, 16) block means."""
    n = len(thumb)
    return thumb.reshape(n, 16, 4, 16, 4).mean(axis=(2, 4))


def _light_border(red: "Reduced", flat: np.ndarray) -> np.ndarray:
    """Sum over the four sides of 'flat, even, light band' evidence (collimator shutters). (N,)

    A shutter leaves a band that is lighter than the chest, has no grain and the same grey all
    along the side; soft tissue at the edge of a film is lighter too but changes along the side
    (shoulders, axillae, flanks) and keeps its grain.
    """
    t = red.pooled(16)  # (N, 16, 16), the same as pool4(red.thumb)
    centre = t[:, 4:-4, 4:-4].mean(axis=(1, 2))
    # the four sides stacked: (N, 4, 12) border blocks, corners left out (two sides meet there)
    strips = np.stack([t[:, 0, 2:-2], t[:, -1, 2:-2], t[:, 2:-2, 0], t[:, 2:-2, -1]], axis=1)
    flats = np.stack([flat[:, 0, 2:-2], flat[:, -1, 2:-2], flat[:, 2:-2, 0], flat[:, 2:-2, -1]], axis=1)
    light = np.minimum(_relu(strips - centre[:, None, None]) / 0.15, 1.0)
    even = _relu(1.0 - strips.std(axis=2) / 0.06)  # (N, 4)
    side = (light * flats).mean(axis=2) * even * 1.5  # (N, 4)
    total = np.zeros(len(t), np.float32)
    for k in range(4):  # summed side by side, in the same order as always
        total += side[:, k]
    return total


def _dark_corners(thumb: np.ndarray) -> np.ndarray:
    """Flat dark corners beyond what the edge middles show (fill of a rotated film). (N,)"""
    k = thumb.shape[1] // 12
    mid = thumb.shape[1] // 2 - k // 2
    head, tail, centre = slice(None, k), slice(-k, None), slice(mid, mid + k)
    corners = [(head, head), (head, tail), (tail, head), (tail, tail)]
    middles = [(head, centre), (tail, centre), (centre, head), (centre, tail)]
    patches = np.stack([thumb[:, r, c] for r, c in corners + middles], axis=1)  # (N, 8, k, k)
    # flat and dark: 1 for an even black patch, 0 once it is brighter or textured
    flat_dark = _relu(1.0 - patches.mean(axis=(2, 3)) / 0.12) * _relu(1.0 - patches.std(axis=(2, 3)) / 0.03)
    c = np.mean([flat_dark[:, i] for i in range(4)], axis=0)
    e = np.mean([flat_dark[:, i] for i in range(4, 8)], axis=0)
    return _relu(c - e) * 2.0


def measure(red: "Reduced", layout: np.ndarray) -> dict[str, np.ndarray]:
    """Raw physical measurements (N,) each, before centring and scaling."""
    p5, p95 = percentiles(red.hist, (0.05, 0.95))
    flat = _flat(red)
    return {
        "noise": red.noise,
        "mean": red.thumb.mean(axis=(1, 2)),
        "spread": p95 - p5,
        "white_edge": red.white_edge,
        "r": layout @ _chest_template() / layout.shape[1],  # correlation with the upright chest layout
        "light_border": _light_border(red, flat),
        "dark_corners": _dark_corners(red.thumb),
        "cut_off": crop_evidence(red.thumb, p5, p95, small=red.pooled(32)),
    }


def detectors(red: "Reduced", layout: np.ndarray) -> np.ndarray:
    """(N, len(DETECTOR_NAMES)) detector values, gains applied; layout (N, 256) z-scored 16² thumbnail."""
    m = measure(red, layout)
    noise = _relu(np.log2(np.maximum(m["noise"], 0.5) / NOISE_CLEAN))
    values = {
        "noise": noise,
        "dark": _relu((0.33 - m["mean"]) / 0.08),
        "bright": _relu((m["mean"] - 0.76) / 0.06),
        "low_contrast": _relu((0.38 - m["spread"]) / 0.1),
        # heavy noise also makes bright specks beside dark ones: only count it on a clean grain
        "saturated_blob": np.minimum(_relu(m["white_edge"] - 0.001) / 0.003, 4.0) * np.clip(2.0 - noise, 0.0, 1.0),
        "inverted": _relu(-m["r"]) * 3.0,
        "atypical_layout": _relu(0.12 - m["r"]) / 0.1,
        "light_border": m["light_border"],
        "dark_corners": m["dark_corners"],
        "cut_off": m["cut_off"],
    }
    return np.stack([GAIN[k] * values[k] for k in DETECTOR_NAMES], axis=1).astype(np.float32)

