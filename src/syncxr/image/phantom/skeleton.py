"""Bones and soft tissue: rib, clavicle and vertebral compression fractures, scoliosis,
degenerative spurs, subcutaneous emphysema. Side 1 = patient right = image left.

A fracture is drawn as it shows on a film: a lucent break with a step, and a bright band where the
fragments overlap or callus forms; the mask is that break zone (what a reader points at).
"""

from __future__ import annotations

import numpy as np

from syncxr.image.phantom.anatomy import Layers, Patient
from syncxr.image.phantom.draw import add_ellipsoid, add_stroke, axes, bezier, smoothstep
from syncxr.image.phantom.findings import Drawer
from syncxr.image.phantom.spec import FindingSpec, lesion_count, severity01
from syncxr.image.phantom.template import RIB_REACH, Template


def _break(layers: Layers, p: Patient, cx: float, cy: float, across: float, rng: np.random.Generator,
           healing: bool) -> np.ndarray:
    """A lucent cleft across a bone at (cx, cy) (direction `across`, radians), a displaced step
    and a bright overlap / callus band beside it; returns the break-zone mask."""
    c, s = np.cos(across), np.sin(across)
    half = 0.016
    cleft = np.array([[cx - half * c, cy - half * s], [cx + half * c, cy + half * s]])
    add_stroke(layers.body, cleft, 0.006, -0.35 * p.bone_weight)
    off = 0.007 * np.array([s, -c])
    band = cleft + off
    m = add_stroke(layers.body, band, 0.008, 0.45 * p.bone_weight)
    if healing:
        m |= add_ellipsoid(layers.body, cx + off[0], cy + off[1], 0.016, 0.012, 0.3)
    return m | add_stroke(np.zeros_like(layers.body), cleft, 0.006, 1.0)


def fracture(layers: Layers, p: Patient, spec: FindingSpec, rng: np.random.Generator, t: Template) -> np.ndarray:
    """Lateral posterior rib fracture(s): one per side stated (bilateral = both sides), or as many
    as the spec's count asks for, each on its own rib."""
    mask = np.zeros(layers.body.shape, bool)
    first = {"upper": 2, "middle": 4, "lower": 6}[spec.zone or "middle"]
    n = lesion_count(spec, rng)
    if n is not None:
        return _counted_fractures(layers, p, spec, rng, t, n, first)
    for side in spec.sides() if spec.laterality else spec.sides()[:1]:
        i = int(rng.integers(first, first + 3))
        s = rng.uniform(0.7, 0.85)
        sgn = -1.0 if side == 1 else 1.0
        rib_y, slope = t.posterior_rib(i, np.array(s))
        cx, cy = p.to_image(np.array([0.5 + sgn * RIB_REACH * s, float(rib_y)]))
        across = np.pi / 2 + sgn * np.arctan(float(slope)) * 0.5
        mask |= _break(layers, p, float(cx), float(cy), across, rng, spec.severity == "mild")
    return mask


def _counted_fractures(layers: Layers, p: Patient, spec: FindingSpec, rng: np.random.Generator, t: Template,
                       n: int, first: int) -> np.ndarray:
    """`n` separate rib fractures split over the sides stated: each on its own rib (consecutive
    ribs from near `first`), alternating between a lateral and a more medial point of the rib so
    that breaks on neighbouring ribs never touch."""
    mask = np.zeros(layers.body.shape, bool)
    sides = spec.sides() if spec.laterality else spec.sides()[:1]
    for j, side in enumerate(sides):
        m = len(range(j, n, len(sides)))  # lesion k goes to side k % len(sides)
        base = min(int(rng.integers(max(first - 1, 1), first + 2)), 10 - m)  # ribs 0..10 exist
        sgn = -1.0 if side == 1 else 1.0
        for k in range(m):
            i = base + k
            s = (0.8 if k % 2 == 0 else 0.5) + rng.uniform(-0.04, 0.04)
            rib_y, slope = t.posterior_rib(i, np.array(s))
            cx, cy = p.to_image(np.array([0.5 + sgn * RIB_REACH * s, float(rib_y)]))
            across = np.pi / 2 + sgn * np.arctan(float(slope)) * 0.5
            mask |= _break(layers, p, float(cx), float(cy), across, rng, spec.severity == "mild")
    return mask


def _clavicle_point(p: Patient, t: Template, side: int, frac: float) -> tuple[float, float, float]:
    """Image (x, y) and direction (radians) of the clavicle's centre line at fraction `frac`."""
    v, sgn = t.variant, (-1.0 if side == 1 else 1.0)
    cy, lift = v.clavicle_dy, v.clavicle_lift
    ctrl = np.array([[0.5 + sgn * 0.05, 0.19 + cy], [0.5 + sgn * 0.16, 0.175 + cy],
                     [0.5 + sgn * 0.27, 0.1 + cy + 0.6 * lift], [0.5 + sgn * 0.42, 0.095 + cy + lift]])
    pts = p.to_image(bezier(ctrl, 41))
    k = int(round(frac * 40))
    d = pts[min(k + 1, 40)] - pts[max(k - 1, 0)]
    return float(pts[k, 0]), float(pts[k, 1]), float(np.arctan2(d[1], d[0]))


def clavicle_fracture(layers: Layers, p: Patient, spec: FindingSpec, rng: np.random.Generator, t: Template) -> np.ndarray:
    """A mid-shaft clavicle fracture with a step and overlapping fragments."""
    mask = np.zeros(layers.body.shape, bool)
    for side in spec.sides() if spec.laterality else spec.sides()[:1]:
        x, y, ang = _clavicle_point(p, t, side, rng.uniform(0.4, 0.6))
        mask |= _break(layers, p, x, y, ang + np.pi / 2, rng, spec.severity == "mild")
    return mask


def _vertebra_y(p: Patient, t: Template, level: int) -> float:
    v = t.variant
    return float(p.to_image(np.array([0.5, v.rib_y0 - 0.03 + (level + 0.5) * v.rib_dy]))[1])


def compression_fracture(layers: Layers, p: Patient, spec: FindingSpec, rng: np.random.Generator, t: Template) -> np.ndarray:
    """A wedged, sclerotic lower thoracic vertebral body (lost height, dense compressed bone)."""
    y = _vertebra_y(p, t, int(rng.integers(6, 10)))
    x = p.spine_x
    m = add_ellipsoid(layers.body, x, y, 0.036, 0.011, 0.45 + 0.15 * severity01(spec), power=0.3)
    for dy in (-0.018, 0.018):  # the neighbouring disc spaces look wider
        add_stroke(layers.body, np.array([[x - 0.03, y + dy], [x + 0.03, y + dy]]), 0.005, -0.15)
    return m


def scoliosis(layers: Layers, p: Patient, spec: FindingSpec, rng: np.random.Generator, t: Template) -> np.ndarray:
    """A lateral curve of the thoracic spine: the vertebral column is redrawn bent."""
    size = p.size
    xs, ys = axes(size)
    top, bottom = p.lung_top, max(p.dome.values()) + 0.05
    amp = (0.02 + 0.025 * severity01(spec)) * (1.0 if rng.random() < 0.6 else -1.0)  # dextro more often
    phase = np.clip((ys - top) / (bottom - top), 0.0, 1.0)
    dx = amp * np.sin(np.pi * phase)  # per row, image x
    band = smoothstep((0.045 - np.abs(xs - p.spine_x)) / 0.012)[None, :]
    spine = np.take(t.bone, layers.idx) * np.float32(p.bone_weight) * band
    shift = np.round(dx * size).astype(np.intp)
    cols = np.clip(np.arange(size)[None, :] - shift[:, None], 0, size - 1)
    bent = np.take_along_axis(spine, cols, axis=1)
    layers.body += (2.6 * bent - spine).astype(np.float32)  # a curved spine stands out as a dense column
    centre = p.spine_x + dx
    rows = (ys > top) & (ys < bottom) & (np.abs(dx) > 0.01)
    return (np.abs(xs[None, :] - centre[:, None]) < 0.03) & rows[:, None]


def degenerative_spine(layers: Layers, p: Patient, spec: FindingSpec, rng: np.random.Generator, t: Template) -> np.ndarray:
    """Marginal osteophytes: bright spurs at the corners of several mid/lower thoracic bodies."""
    mask = np.zeros(layers.body.shape, bool)
    half = 0.032 * t.variant.spine
    for level in rng.choice(np.arange(4, 11), size=int(rng.integers(3, 6)), replace=False):
        y = _vertebra_y(p, t, int(level)) + 0.02
        for sgn in (-1.0, 1.0):
            if rng.random() < 0.75:
                x = p.spine_x + sgn * (half + 0.004)
                mask |= add_ellipsoid(layers.body, x, y, 0.009, 0.006, 0.6, angle=sgn * 0.5)
    return mask


def subcutaneous_emphysema(layers: Layers, p: Patient, spec: FindingSpec, rng: np.random.Generator, t: Template) -> np.ndarray:
    """Streaky lucencies and bubbles in the lateral chest wall, along the pectoral fibres."""
    mask = np.zeros(layers.body.shape, bool)
    for side in spec.sides():
        sgn = -1.0 if side == 1 else 1.0
        for _ in range(int(8 + 6 * severity01(spec))):
            y = rng.uniform(0.15, 0.55)
            _, lat = p.lung_bounds_at(side, y)
            x = lat + sgn * rng.uniform(0.015, 0.06)
            d = np.array([sgn * -0.4, 1.0]) * rng.uniform(0.02, 0.04)
            mask |= add_stroke(layers.body, np.array([[x, y], [x + d[0], y + d[1]]]), 0.006, -0.6)
        for _ in range(6):
            y = rng.uniform(0.12, 0.5)
            _, lat = p.lung_bounds_at(side, y)
            mask |= add_ellipsoid(layers.body, lat + sgn * rng.uniform(0.02, 0.06), y, 0.007, 0.007, -0.55)
    return mask


SKELETON_DRAWERS: dict[str, Drawer] = {
    "fracture": fracture,
    "clavicle_fracture": clavicle_fracture,
    "compression_fracture": compression_fracture,
    "scoliosis": scoliosis,
    "degenerative_spine": degenerative_spine,
    "subcutaneous_emphysema": subcutaneous_emphysema,
}
