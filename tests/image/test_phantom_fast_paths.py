"""The renderer's hot paths are rewritten for speed; each must equal its plain formula bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from syncxr.image.phantom.anatomy import CENTER, sample_patient, warp_index
from syncxr.image.phantom.draw import blur3


def blur3_reference(a: np.ndarray) -> np.ndarray:
    p = np.pad(a, 1, mode="edge")
    v = (p[:-2] + 2.0 * p[1:-1] + p[2:]) * 0.25
    return (v[:, :-2] + 2.0 * v[:, 1:-1] + v[:, 2:]) * 0.25


def warp_reference(p, size: int) -> np.ndarray:
    xs = ((np.arange(size, dtype=np.float32) + 0.5) / size).astype(np.float32)
    c, s = np.cos(p.tilt), np.sin(p.tilt)
    ox, oy = CENTER + p.shift
    ax = np.float32(c / p.sx * size), np.float32(s / p.sx * size)
    ay = np.float32(-s / p.sy * size), np.float32(c / p.sy * size)
    dx, dy = xs - np.float32(ox), xs - np.float32(oy)
    col = (ax[0] * dx)[None, :] + (ax[1] * dy)[:, None] + np.float32(CENTER[0] * size)
    row = (ay[0] * dx)[None, :] + (ay[1] * dy)[:, None] + np.float32(CENTER[1] * size)
    return np.clip(row, 0, size - 1).astype(np.intp) * size + np.clip(col, 0, size - 1).astype(np.intp)


@pytest.mark.parametrize("shape", [(128, 128), (7, 5), (2, 2)])
def test_blur3_equals_the_padded_formula(shape: tuple[int, int]) -> None:
    a = np.random.default_rng(0).normal(size=shape).astype(np.float32) * 3
    out = blur3(a)
    assert out.dtype == np.float32
    assert np.array_equal(out, blur3_reference(a))


@pytest.mark.parametrize("seed", range(4))
def test_warp_index_equals_the_integer_formula(seed: int) -> None:
    p = sample_patient(np.random.default_rng(seed), 128)
    p.tilt *= 5  # a strong tilt so rows and columns both vary along every axis
    assert np.array_equal(warp_index(p, 128), warp_reference(p, 128))


def test_single_points_equal_to_image_and_the_cache_follows_the_geometry() -> None:
    p = sample_patient(np.random.default_rng(3), 256)
    pts = np.random.default_rng(4).uniform(0, 1, (20, 2))
    assert np.array_equal(np.array([p._point(x, y) for x, y in pts]), p.to_image(pts))
    before = p.lung_bounds_at(1, 0.6)
    assert p.lung_bounds_at(1, 0.6) == before  # served from the cache
    p.sx *= 1.1  # a wider patient: the cached landmarks must not be reused
    after = p.lung_bounds_at(1, 0.6)
    assert abs(after[1] - 0.5) > abs(before[1] - 0.5)
    assert p.spine_x == pytest.approx(float(p.to_image(np.array([0.5, 0.5]))[0]), abs=0)
