"""Behaviour of the procedural radiograph renderer (sizes kept small for speed)."""

from __future__ import annotations

import numpy as np
import pytest

from syncxr.errors import UserError
from syncxr.image.phantom import FINDINGS, FindingSpec, cardiothoracic_ratio, render_phantom

F = FindingSpec
SIZE = 128


def centroid(mask: np.ndarray) -> tuple[float, float]:
    """(x, y) of a mask's centre of mass, normalised to [0, 1]."""
    rows, cols = np.nonzero(mask)
    return cols.mean() / mask.shape[1], rows.mean() / mask.shape[0]


@pytest.fixture(scope="module")
def normal() -> np.ndarray:
    return render_phantom([], seed=7, size=256).image


def test_every_finding_draws_a_nonempty_mask() -> None:
    out = render_phantom([F(n) for n in FINDINGS], seed=3, size=SIZE)
    assert set(out.masks) == set(FINDINGS)
    for name, mask in out.masks.items():
        assert mask.dtype == bool and mask.shape == (SIZE, SIZE), name
        assert mask.sum() > 0, f"{name} mask is empty"


LATERAL = ["pleural_effusion", "pneumothorax", "consolidation", "opacity", "nodule", "mass", "granuloma",
           "atelectasis", "fracture", "chest_tube", "pleural_thickening"]


@pytest.mark.parametrize("name", LATERAL)
def test_patient_left_is_image_right(name: str) -> None:
    for seed in (1, 2):
        left = render_phantom([F(name, laterality="left")], seed=seed, size=SIZE).masks[name]
        right = render_phantom([F(name, laterality="right")], seed=seed, size=SIZE).masks[name]
        assert centroid(left)[0] > 0.55, f"{name} left should be on the image right"
        assert centroid(right)[0] < 0.45, f"{name} right should be on the image left"


def test_bilateral_covers_both_sides() -> None:
    m = render_phantom([F("pleural_effusion", "bilateral", "moderate")], seed=4, size=SIZE).masks["pleural_effusion"]
    assert m[:, : SIZE // 2].sum() > 0 and m[:, SIZE // 2 :].sum() > 0


@pytest.mark.parametrize("name", ["nodule", "consolidation", "mass"])
def test_zone_moves_the_lesion_from_apex_to_base(name: str) -> None:
    ys = {}
    for zone in ("upper", "lower"):
        m = render_phantom([F(name, "right", "moderate", zone)], seed=11, size=SIZE).masks[name]
        ys[zone] = centroid(m)[1]
    assert ys["upper"] + 0.15 < ys["lower"]


def test_pneumothorax_is_apical_and_effusion_basal() -> None:
    out = render_phantom([F("pneumothorax", "right", "moderate", "upper"), F("pleural_effusion", "left", "moderate")],
                         seed=5, size=SIZE)
    assert centroid(out.masks["pneumothorax"])[1] < 0.4
    assert centroid(out.masks["pleural_effusion"])[1] > 0.5


def test_cardiomegaly_raises_the_ctr_above_half() -> None:
    for seed in range(5):
        assert 0.33 < cardiothoracic_ratio([], seed) < 0.5
        assert cardiothoracic_ratio([F("cardiomegaly", severity="mild")], seed) > 0.5
    mild = render_phantom([F("cardiomegaly", severity="mild")], seed=2, size=SIZE).masks["cardiomegaly"]
    severe = render_phantom([F("cardiomegaly", severity="severe")], seed=2, size=SIZE).masks["cardiomegaly"]
    width = lambda m: np.ptp(np.flatnonzero(m.any(axis=0)))  # noqa: E731
    assert width(severe) > width(mild)


def test_effusion_brightens_the_correct_base(normal: np.ndarray) -> None:
    eff = render_phantom([F("pleural_effusion", "right", "moderate")], seed=7, size=256)
    diff = eff.image.astype(float) - normal.astype(float)
    m = eff.masks["pleural_effusion"]
    assert diff[m].mean() > 25  # fluid replaces dark lung: much brighter
    other_side = np.zeros_like(m)
    other_side[:, 128:] = np.fliplr(m)[:, 128:]
    assert abs(diff[other_side].mean()) < 5
    assert centroid(m)[1] > 0.5


def test_pneumothorax_darkens_its_region(normal: np.ndarray) -> None:
    ptx = render_phantom([F("pneumothorax", "left", "severe")], seed=7, size=256)
    m = ptx.masks["pneumothorax"]
    assert (ptx.image[m].astype(float) - normal[m]).mean() < -3  # markings gone, pure air


def test_adding_a_device_does_not_move_the_patient(normal: np.ndarray) -> None:
    tube = render_phantom([F("et_tube")], seed=7, size=256)
    far = np.ones_like(tube.masks["et_tube"])
    far[:, 96:160] = False  # away from the tube and the trachea
    assert np.abs(tube.image[far].astype(int) - normal[far]).mean() < 3.0  # (a different seed: ~35)


def test_devices_are_where_the_anatomy_says() -> None:
    out = render_phantom([F("et_tube"), F("ng_tube"), F("pacemaker")], seed=9, size=SIZE)
    et, ng, pm = (out.masks[k] for k in ("et_tube", "ng_tube", "pacemaker"))
    assert abs(centroid(et)[0] - 0.5) < 0.06 and np.flatnonzero(et.any(axis=1)).max() < 0.35 * SIZE
    assert np.flatnonzero(ng.any(axis=1)).max() > 0.65 * SIZE  # below the diaphragm
    assert centroid(pm)[0] > 0.5  # default: patient's left upper chest


def test_same_seed_same_bytes_different_seed_differs() -> None:
    a = render_phantom([F("consolidation"), F("central_line")], seed=42, size=SIZE)
    b = render_phantom([F("consolidation"), F("central_line")], seed=42, size=SIZE)
    c = render_phantom([F("consolidation"), F("central_line")], seed=43, size=SIZE)
    assert a.image.tobytes() == b.image.tobytes()
    assert all(a.masks[k].tobytes() == b.masks[k].tobytes() for k in a.masks)
    assert np.abs(a.image.astype(int) - c.image).mean() > 3


@pytest.mark.parametrize("size", [128, 256, 512])
def test_sizes_and_image_statistics(size: int) -> None:
    img = render_phantom([], seed=size, size=size).image
    assert img.shape == (size, size) and img.dtype == np.uint8
    # the 48 NIH references: mean 89..193 (median ~147), std 33..73
    assert 95 < img.mean() < 190
    assert 35 < img.std() < 80
    assert np.percentile(img, 1) < 40  # outside air is black somewhere
    lung_band = img[int(0.3 * size) : int(0.5 * size), int(0.2 * size) : int(0.35 * size)]
    assert lung_band.mean() < img.mean()  # lungs are darker than the body


def test_emphysema_lowers_the_diaphragm() -> None:
    normal = render_phantom([], seed=1, size=SIZE).image.astype(float)
    emph = render_phantom([F("emphysema", severity="severe")], seed=1, size=SIZE).image.astype(float)
    base = slice(int(0.62 * SIZE), int(0.72 * SIZE))
    # where the normal patient already has liver/stomach, the hyperinflated one still has dark lung
    assert emph[base, 20:50].mean() < normal[base, 20:50].mean() - 10


def test_bad_input_is_a_user_error() -> None:
    with pytest.raises(UserError, match="unknown phantom finding"):
        render_phantom([F("dragon")], seed=1)
    with pytest.raises(UserError, match="laterality"):
        render_phantom([F("nodule", laterality="up")], seed=1)
    with pytest.raises(UserError, match="size"):
        render_phantom([], seed=1, size=64)
    assert F("pleural_effusion", severity="large").validated().severity == "severe"


def _normal_layers(seed: int, size: int = 256):
    """The patient's anatomy layers before findings (internal view, for shape checks)."""
    from syncxr.image.phantom.anatomy import add_heart_and_mediastinum, base_layers, sample_patient
    from syncxr.image.phantom.template import template

    p = sample_patient(np.random.default_rng(seed), size)
    layers = base_layers(template(size, p.variant), p)
    add_heart_and_mediastinum(layers, p)
    return p, layers


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_lungs_are_domed_and_the_right_hemidiaphragm_is_higher(seed: int) -> None:
    p, layers = _normal_layers(seed)
    for side in (1, 2):
        lung = layers.label == side
        rows = np.flatnonzero(lung.any(axis=1))
        top, widths = rows[0], lung.sum(axis=1)
        # a rounded apex: near the top the lung is far narrower than at mid-height
        assert widths[top + 8] < 0.6 * widths[(top + rows[-1]) // 2]
    # the dome apex (highest diaphragm row) under each lung's middle third
    def dome_row(side: int) -> int:
        cols = np.flatnonzero((layers.label == side).any(axis=0))
        mid = cols[len(cols) // 3 : 2 * len(cols) // 3]
        return min(np.flatnonzero(layers.label[:, c] == side).max() for c in mid)
    assert dome_row(1) < dome_row(2)  # image left = patient right = higher (liver)


@pytest.mark.parametrize("seed", [0, 3])
def test_heart_sits_on_the_diaphragm_mostly_left_of_midline(seed: int) -> None:
    p, layers = _normal_layers(seed)
    heart, size = layers.heart, layers.heart.shape[0]
    cols = np.flatnonzero(heart.any(axis=0))
    spine_col = p.spine_x * size
    assert (cols > spine_col).mean() > 0.6  # about two thirds of it on the patient's left
    lowest = np.flatnonzero(heart.any(axis=1)).max()
    assert lowest >= min(p.dome.values()) * size - 2  # no lung gap between heart and diaphragm
    # continuous with the mediastinum above: no empty row between them
    both = heart | layers.mediastinum
    rows = np.flatnonzero(both.any(axis=1))
    assert np.all(np.diff(rows) == 1)


def _variant_seeds(size: int) -> tuple[int, int]:
    """Two seeds whose patients are drawn from different template variants."""
    from syncxr.image.phantom.anatomy import sample_patient

    first = sample_patient(np.random.default_rng(0), size).variant
    other = next(s for s in range(1, 100) if sample_patient(np.random.default_rng(s), size).variant != first)
    return 0, other


def test_bytes_do_not_depend_on_which_variants_were_built_before() -> None:
    import subprocess
    import sys

    from syncxr.image.phantom.template import _shared, template

    a, b = _variant_seeds(SIZE)
    findings = [F("nodule"), F("pleural_effusion")]
    render_phantom(findings, seed=a, size=SIZE)  # builds a's variant (and the shared layers) first
    after_a = render_phantom(findings, seed=b, size=SIZE).image
    template.cache_clear()
    _shared.cache_clear()
    fresh = render_phantom(findings, seed=b, size=SIZE).image  # b's variant built first
    assert np.array_equal(after_a, fresh)
    code = (f"from syncxr.image.phantom import render_phantom, FindingSpec as F; import hashlib, sys; "
            f"sys.stdout.write(hashlib.sha256(render_phantom([F('nodule'), F('pleural_effusion')], "
            f"seed={b}, size={SIZE}).image.tobytes()).hexdigest())")
    other_process = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    import hashlib

    assert other_process == hashlib.sha256(fresh.tobytes()).hexdigest()


def test_patients_differ_in_skeleton_and_vessels_not_just_geometry() -> None:
    from syncxr.image.phantom.template import N_VARIANTS, template

    a, b = (template(SIZE, k) for k in (0, 1))
    assert a.variant != b.variant and a.variant.rib_dy != b.variant.rib_dy
    assert not np.allclose(a.bone, b.bone, atol=0.02)
    assert np.corrcoef(a.vessels.ravel(), b.vessels.ravel())[0, 1] < 0.9  # different trees
    assert a.label is b.label  # the lung outline (which masks rely on) is shared
    from syncxr.image.phantom.anatomy import sample_patient

    drawn = {sample_patient(np.random.default_rng(s), SIZE).variant for s in range(200)}
    assert drawn == set(range(N_VARIANTS))


def test_posterior_rib_follows_the_variants_skeleton() -> None:
    """Fractures are placed with `Template.posterior_rib`: it must find the ribs of that variant."""
    from syncxr.image.phantom.template import RIB_REACH, N_VARIANTS, template

    size, s = 256, 0.5
    col = int((0.5 - RIB_REACH * s) * size)
    for k in range(0, N_VARIANTS, 3):
        t = template(size, k)
        centre = [int(t.posterior_rib(i, np.array(s))[0] * size) for i in (3, 4, 5)]
        between = [(a + b) // 2 for a, b in zip(centre, centre[1:] + [int(t.posterior_rib(6, np.array(s))[0] * size)])]
        assert all(t.bone[c, col] > t.bone[m, col] + 0.02 for c, m in zip(centre, between)), k
