"""Vectorised QC detectors must equal their per-patch / per-side formulas exactly."""

from __future__ import annotations

import numpy as np

from syncxr.qc import detectors as D
from syncxr.qc.features import reduce_images
from syncxr.qc.layout import crop_evidence


def dark_corners_reference(thumb: np.ndarray) -> np.ndarray:
    k, h = thumb.shape[1] // 12, thumb.shape[1]

    def flat_dark(p: np.ndarray) -> np.ndarray:
        return D._relu(1.0 - p.mean(axis=(1, 2)) / 0.12) * D._relu(1.0 - p.std(axis=(1, 2)) / 0.03)

    mid = h // 2 - k // 2
    corners = [thumb[:, :k, :k], thumb[:, :k, -k:], thumb[:, -k:, :k], thumb[:, -k:, -k:]]
    middles = [thumb[:, :k, mid : mid + k], thumb[:, -k:, mid : mid + k], thumb[:, mid : mid + k, :k],
               thumb[:, mid : mid + k, -k:]]
    c = np.mean([flat_dark(p) for p in corners], axis=0)
    e = np.mean([flat_dark(p) for p in middles], axis=0)
    return D._relu(c - e) * 2.0


def light_border_reference(red, flat: np.ndarray) -> np.ndarray:
    t = D.pool4(red.thumb)
    centre = t[:, 4:-4, 4:-4].mean(axis=(1, 2))
    total = np.zeros(len(t), np.float32)
    for sl in ((slice(None), 0), (slice(None), -1), (slice(None), slice(None), 0), (slice(None), slice(None), -1)):
        strip = t[sl][:, 2:-2]
        light = np.minimum(D._relu(strip - centre[:, None]) / 0.15, 1.0)
        even = D._relu(1.0 - strip.std(axis=1) / 0.06)
        total += (light * flat[sl][:, 2:-2]).mean(axis=1) * even * 1.5
    return total


def images() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:256, 0:256]
    chest = (120 + 60 * np.cos((xx - 128) / 40.0) + rng.normal(0, 4, (256, 256))).clip(0, 255).astype(np.uint8)
    rotated = chest.copy()
    rotated[(yy + xx < 60) | (yy - xx > 200)] = 3  # dark filled corners
    shutter = chest.copy()
    shutter[:, :40] = 220  # an even light band on one side
    return [chest, rotated, shutter]


def test_vectorised_detectors_equal_the_loops() -> None:
    red = reduce_images(images())
    corners = D._dark_corners(red.thumb)
    assert np.array_equal(corners, dark_corners_reference(red.thumb))
    assert corners[1] > 0.1 and corners[0] == 0.0  # the rotated film's corners fire, the clean one's not
    flat = D._flat(red)
    border = D._light_border(red, flat)
    assert np.array_equal(border, light_border_reference(red, flat))
    assert border[2] > border[0]


def test_shared_pools_equal_fresh_ones() -> None:
    red = reduce_images(images())
    assert np.array_equal(red.pooled(16), D.pool4(red.thumb))
    p5, p95 = D.percentiles(red.hist, (0.05, 0.95))
    assert np.array_equal(crop_evidence(red.thumb, p5, p95, small=red.pooled(32)), crop_evidence(red.thumb, p5, p95))
