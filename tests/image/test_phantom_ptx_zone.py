"""A pneumothorax stated in a zone is drawn in that zone (issue 10 item 5): "large pneumothorax in
the right upper lung zone" is an apical-lateral rim, not a whole collapsed lung."""

from __future__ import annotations

import numpy as np
import pytest

from syncxr.image.phantom import FindingSpec, render_phantom
from syncxr.image.phantom.placement import ZONE_SPAN
from syncxr.image.phantom.render import _patient, _resolve

SIZE = 256


def zone_shares(spec: FindingSpec, seed: int) -> tuple[float, float, int]:
    """(share of the mask in the stated zone's rows, share in the lower zone, mask pixels) on the
    right lung; zones are fractions of the lung height from apex to dome (ZONE_SPAN)."""
    mask = render_phantom([spec], seed=seed, size=SIZE).masks["pneumothorax"]
    p = _patient(_resolve([spec], seed), np.random.default_rng(seed), SIZE)
    top, bottom = p.lung_top, p.dome[1] + 0.5 * p.dome_depth
    frac = ((np.arange(SIZE) + 0.5) / SIZE - top) / (bottom - top)
    f0, f1 = ZONE_SPAN[spec.zone]
    rows = frac < f1 if spec.zone == "upper" else (frac >= f0) & (frac < f1)
    lower = frac >= ZONE_SPAN["lower"][0]
    total = int(mask.sum())
    return float(mask[rows].sum() / total), float(mask[lower].sum() / total), total


@pytest.mark.parametrize("seed", range(3))
def test_large_upper_zone_pneumothorax_stays_apical_lateral(seed: int) -> None:
    in_zone, in_lower, total = zone_shares(FindingSpec("pneumothorax", "right", "severe", "upper"), seed)
    assert in_zone >= 0.75  # mostly apical, a lateral rim may run down into the middle zone
    assert in_lower <= 0.02  # the base stays aerated
    mask = render_phantom([FindingSpec("pneumothorax", "right", "severe", "upper")], seed=seed, size=SIZE).masks["pneumothorax"]
    assert (mask & ~_right_lung(FindingSpec("pneumothorax", "right", "severe", "upper"), seed)).sum() == 0


def _right_lung(spec: FindingSpec, seed: int) -> np.ndarray:
    """The patient's right lung (the lung field on the image left; patients are not always centred)."""
    from scipy import ndimage

    from syncxr.image.phantom.render import anatomy_masks

    lungs, _ = anatomy_masks([spec], seed, SIZE)
    parts, n = ndimage.label(lungs)
    centres = ndimage.center_of_mass(lungs, parts, range(1, n + 1))
    right = 1 + min(range(n), key=lambda k: centres[k][1])
    return ndimage.binary_dilation(parts == right, iterations=2)  # the pleural line sits on the lung edge


@pytest.mark.parametrize("zone", ["upper", "middle", "lower"])
def test_every_size_keeps_most_of_the_air_in_the_stated_zone(zone: str) -> None:
    areas = []
    for severity in ("mild", "moderate", "severe"):
        in_zone, _, total = zone_shares(FindingSpec("pneumothorax", "right", severity, zone), 1)
        assert in_zone >= 0.55, (zone, severity, in_zone)
        areas.append(total)
    assert areas[0] < areas[1] < areas[2]  # size still sets the extent within the zone
