"""Heuristic checks: each catches its defect with its own reason; clean images pass."""

import numpy as np
import pytest
from qc_toy import toy_chest

from syncxr.errors import UserError
from syncxr.qc.defects import apply_defect
from syncxr.qc.heuristics import HEURISTIC_REASONS, HeuristicThresholds, check_heuristics, heuristic_scores


@pytest.fixture(scope="module")
def clean() -> list[np.ndarray]:
    return [toy_chest(s, 128) for s in range(12)]


def test_clean_images_pass(clean):
    verdicts = [check_heuristics(im) for im in clean]
    assert [v.reason for v in verdicts if not v.ok] == []
    assert set(verdicts[0].scores) == {"h_std", "h_clipped_frac", "h_mean", "h_contrast"}


def _scale(im: np.ndarray, centre: float, gain: float) -> np.ndarray:
    return np.clip(centre + (im.astype(np.float32) - im.mean()) * gain, 0, 255).astype(np.uint8)


@pytest.mark.parametrize(
    "make, reason",
    [
        (lambda im: np.full_like(im, 97), "qc_blank"),
        (lambda im: np.where(np.arange(im.size).reshape(im.shape) % 2 == 0, 0, 255).astype(np.uint8), "qc_clipped"),
        (lambda im: _scale(im, 25.0, 0.5), "qc_too_dark"),
        (lambda im: _scale(im, 235.0, 0.4), "qc_too_bright"),
        (lambda im: _scale(im, 128.0, 0.25), "qc_low_contrast"),
    ],
)
def test_each_check_catches_its_defect(clean, make, reason):
    for im in clean[:4]:
        v = check_heuristics(make(im))
        assert not v.ok and v.reason == reason, (v.reason, v.detail)
        assert v.detail  # says which score crossed which threshold


def test_reasons_are_in_documented_order():
    # A constant black image is blank, clipped, dark and low-contrast: the first reason wins, others are listed.
    v = check_heuristics(np.zeros((64, 64), np.uint8))
    assert v.reason == "qc_blank" and "qc_clipped" in v.detail and "qc_too_dark" in v.detail
    triggered = [r for r in HEURISTIC_REASONS if r == v.reason or r in v.detail]
    assert v.reason == triggered[0] and len(triggered) >= 3  # the earliest documented reason wins


def test_scores_match_numpy():
    im = toy_chest(3, 96)
    s = heuristic_scores(im)
    assert s["h_mean"] == pytest.approx(im.mean(), abs=1e-6)
    assert s["h_std"] == pytest.approx(im.std(), abs=1e-6)
    assert s["h_contrast"] == pytest.approx(np.percentile(im, 95) - np.percentile(im, 5), abs=2.0)


def test_overexposure_defect_is_caught_as_too_dark(clean):
    reasons = [check_heuristics(apply_defect(im, "overexposed", np.random.default_rng(i))).reason for i, im in enumerate(clean)]
    assert reasons.count("qc_too_dark") >= 9


def test_thresholds_are_configurable(clean):
    strict = HeuristicThresholds(dark_max_mean=200.0)
    assert check_heuristics(clean[0], strict).reason == "qc_too_dark"


@pytest.mark.parametrize("bad", [np.zeros((4, 4, 3), np.uint8), np.zeros((8, 8), np.float32), np.zeros((0, 5), np.uint8)])
def test_bad_input_is_a_user_error(bad):
    with pytest.raises(UserError, match="uint8"):
        check_heuristics(bad)
