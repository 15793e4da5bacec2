"""Known defects: shape/dtype kept, deterministic, and each changes the image the way it should."""

import numpy as np
import pytest
from qc_toy import toy_chest

from syncxr.errors import UserError
from syncxr.qc.defects import DEFECTS, apply_defect


@pytest.fixture(scope="module")
def base() -> np.ndarray:
    return toy_chest(7, 128)


def _apply(im: np.ndarray, defect: str, seed: int = 0) -> np.ndarray:
    return apply_defect(im, defect, np.random.default_rng(seed))


@pytest.mark.parametrize("defect", DEFECTS)
def test_shape_dtype_determinism(base, defect):
    a, b = _apply(base, defect), _apply(base, defect)
    assert a.shape == base.shape and a.dtype == np.uint8
    assert np.array_equal(a, b)
    assert np.abs(a.astype(int) - base).mean() > 3.0  # visibly changed


def test_inverted_is_exact_negative(base):
    assert np.array_equal(_apply(base, "inverted"), 255 - base)


def test_exposure_defects_shift_brightness(base):
    assert _apply(base, "overexposed").mean() < base.mean() - 40  # radiographic convention: too dark
    under = _apply(base, "underexposed")
    assert under.mean() > base.mean() + 40 and under.std() < base.std()


def test_noisy_raises_fine_scale_residual(base):
    def resid(im):
        f = im.astype(np.float32)
        return np.abs(f[:, 1:] - f[:, :-1]).mean()

    assert resid(_apply(base, "noisy")) > 3 * resid(base)


def test_foreign_object_adds_near_white_area(base):
    added = (_apply(base, "foreign_object") >= 240).mean() - (base >= 240).mean()
    assert added > 0.01


def test_collimation_lightens_at_least_two_borders(base):
    out = _apply(base, "collimated")
    d = 8
    strips = lambda im: [im[:d].mean(), im[-d:].mean(), im[:, :d].mean(), im[:, -d:].mean()]  # noqa: E731
    lighter = sum(o > b + 40 for o, b in zip(strips(out), strips(base)))
    assert lighter >= 2


def test_rotation_breaks_left_right_symmetry(base):
    def asym(im):
        f = im.astype(np.float32)
        return np.abs(f - f[:, ::-1]).mean()

    assert asym(_apply(base, "rotated")) > 2 * asym(base)


def test_crop_zooms_in(base):
    out = _apply(base, "cropped")
    # A zoomed window: neighbouring pixels agree more than in the full view.
    d = lambda im: np.abs(np.diff(im.astype(np.float32), axis=1)).mean()  # noqa: E731
    assert d(out) < d(base)


def test_bad_inputs():
    with pytest.raises(UserError, match="unknown image defect 'blurry'"):
        apply_defect(np.zeros((8, 8), np.uint8), "blurry", np.random.default_rng(0))
    with pytest.raises(UserError, match="uint8"):
        apply_defect(np.zeros((8, 8), np.float32), "noisy", np.random.default_rng(0))
