"""Lung, pleural and bone findings. Each drawer edits the patient's layers and returns its mask.

Conventions: `layers.lung` is the lung contribution (markings minus air); replacing air by fluid
or tissue means scaling it toward 0 and adding density to `layers.body`. Masks are bool (H, W)
in image coordinates; side 1 = patient right = image left (see template.py).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from scipy import ndimage

from syncxr.image.phantom.anatomy import PLEURAL_AIR, Layers, Patient, pleural_space
from syncxr.image.phantom.draw import (
    add_irregular_ellipsoid,
    add_stroke,
    axes,
    bezier,
    box,
    ellipse_field,
    dilate4,
    erode4,
    polyline_box,
    polyline_mask,
    smoothstep,
)
from syncxr.image.phantom.placement import ZONE_SPAN, spread_spots, zone_point
from syncxr.image.phantom.spec import ZONES, FindingSpec, lesion_count, severity01
from syncxr.image.phantom.template import Template

Drawer = Callable[[Layers, Patient, FindingSpec, np.random.Generator, Template], np.ndarray]


def _lung_box(p: Patient, side: int) -> tuple[slice, slice]:
    med, lat = p.lung_bounds_at(side, 0.5)
    lo, hi = sorted((med, lat))
    return box(lo - 0.05, hi + 0.05, p.lung_top - 0.02, p.dome[side] + p.dome_depth + 0.02, p.size)


def _fill(layers: Layers, bb: tuple[slice, slice], density: np.ndarray, amp: float) -> None:
    """Replace lung air by tissue/fluid with fractional `density` in [0, 1] inside a bbox.

    The added tissue scales with the air it replaces, so the filled region fades out smoothly
    where the lung is thin (apex, rim, behind the heart) instead of ending at a hard label edge.
    """
    air = np.clip(layers.lung[bb] * np.float32(-1.0 / 0.8), 0.0, 1.0)
    layers.lung[bb] *= 1.0 - density
    layers.body[bb] += amp * density * air


def effusion(layers: Layers, p: Patient, spec: FindingSpec, rng: np.random.Generator, t: Template) -> np.ndarray:
    """Dependent fluid: fills the costophrenic recess first (blunting), meniscus rising laterally."""
    mask = np.zeros(layers.body.shape, bool)
    xs, ys = axes(p.size)
    for side in spec.sides():
        bb = _lung_box(p, side)
        med, lat = p.lung_bounds_at(side, p.dome[side])
        u = np.clip((xs[bb[1]] - med) / (lat - med), 0, 1.2)[None, :]
        floor = p.dome[side] + p.dome_depth
        frac = 0.12 + 0.45 * severity01(spec) + rng.uniform(-0.03, 0.03)
        level = floor - frac * (floor - p.lung_top) - (0.06 + 0.12 * frac) * u**2  # meniscus
        depth = ys[bb[0]][:, None] - level
        fluid = smoothstep(depth / 0.07) ** 1.5 * pleural_space(layers.label[bb], side)
        fluid *= 0.85 + 0.15 * smoothstep(depth / 0.2)  # thicker layer toward the base
        _fill(layers, bb, fluid, 0.4)
        mask[bb] |= fluid > 0.3
    return mask


# How far a pneumothorax reaches beyond its stated zone along the lateral wall (share of the lung
# height): free pleural air rises apically and laterally in an upright patient, so a large one
# widens the rim and runs down the lateral wall, but the zone a report names holds most of it.
PTX_LATERAL_EXTENT = {"mild": 0.0, "moderate": 0.07, "severe": 0.14}


def _zone_allows(p: Patient, side: int, zone: str, rows: np.ndarray, cols: np.ndarray, extent: float) -> np.ndarray:
    """Where a pneumothorax stated in `zone` may open: that band of the lung, widened by `extent`
    toward the lateral wall only (the medial lung and the other zones stay aerated)."""
    top, bottom = p.lung_top, p.dome[side] + 0.5 * p.dome_depth
    height = bottom - top
    f0, f1 = ZONE_SPAN[zone]
    y = (rows + 0.5) / p.size
    med, lat = p.lung_bounds_at(side, top + 0.5 * height)
    u = np.clip(((cols + 0.5) / p.size - med) / (lat - med), 0.0, 1.0)  # 0 medial .. 1 lateral wall
    reach = extent * smoothstep((u - 0.4) / 0.45)
    below = y < top + (f1 + reach) * height
    if zone == "upper":  # the apex is part of the upper zone
        return below
    above = y > top + (f0 - reach) * height
    return below & above & (u > 0.3)  # middle/lower-zone air collects against the lateral wall


def pneumothorax(layers: Layers, p: Patient, spec: FindingSpec, rng: np.random.Generator, t: Template) -> np.ndarray:
    """Lung collapsed toward the hilum: air without markings beyond a thin pleural line.

    With a zone (always set once resolved) the air stays in that zone, apical/lateral for the
    upper zone, against the lateral wall for the middle and lower zones; size sets how far the
    lung retracts and how far the rim runs down the lateral wall (PTX_LATERAL_EXTENT).
    """
    mask = np.zeros(layers.body.shape, bool)
    size_ = spec.severity or "moderate"
    scale = {"mild": 0.9, "moderate": 0.8, "severe": 0.62}[size_]
    for side in spec.sides():
        bb = _lung_box(p, side)
        lung = layers.label[bb] == side
        hx, hy = p.hilum(side)
        # apical/lateral pneumothorax: anchor low and medial so the gap opens at the apex
        apical = spec.zone == "upper"
        ay = hy + (0.28 if apical else 0.08)
        scale_x = 1.0 - (1.0 - scale) * (0.5 if apical else 1.0)  # apical: the gap is mostly on top
        rows = np.arange(bb[0].start, bb[0].stop)[:, None]
        cols = np.arange(bb[1].start, bb[1].stop)[None, :]
        src_r = np.clip(((rows + 0.5) / p.size - ay) / scale + ay, 0, 0.999) * p.size
        src_c = np.clip(((cols + 0.5) / p.size - hx) / scale_x + hx, 0, 0.999) * p.size
        collapsed = layers.label[src_r.astype(np.intp), src_c.astype(np.intp)] == side
        collapsed &= lung
        if spec.zone in ZONE_SPAN:
            collapsed |= lung & ~_zone_allows(p, side, spec.zone, rows, cols, PTX_LATERAL_EXTENT[size_])
        gap = lung & ~collapsed
        vessels = np.take(t.vessels, layers.idx[bb]) * p.vessel_weight
        layers.lung[bb] -= np.where(gap, vessels + 0.06, 0.0).astype(np.float32)
        edge = collapsed & ~erode4(collapsed)
        line = edge & dilate4(dilate4(gap))
        layers.body[bb] += np.where(line, 0.3, 0.0).astype(np.float32)
        mask[bb] |= gap
        # the pleural air is no longer lung: findings drawn later (consolidation, nodules, edema,
        # fluid) stay in the collapsed lung instead of adding density inside the air
        layers.label[bb][gap] = side + PLEURAL_AIR
    p.pleural_air = mask if p.pleural_air is None else p.pleural_air | mask
    return mask


def _patch(layers: Layers, p: Patient, t: Template, cx: float, cy: float, rx: float, ry: float,
           side: int, rng: np.random.Generator, fluffy: float) -> tuple[tuple[slice, slice], np.ndarray]:
    """A fluffy airspace density (0..1) inside one lung, cut by the lung boundary."""
    # a box 1.4x the ellipse so the ragged margin fades out before the box edge (r2 >= 1.96 there)
    bb, r2 = ellipse_field(cx, cy, 1.4 * rx, 1.4 * ry, p.size, rng.uniform(-0.5, 0.5))
    r2 = r2 * np.float32(1.96)
    h, w = r2.shape
    oy, ox = rng.integers(0, p.size, size=2)
    cloud = t.cloud[oy : oy + h, ox : ox + w]
    dens = smoothstep(((1.0 - r2) * 1.2 + (cloud - 0.5) * fluffy) / 1.5)  # ill-defined margins
    dens *= smoothstep((1.9 - r2) / 0.8)
    dens = dens * (layers.label[bb] == side)
    return bb, dens.astype(np.float32)


def consolidation(layers: Layers, p: Patient, spec: FindingSpec, rng: np.random.Generator, t: Template) -> np.ndarray:
    """Lobar/segmental airspace opacity with air bronchograms (dark branching tubes inside)."""
    mask = np.zeros(layers.body.shape, bool)
    sev = severity01(spec)
    for side in spec.sides():
        cx, cy = zone_point(p, side, spec.zone or "lower", rng)
        rx, ry = (0.08 + 0.07 * sev) * rng.uniform(0.9, 1.2), (0.07 + 0.05 * sev) * rng.uniform(0.9, 1.2)
        bb, dens = _patch(layers, p, t, cx, cy, rx, ry, side, rng, 2.5)
        _fill(layers, bb, 0.75 * dens, 0.35)
        hx, hy = p.hilum(side)
        away = np.array([cx - hx, cy - hy])
        away /= max(float(np.hypot(*away)), 1e-6)
        tubes = np.zeros(dens.shape, np.float32)
        for _ in range(3):  # air bronchograms: short lucent branching tubes pointing away from the hilum
            start = np.array([cx, cy]) - 0.4 * rx * away + rng.normal(0, 0.3 * rx, 2)
            d = (away + rng.normal(0, 0.3, 2)) * rx * rng.uniform(0.6, 0.9)
            mid = start + 0.5 * d + rng.normal(0, 0.005, 2)
            for path in ((start, mid, start + d), (mid, mid + 0.3 * d + rng.normal(0, 0.2 * rx, 2))):
                tubes = np.maximum(tubes, polyline_mask(bezier(np.array(path), 12), 0.005, p.size)[bb])
        tubes = ndimage.gaussian_filter(tubes, 0.5 * p.size / 256)
        layers.body[bb] -= 0.3 * tubes * dens
        mask[bb] |= dens > 0.35
    return mask


def opacity(layers: Layers, p: Patient, spec: FindingSpec, rng: np.random.Generator, t: Template) -> np.ndarray:
    """Hazy ill-defined density (the umbrella finding): fainter than consolidation."""
    mask = np.zeros(layers.body.shape, bool)
    for side in spec.sides():
        cx, cy = zone_point(p, side, spec.zone or "middle", rng)
        s = 0.06 + 0.04 * severity01(spec)
        bb, dens = _patch(layers, p, t, cx, cy, s * 1.2, s, side, rng, 3.0)
        _fill(layers, bb, 0.55 * dens, 0.25)
        mask[bb] |= dens > 0.35
    return mask


def atelectasis(layers: Layers, p: Patient, spec: FindingSpec, rng: np.random.Generator, t: Template) -> np.ndarray:
    """Plate-like (discoid) linear densities near the bases, slightly oblique."""
    mask = np.zeros(layers.body.shape, bool)
    for side in spec.sides():
        for k in range(1 + (spec.severity == "severe")):
            cx, cy = zone_point(p, side, spec.zone or "lower", rng, (0.25, 0.6))
            half = rng.uniform(0.05, 0.09) * (1 + 0.3 * severity01(spec))
            tilt = rng.uniform(-0.08, 0.12) * (1 if side == 2 else -1)
            pts = np.array([[cx - half, cy - tilt * half], [cx, cy + rng.normal(0, 0.006)], [cx + half, cy + tilt * half]])
            bb, band = polyline_box(bezier(pts, 20), 0.012 + 0.01 * severity01(spec), p.size)
            band &= layers.label[bb] == side
            _fill(layers, bb, 0.6 * ndimage.gaussian_filter(band.astype(np.float32), 0.6 * p.size / 256), 0.45)
            mask[bb] |= band
    return mask


def edema(layers: Layers, p: Patient, spec: FindingSpec, rng: np.random.Generator, t: Template) -> np.ndarray:
    """Bilateral perihilar 'bat wing' haze plus Kerley B lines at the lateral bases."""
    mask = np.zeros(layers.body.shape, bool)
    sev = severity01(spec)
    for side in (1, 2):
        hx, hy = p.hilum(side)
        bb, r2 = ellipse_field(hx, hy + 0.02, 0.12 + 0.04 * sev, 0.15 + 0.04 * sev, p.size)
        h, w = r2.shape
        oy, ox = rng.integers(0, p.size, size=2)
        haze = np.exp(-1.6 * r2) * (0.6 + 0.8 * t.cloud[oy : oy + h, ox : ox + w])
        haze = (haze * (0.35 + 0.35 * sev) * (layers.label[bb] == side)).astype(np.float32)
        _fill(layers, bb, haze, 0.4)
        mask[bb] |= haze > 0.2
        med, lat = p.lung_bounds_at(side, p.dome[side] - 0.05)
        for _ in range(int(4 + 5 * sev)):  # Kerley B: short horizontal lines touching the pleura
            y = p.dome[side] - rng.uniform(0.01, 0.12)
            x1 = lat - np.sign(lat - med) * 0.005
            x0 = x1 - np.sign(lat - med) * rng.uniform(0.015, 0.03)
            mask |= add_stroke(layers.body, np.array([[x0, y], [x1, y]]), 0.004, 0.25, layers.label == side)
    return mask


def _counted_lesions(layers: Layers, p: Patient, spec: FindingSpec, rng: np.random.Generator, n: int,
                     radius: tuple[float, float], amp: float, lobes: int) -> np.ndarray:
    """`n` separate lesions, spread over the sides stated (one side when unstated), in the zone
    stated (each its own zone when none is). Lobes stay close to their lesion so it stays one blob."""
    sides = spec.sides() if spec.laterality else spec.sides()[:1]
    zones = [spec.zone or str(rng.choice(ZONES)) for _ in range(n)]
    radii = [radius[0] + (radius[1] - radius[0]) * severity01(spec) * rng.uniform(0.7, 1.0) for _ in range(n)]
    reach = 1.45 + (0.9 if lobes > 1 else 0.0)  # irregular margin (x1.24 x1.1) plus lobe offsets
    mask = np.zeros(layers.body.shape, bool)
    for _, cx, cy, r in spread_spots(p, sides, zones, radii, reach, rng):
        for k in range(lobes):
            ox, oy = np.clip(rng.normal(0, 0.35 * r, 2), -0.6 * r, 0.6 * r) if k else (0.0, 0.0)
            mask |= add_irregular_ellipsoid(layers.body, cx + ox, cy + oy, r * rng.uniform(0.8, 1.1),
                                            r * rng.uniform(0.8, 1.1), amp, rng, angle=rng.uniform(0, np.pi))
    return mask


def _lesion(layers: Layers, p: Patient, spec: FindingSpec, rng: np.random.Generator, radius: tuple[float, float],
            amp: float, lobes: int) -> np.ndarray:
    """One lesion per side stated ("bilateral" / "biapical" = one on each side), or as many
    separate lesions as the spec's count asks for."""
    n = lesion_count(spec, rng)
    if n is not None:
        return _counted_lesions(layers, p, spec, rng, n, radius, amp, lobes)
    mask = np.zeros(layers.body.shape, bool)
    for side in (spec.sides() if spec.laterality else spec.sides()[:1]):
        cx, cy = zone_point(p, side, spec.zone or "middle", rng, (0.3, 0.7))
        r = radius[0] + (radius[1] - radius[0]) * severity01(spec) * rng.uniform(0.7, 1.0)
        for k in range(lobes):
            ox, oy = (rng.normal(0, 0.35 * r, 2) if k else (0.0, 0.0))
            body = add_irregular_ellipsoid(layers.body, cx + ox, cy + oy, r * rng.uniform(0.8, 1.1),
                                           r * rng.uniform(0.8, 1.1), amp, rng, angle=rng.uniform(0, np.pi))
            mask |= body
    return mask


def nodule(layers, p, spec, rng, t) -> np.ndarray:  # noqa: ANN001 - Drawer signature
    """Round well-defined opacity under 3 cm."""
    return _lesion(layers, p, spec, rng, (0.014, 0.026), 0.4, 1)


def mass(layers, p, spec, rng, t) -> np.ndarray:  # noqa: ANN001
    """Larger (>= 3 cm), lobulated opacity."""
    return _lesion(layers, p, spec, rng, (0.045, 0.075), 0.5, 3)


def granuloma(layers, p, spec, rng, t) -> np.ndarray:  # noqa: ANN001
    """Calcified granuloma: a small, very bright dot."""
    return _lesion(layers, p, spec, rng, (0.006, 0.009), 1.0, 1)


def emphysema(layers: Layers, p: Patient, spec: FindingSpec, rng: np.random.Generator, t: Template) -> np.ndarray:
    """No zone stated: bilateral = hyperinflation set on the patient (mask: both lungs) plus apical
    bullae; one side = that lung hyperlucent with sparse markings and bullae (mask: that lung).
    A zone stated ("upper zone emphysema"): lucency and bullae in that zone of the stated lung(s)
    (mask: that zone band), so the drawing moves with the zone the report gives."""
    sides = spec.sides()
    for k in range(int(rng.integers(1, 3 + int(2 * severity01(spec))))):
        side = sides[k % len(sides)]
        cx, cy = zone_point(p, side, spec.zone or "upper", rng, (0.3, 0.8))
        bb, r2 = ellipse_field(cx, cy, *(rng.uniform(0.02, 0.04),) * 2, p.size)
        inside = (r2 < 1) & (layers.label[bb] == side)
        layers.lung[bb] = np.where(inside, np.minimum(layers.lung[bb], 0) - 0.12, layers.lung[bb])
    if spec.zone is not None:
        band = _zone_band(layers, p, sides, spec.zone)
        layers.lung -= np.float32(0.14) * band
        return band > 0.5
    if len(sides) == 2:
        return layers.label > 0
    lung = layers.label == sides[0]
    layers.lung -= np.where(lung, np.float32(0.12), np.float32(0.0))  # hyperlucent, markings pruned
    return lung


def _zone_band(layers: Layers, p: Patient, sides: tuple[int, ...], zone: str) -> np.ndarray:
    """0..1 weight of the lung pixels of `sides` inside one zone (soft upper and lower edges)."""
    _, ys = axes(p.size)
    out = np.zeros(layers.body.shape, np.float32)
    f0, f1 = ZONE_SPAN[zone]
    for side in sides:
        top, bottom = p.lung_top, p.dome[side] + 0.5 * p.dome_depth
        y0, y1 = top + f0 * (bottom - top), top + f1 * (bottom - top)
        soft = 0.03
        w = smoothstep((ys - y0) / soft + 0.5) * smoothstep((y1 - ys) / soft + 0.5)
        out += w[:, None].astype(np.float32) * (layers.label == side)
    return out


def pleural_thickening(layers: Layers, p: Patient, spec: FindingSpec, rng: np.random.Generator, t: Template) -> np.ndarray:
    """Smooth band along the lateral chest wall (or an apical cap in the upper zone)."""
    mask = np.zeros(layers.body.shape, bool)
    k = max(2, int(round((0.012 + 0.01 * severity01(spec)) * p.size)))
    f0, f1 = ZONE_SPAN[spec.zone or "upper"]
    _, ys = axes(p.size)
    for side in spec.sides():
        bb = _lung_box(p, side)
        lung = pleural_space(layers.label[bb], side)  # along the chest wall, over any pleural air
        band = lung & ~np.roll(lung, k if side == 1 else -k, axis=1)
        if spec.zone == "upper":
            band |= lung & ~np.roll(lung, k, axis=0)
        top, bottom = p.lung_top, p.dome[side]
        y = ys[bb[0]]
        band &= ((y >= top + f0 * (bottom - top) - 0.03) & (y <= top + f1 * (bottom - top)))[:, None]
        soft = ndimage.gaussian_filter(band.astype(np.float32), 0.7 * p.size / 256)
        layers.lung[bb] *= 1.0 - 0.7 * soft
        layers.body[bb] += 0.5 * soft
        mask[bb] |= band
    return mask


def cardiomegaly(layers: Layers, p: Patient, spec: FindingSpec, rng: np.random.Generator, t: Template) -> np.ndarray:
    """The heart was enlarged when the patient was drawn; its mask is the silhouette."""
    return layers.heart.copy()


def enlarged_cardiomediastinum(layers, p, spec, rng, t) -> np.ndarray:  # noqa: ANN001
    """The mediastinum was widened when the patient was drawn; its mask is the mediastinum."""
    return layers.mediastinum.copy()


DRAWERS: dict[str, Drawer] = {
    "pleural_effusion": effusion,
    "pneumothorax": pneumothorax,
    "consolidation": consolidation,
    "opacity": opacity,
    "atelectasis": atelectasis,
    "edema": edema,
    "nodule": nodule,
    "mass": mass,
    "granuloma": granuloma,
    "emphysema": emphysema,
    "pleural_thickening": pleural_thickening,
    "cardiomegaly": cardiomegaly,
    "enlarged_cardiomediastinum": enlarged_cardiomediastinum,
}
