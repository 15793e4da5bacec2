"""Framing: a patient smaller than the film or off-centre has air beside the body, not a smeared
copy of the template's edge column."""

import numpy as np

from syncxr.image.phantom.anatomy import base_layers, beyond_sides, canonical_coords, sample_patient
from syncxr.image.phantom.template import template

SIZE = 128


def _patient(sx: float, shift_x: float, arm_weight: float = 0.0):
    p = sample_patient(np.random.default_rng(0), SIZE)
    p.sx, p.tilt, p.arm_weight = sx, 0.0, arm_weight
    p.shift = np.array([shift_x, 0.0])
    return p


def test_pixels_beyond_the_template_sides_are_air() -> None:
    p = _patient(0.8, 0.05)  # zoomed out and shifted toward image right: air on both sides
    layers = base_layers(template(SIZE, p.variant), p)
    # canonical x = 0 lands at 0.5 + 0.05 - 0.5 * 0.8 = 0.15 of the width; x = 1 at 0.95
    left, right = int(0.15 * SIZE) - 3, int(0.95 * SIZE) + 3
    assert layers.body[:, :left].max() < 1e-3 and layers.body[:, right:].max() < 1e-3
    assert layers.body[:, left + 8 : right - 8].mean() > 0.5  # the body itself is still there


def test_a_patient_filling_the_film_is_left_untouched() -> None:
    assert beyond_sides(canonical_coords(_patient(1.1, 0.0), SIZE)[0]) is None
    w = beyond_sides(canonical_coords(_patient(0.9, 0.0), SIZE)[0])
    assert w is not None and w.min() == 0.0 and w[:, SIZE // 2].min() == 1.0


def test_arms_by_the_sides_show_beyond_the_body_with_the_axilla_between() -> None:
    p = _patient(0.8, 0.0, arm_weight=1.0)  # canonical x = 0 lands at 0.1 of the width
    body = base_layers(template(SIZE, p.variant), p).body
    row = body[int(0.6 * SIZE)]  # mid-chest, below the shoulders
    col = lambda x: int(round((0.5 + (x - 0.5) * 0.8) * SIZE))  # noqa: E731  canonical x -> column
    for arm, wall in ((-0.05, 0.1), (1.05, 0.9)):
        assert row[col(arm)] > 1.0 and row[col(wall)] > 1.0  # the arm (soft tissue, humerus) and the chest
        between = row[min(col(arm), col(wall)) : max(col(arm), col(wall))]
        assert between.min() < 0.3 * row[col(arm)]  # air in the axilla between them
    no_arms = base_layers(template(SIZE, p.variant), _patient(0.8, 0.0)).body
    assert no_arms[int(0.6 * SIZE), col(-0.05)] < 1e-3  # arms raised: only air there
