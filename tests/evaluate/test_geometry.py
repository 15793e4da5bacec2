"""Mask downscaling for segmentation targets: area (coverage >= 1/2) or max pooling, never
bilinear sampling (which keeps or drops a thin structure depending on a 1-pixel shift)."""

import numpy as np
import pytest

from syncxr.evaluate.geometry import mask_to_input


def _line(col: int, width: int = 2) -> np.ndarray:
    m = np.zeros((64, 64), bool)
    m[:, col : col + width] = True
    return m


@pytest.mark.parametrize("shift", range(4))
def test_max_pooling_keeps_a_thin_line_at_every_shift(shift):
    small = mask_to_input(_line(16 + shift, width=1), 16, "stretch", method="max")
    assert small.sum() == 16  # one full column of the 16 x 16 input, wherever the line lies in its block
    assert small[:, 4].all()


@pytest.mark.parametrize("shift", range(4))
def test_area_drops_a_one_pixel_line_at_every_shift(shift):
    # Bilinear sampling kept this line at shifts 1 and 2 and dropped it at 0 and 3.
    assert mask_to_input(_line(16 + shift, width=1), 16, "stretch", method="area").sum() == 0


def test_area_is_the_block_coverage_cut_at_one_half():
    rng = np.random.default_rng(0)
    for _ in range(5):
        m = rng.random((64, 64)) < 0.5
        coverage = m.reshape(16, 4, 16, 4).mean(axis=(1, 3))  # exact area of each 4 x 4 block
        np.testing.assert_array_equal(mask_to_input(m, 16, "stretch"), (coverage >= 0.5).astype(np.float32))


def test_area_of_a_block_aligned_region_is_exact():
    m = np.zeros((72, 64), bool)
    m[4 : 4 + 32, :32] = True  # the top-left quarter of the center crop
    small = mask_to_input(m, 16, "center_crop")
    assert small[:8, :8].all() and small.sum() == 64


def test_unknown_method_is_an_error():
    with pytest.raises(ValueError, match="area or max"):
        mask_to_input(_line(3), 16, "stretch", method="bilinear")
