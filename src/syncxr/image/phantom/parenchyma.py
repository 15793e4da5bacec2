"""Lung findings beyond the airspace basics: cavities, metastases, the faces of fluid overload
(congestion, Kerley lines, interstitial edema, heart failure, ARDS), reticular and fibrotic
change, bronchiectasis, peribronchial cuffing, hydropneumothorax, pleural plaques, and the raised
domes of low lung volumes or an elevated hemidiaphragm.

Same conventions as findings.py: a drawer edits `layers` and returns its bool mask; side 1 =
patient right = image left.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from scipy import ndimage

from syncxr.image.phantom.anatomy import Layers, Patient, dome_curve, lung_fields, pleural_space
from syncxr.image.phantom.draw import add_ellipsoid, add_stroke, axes, bezier, ellipse_field, polyline_box, polyline_mask, smoothstep
from syncxr.image.phantom.findings import Drawer, _fill, _lung_box, _patch, pneumothorax
from syncxr.image.phantom.placement import spread_spots, zone_point
from syncxr.image.phantom.spec import FindingSpec, lesion_count, severity01
from syncxr.image.phantom.template import Template


def _zones(spec: FindingSpec, default: tuple[str, ...]) -> tuple[str, ...]:
    return (spec.zone,) if spec.zone else default


def cavitary_lesion(layers: Layers, p: Patient, spec: FindingSpec, rng: np.random.Generator, t: Template) -> np.ndarray:
    """A mass with a dark central air space and a thick irregular wall (a fluid level sometimes)."""
    mask = np.zeros(layers.body.shape, bool)
    for side in spec.sides():
        cx, cy = zone_point(p, side, spec.zone or "upper", rng, (0.3, 0.7))
        r = (0.03 + 0.02 * severity01(spec)) * rng.uniform(0.85, 1.1)
        mask |= add_ellipsoid(layers.body, cx, cy, r, r * rng.uniform(0.85, 1.1), 0.55, angle=rng.uniform(0, np.pi))
        ri = r * rng.uniform(0.5, 0.6)
        ox, oy = rng.normal(0, 0.12 * r, 2)
        bb, r2 = ellipse_field(cx + ox, cy + oy, ri, ri * rng.uniform(0.8, 1.0), p.size)
        _, ys = axes(p.size)
        air = np.sqrt(np.clip(1.0 - r2, 0, 1))
        if rng.random() < 0.4:  # air-fluid level: only the top of the cavity is air
            air = air * (ys[bb[0]][:, None] < cy + oy + 0.3 * ri)
        layers.body[bb] -= (0.6 * air).astype(np.float32)
    return mask


def metastases(layers: Layers, p: Patient, spec: FindingSpec, rng: np.random.Generator, t: Template) -> np.ndarray:
    """Multiple round nodules of varying size, both lungs, lower zones more; a stated count
    draws that many separate nodules."""
    mask = np.zeros(layers.body.shape, bool)
    count = lesion_count(spec, rng)
    if count is not None:
        zones = [str(rng.choice(("upper", "middle", "lower"), p=(0.2, 0.35, 0.45))) for _ in range(count)]
        radii = [float(rng.uniform(0.012, 0.03)) for _ in range(count)]
        for _, cx, cy, r in spread_spots(p, spec.sides(), zones, radii, 1.15, rng, (0.2, 0.85)):
            mask |= add_ellipsoid(layers.body, cx, cy, r, r * rng.uniform(0.85, 1.1), 0.45)
        return mask
    n = int(rng.integers(4, 9 + int(4 * severity01(spec))))
    sides = spec.sides()
    for k in range(n):
        side = sides[k % len(sides)]
        zone = str(rng.choice(("upper", "middle", "lower"), p=(0.2, 0.35, 0.45)))
        cx, cy = zone_point(p, side, zone, rng, (0.2, 0.85))
        r = rng.uniform(0.012, 0.03)
        mask |= add_ellipsoid(layers.body, cx, cy, r, r * rng.uniform(0.85, 1.1), 0.45)
    return mask


def _vessels(layers: Layers, p: Patient, t: Template) -> np.ndarray:
    return np.take(t.vessels, layers.idx) * np.float32(p.vessel_weight)


def congestion(layers: Layers, p: Patient, spec: FindingSpec, rng: np.random.Generator, t: Template) -> np.ndarray:
    """Cephalization: upper-zone vessels as prominent as the basal ones, fuller hila."""
    _, ys = axes(p.size)
    top, bottom = p.lung_top, max(p.dome.values())
    upper = (ys < top + 0.5 * (bottom - top))[:, None] & lung_fields(layers.label)
    ves = _vessels(layers, p, t)
    gain = np.float32(0.9 + 0.6 * severity01(spec))
    boost = np.where(upper, ves * gain, 0.0).astype(np.float32)
    layers.lung += boost
    for side in (1, 2):
        hx, hy = p.hilum(side)
        add_ellipsoid(layers.body, hx, hy, 0.03, 0.05, 0.15)
    thr = np.quantile(ves[upper], 0.8) if upper.any() else 0.0
    return upper & (ves > thr)


def _kerley(layers: Layers, p: Patient, sides: tuple[int, ...], n: int, rng: np.random.Generator) -> np.ndarray:
    """Kerley B: short horizontal lines reaching the pleura at the lateral bases."""
    mask = np.zeros(layers.body.shape, bool)
    for side in sides:
        for _ in range(n):
            y = p.dome[side] - rng.uniform(0.01, 0.14)
            med, lat = p.lung_bounds_at(side, y)
            x1 = lat - np.sign(lat - med) * 0.006
            x0 = x1 - np.sign(lat - med) * rng.uniform(0.02, 0.035)
            mask |= add_stroke(layers.body, np.array([[x0, y], [x1, y]]), 0.006, 0.4, layers.label == side)
    return mask


def kerley_lines(layers: Layers, p: Patient, spec: FindingSpec, rng: np.random.Generator, t: Template) -> np.ndarray:
    return _kerley(layers, p, spec.sides(), int(5 + 4 * severity01(spec)), rng)


def _perihilar(layers: Layers, p: Patient, t: Template, rng: np.random.Generator, strength: float) -> np.ndarray:
    mask = np.zeros(layers.body.shape, bool)
    for side in (1, 2):
        hx, hy = p.hilum(side)
        bb, r2 = ellipse_field(hx, hy + 0.02, 0.12, 0.15, p.size)
        h, w = r2.shape
        oy, ox = rng.integers(0, p.size, size=2)
        haze = np.exp(-1.6 * r2) * (0.6 + 0.8 * t.cloud[oy : oy + h, ox : ox + w])
        haze = (haze * strength * (layers.label[bb] == side)).astype(np.float32)
        _fill(layers, bb, haze, 0.4)
        mask[bb] |= haze > 0.5 * strength
    return mask


def interstitial_edema(layers: Layers, p: Patient, spec: FindingSpec, rng: np.random.Generator, t: Template) -> np.ndarray:
    """Hazy perihilar reticular change with Kerley lines, no frank airspace filling."""
    m = _perihilar(layers, p, t, rng, 0.3 + 0.15 * severity01(spec))
    m |= _reticular_patch(layers, p, t, rng, 1, "middle", 0.55) | _reticular_patch(layers, p, t, rng, 2, "middle", 0.55)
    return m | _kerley(layers, p, (1, 2), 5, rng)


def heart_failure(layers: Layers, p: Patient, spec: FindingSpec, rng: np.random.Generator, t: Template) -> np.ndarray:
    """Congestive failure: cephalization, perihilar haze and Kerley lines."""
    m = congestion(layers, p, spec, rng, t)
    m |= _perihilar(layers, p, t, rng, 0.4)
    return m | _kerley(layers, p, (1, 2), 6, rng)


def ards(layers: Layers, p: Patient, spec: FindingSpec, rng: np.random.Generator, t: Template) -> np.ndarray:
    """Diffuse bilateral patchy airspace opacity, peripheral as well as central."""
    mask = np.zeros(layers.body.shape, bool)
    for side in (1, 2):
        for zone in ("upper", "middle", "lower"):
            cx, cy = zone_point(p, side, zone, rng, (0.25, 0.85))
            bb, dens = _patch(layers, p, t, cx, cy, 0.1, 0.09, side, rng, 3.0)
            _fill(layers, bb, 0.65 * dens, 0.35)
            mask[bb] |= dens > 0.35
    return mask


def _net(t: Template, bb: tuple[slice, slice], rng: np.random.Generator, scale: float) -> np.ndarray:
    """A net of thin lines (zero crossings of a band-passed field): reticular / honeycomb texture."""
    h, w = bb[0].stop - bb[0].start, bb[1].stop - bb[1].start
    oy, ox = rng.integers(0, t.size, size=2)
    f = t.noise[oy : oy + h, ox : ox + w]
    band = ndimage.gaussian_filter(f, scale) - ndimage.gaussian_filter(f, 2.5 * scale)
    return np.exp(-((band / (0.25 * band.std() + 1e-6)) ** 2)).astype(np.float32)


def _reticular_patch(layers: Layers, p: Patient, t: Template, rng: np.random.Generator, side: int, zone: str,
                     amp: float, scale: float = 1.2, lateral: tuple[float, float] = (0.45, 0.85)) -> np.ndarray:
    cx, cy = zone_point(p, side, zone, rng, lateral)
    bb, r2 = ellipse_field(cx, cy, 0.13, 0.15, p.size, rng.uniform(-0.4, 0.4))
    h, w = r2.shape
    oy, ox = rng.integers(0, p.size, size=2)
    ragged = (t.cloud[oy : oy + h, ox : ox + w] - 0.5) * 2.5  # irregular, patchy extent
    env = smoothstep((1.0 - r2) / 0.6 + ragged) * smoothstep((1.6 - r2) / 0.5) * (layers.label[bb] == side)
    dens = (env * (0.35 + 0.65 * _net(t, bb, rng, scale * p.size / 256))).astype(np.float32)
    _fill(layers, bb, amp * dens, 0.4)
    mask = np.zeros(layers.body.shape, bool)
    inner = ndimage.binary_erosion(layers.label[bb] == side, iterations=max(2, p.size // 50))
    mask[bb] = (env > 0.5) & inner  # the net as seen inside the lung, not at its edge
    return mask


def reticular(layers: Layers, p: Patient, spec: FindingSpec, rng: np.random.Generator, t: Template) -> np.ndarray:
    """Reticular (net-like) interstitial opacities, peripheral and basal by default."""
    mask = np.zeros(layers.body.shape, bool)
    for side in spec.sides():
        for zone in _zones(spec, ("lower", "middle")):
            mask |= _reticular_patch(layers, p, t, rng, side, zone, 0.85 + 0.2 * severity01(spec))
    return mask


def fibrosis(layers: Layers, p: Patient, spec: FindingSpec, rng: np.random.Generator, t: Template) -> np.ndarray:
    """Coarse reticulation with linear scars pulling toward the hilum."""
    mask = np.zeros(layers.body.shape, bool)
    for side in spec.sides():
        zone = spec.zone or "lower"
        mask |= _reticular_patch(layers, p, t, rng, side, zone, 0.85, scale=1.8)
        hx, hy = p.hilum(side)
        for _ in range(3):
            x, y = zone_point(p, side, zone, rng, (0.4, 0.8))
            mid = (0.5 * (x + hx) + rng.normal(0, 0.01), 0.5 * (y + hy) + rng.normal(0, 0.01))
            path = bezier(np.array([(x, y), mid, (0.6 * x + 0.4 * hx, 0.6 * y + 0.4 * hy)]), 16)
            mask |= add_stroke(layers.body, path, 0.006, 0.3, layers.label == side)
    return mask


def _tram(layers: Layers, p: Patient, a: np.ndarray, b: np.ndarray, width: float, side: int) -> np.ndarray:
    """A thick-walled bronchus seen side-on: two bright parallel walls, a lucent lumen."""
    bb, full = polyline_box(np.array([a, b]), width, p.size)
    lumen = polyline_mask(np.array([a, b]), width * 0.45, p.size)[bb]
    walls = full & ~lumen & (layers.label[bb] == side)
    layers.body[bb] += np.where(walls, np.float32(0.35), np.float32(0.0))
    mask = np.zeros(layers.body.shape, bool)
    mask[bb] = walls
    return mask


def _ring(layers: Layers, p: Patient, cx: float, cy: float, r: float, amp: float, side: int) -> np.ndarray:
    """A bronchus seen end-on: a bright ring with an air centre."""
    bb, r2 = ellipse_field(cx, cy, r, r, p.size)
    ring = (r2 < 1.0) & (r2 > 0.35) & (layers.label[bb] == side)
    layers.body[bb] += np.where(ring, np.float32(amp), np.float32(0.0))
    mask = np.zeros(layers.body.shape, bool)
    mask[bb] = ring
    return mask


def bronchiectasis(layers: Layers, p: Patient, spec: FindingSpec, rng: np.random.Generator, t: Template) -> np.ndarray:
    """Tram-track lines and ring shadows, mostly in the lower lobes."""
    mask = np.zeros(layers.body.shape, bool)
    for side in spec.sides():
        hx, hy = p.hilum(side)
        for _ in range(3 + int(2 * severity01(spec))):
            x, y = zone_point(p, side, spec.zone or "lower", rng, (0.3, 0.75))
            d = np.array([x - hx, y - hy])
            d /= max(float(np.hypot(*d)), 1e-6)
            a = np.array([x, y]) - 0.03 * d
            mask |= _tram(layers, p, a, a + rng.uniform(0.04, 0.06) * d, 0.016, side)
        for _ in range(3):
            x, y = zone_point(p, side, spec.zone or "lower", rng, (0.3, 0.8))
            mask |= _ring(layers, p, x, y, rng.uniform(0.01, 0.014), 0.35, side)
    return mask


def bronchial_wall_thickening(layers: Layers, p: Patient, spec: FindingSpec, rng: np.random.Generator, t: Template) -> np.ndarray:
    """Peribronchial cuffing: thick-walled end-on bronchi around both hila."""
    mask = np.zeros(layers.body.shape, bool)
    for side in (1, 2):
        hx, hy = p.hilum(side)
        lat = -1.0 if side == 1 else 1.0
        for _ in range(4):
            cx, cy = hx + lat * rng.uniform(0.03, 0.08), hy + rng.uniform(-0.06, 0.06)
            mask |= _ring(layers, p, cx, cy, rng.uniform(0.008, 0.012), 0.35, side)
    return mask


def hydropneumothorax(layers: Layers, p: Patient, spec: FindingSpec, rng: np.random.Generator, t: Template) -> np.ndarray:
    """Pneumothorax with a straight horizontal air-fluid level (upright film), no meniscus."""
    mask = pneumothorax(layers, p, replace(spec, zone=None), rng, t)  # air over the whole fluid level, not one zone
    _, ys = axes(p.size)
    for side in spec.sides():
        bb = _lung_box(p, side)
        floor = p.dome[side] + p.dome_depth
        level = floor - (0.12 + 0.2 * severity01(spec) + rng.uniform(0, 0.04)) * (floor - p.lung_top)
        fluid = smoothstep((ys[bb[0]][:, None] - level) * p.size / 1.5) * pleural_space(layers.label[bb], side)  # air too
        _fill(layers, bb, fluid.astype(np.float32), 0.45)
        mask[bb] |= fluid > 0.5
    return mask


def pleural_plaque(layers: Layers, p: Patient, spec: FindingSpec, rng: np.random.Generator, t: Template) -> np.ndarray:
    """Calcified plaques: bright irregular flat densities along the lateral wall and the domes."""
    mask = np.zeros(layers.body.shape, bool)
    for side in spec.sides():
        for k in range(4):
            if k < 3:
                y = p.lung_top + rng.uniform(0.35, 0.8) * (p.dome[side] - p.lung_top)
                med, lat = p.lung_bounds_at(side, y)
                x, ang = lat - np.sign(lat - med) * 0.012, np.pi / 2 + rng.normal(0, 0.15)
            else:
                med, lat = p.lung_bounds_at(side, p.dome[side])
                x, y, ang = med + 0.5 * (lat - med), p.dome[side] - 0.006, rng.normal(0, 0.15)
            mask |= add_ellipsoid(layers.body, x, y, rng.uniform(0.018, 0.03), 0.006, 0.7, angle=ang)
    return mask


def _dome_band(p: Patient, sides: tuple[int, ...]) -> np.ndarray:
    """Pixels between the domes as they were and as they are (lungs given up to the abdomen)."""
    before, _ = dome_curve(replace(p, dome=dict(p.normal_dome)), p.size)
    after, weight = dome_curve(p, p.size)
    xs, ys = axes(p.size)
    side_of_col = np.where(xs < p.spine_x, 1, 2)
    cols = np.isin(side_of_col, sides) & (weight > 0.5)
    return (ys[:, None] >= after[None, :]) & (ys[:, None] < before[None, :]) & cols[None, :]


def low_lung_volumes(layers: Layers, p: Patient, spec: FindingSpec, rng: np.random.Generator, t: Template) -> np.ndarray:
    """Both domes were raised on the patient; the mask is the lung base given up."""
    return _dome_band(p, (1, 2))


def elevated_hemidiaphragm(layers: Layers, p: Patient, spec: FindingSpec, rng: np.random.Generator, t: Template) -> np.ndarray:
    """One dome was raised on the patient; the mask is the lung base given up on that side."""
    return _dome_band(p, spec.sides())


PARENCHYMA_DRAWERS: dict[str, Drawer] = {
    "cavitary_lesion": cavitary_lesion,
    "metastases": metastases,
    "congestion": congestion,
    "kerley_lines": kerley_lines,
    "interstitial_edema": interstitial_edema,
    "heart_failure": heart_failure,
    "ards": ards,
    "reticular": reticular,
    "fibrosis": fibrosis,
    "bronchiectasis": bronchiectasis,
    "bronchial_wall_thickening": bronchial_wall_thickening,
    "hydropneumothorax": hydropneumothorax,
    "pleural_plaque": pleural_plaque,
    "low_lung_volumes": low_lung_volumes,
    "elevated_hemidiaphragm": elevated_hemidiaphragm,
}
