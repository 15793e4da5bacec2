"""Heart, mediastinum, hila and upper abdomen: pericardial effusion, mediastinal shift, the aorta,
hilar enlargement and lymph nodes, pneumomediastinum, hiatal hernia, free air under the diaphragm.

Findings that change the heart or the domes were applied to the patient before drawing
(patient.py); their drawers return the region that changed. Side 1 = patient right = image left.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from syncxr.image.phantom.anatomy import Layers, Patient, dome_curve, silhouette_borders
from syncxr.image.phantom.draw import add_ellipsoid, add_stroke, axes, bezier, ellipse_field, polyline_mask
from syncxr.image.phantom.findings import Drawer, _fill
from syncxr.image.phantom.spec import FindingSpec, severity01
from syncxr.image.phantom.template import Template


def _mediastinal_edge(p: Patient, y: float, side: int) -> float:
    """Image x of the cardiomediastinal border at height y on one side."""
    ys = np.array([y], np.float32)
    right, left, _, _ = silhouette_borders(p, ys)
    centre = p.spine_x + p.mediastinum_dx
    return float(centre - right[0]) if side == 1 else float(centre + left[0])


def pericardial_effusion(layers: Layers, p: Patient, spec: FindingSpec, rng: np.random.Generator, t: Template) -> np.ndarray:
    """The heart was drawn enlarged and globular ("water bottle"); the mask is the silhouette."""
    return layers.heart.copy()


def mediastinal_shift(layers: Layers, p: Patient, spec: FindingSpec, rng: np.random.Generator, t: Template) -> np.ndarray:
    """The heart and mediastinum were drawn shifted; the mask is the silhouette on the side they
    moved to (beyond the spine), where it displaced lung."""
    sil = layers.heart | layers.mediastinum
    core = ndimage.binary_erosion(sil, iterations=max(2, p.size // 96))  # leave out the soft border
    xs, _ = axes(p.size)
    toward = xs > p.spine_x if p.mediastinum_dx > 0 else xs < p.spine_x
    return core & toward[None, :]


def tortuous_aorta(layers: Layers, p: Patient, spec: FindingSpec, rng: np.random.Generator, t: Template) -> np.ndarray:
    """A widened, unfolded aortic knob and a descending aorta bowing out to the left."""
    cy = p.carina[1] - 0.045
    kx = _mediastinal_edge(p, cy, 2)
    mask = _soft(layers, p, kx + 0.008, cy - 0.005, 0.035, 0.04, 0.18)
    top, bottom = cy + 0.03, max(p.dome.values()) - 0.03
    bow = rng.uniform(0.035, 0.055)
    path = bezier(np.array([(kx - 0.01, top), (p.spine_x + 0.03 + 2 * bow, 0.5 * (top + bottom)), (p.spine_x + 0.035, bottom)]), 30)
    stripe = polyline_mask(path, 0.05, p.size)
    _fill(layers, (slice(0, p.size), slice(0, p.size)), 0.7 * stripe.astype(np.float32), 0.35)
    return mask | (stripe & (layers.label > 0))


def _soft(layers: Layers, p: Patient, cx: float, cy: float, rx: float, ry: float, amp: float) -> np.ndarray:
    """A soft-tissue bulge that displaces lung air; its mask."""
    bb, r2 = ellipse_field(cx, cy, rx, ry, p.size)
    dens = np.sqrt(np.clip(1.0 - r2, 0.0, 1.0)).astype(np.float32)
    layers.lung[bb] *= 1.0 - 0.6 * dens
    layers.body[bb] += amp * dens
    mask = np.zeros(layers.body.shape, bool)
    mask[bb] = r2 < 0.8
    return mask


def aortic_calcification(layers: Layers, p: Patient, spec: FindingSpec, rng: np.random.Generator, t: Template) -> np.ndarray:
    """A thin bright curvilinear rim along the aortic knob."""
    cy = p.carina[1] - 0.045
    kx = _mediastinal_edge(p, cy, 2) - 0.02
    ang = np.linspace(-1.3, 1.0, 12) + rng.normal(0, 0.05)
    r = rng.uniform(0.022, 0.03)
    arc = np.stack([kx + r * np.cos(ang), cy + r * np.sin(ang)], axis=1)
    return add_stroke(layers.body, arc, 0.007, 0.9)


def _hilum_lobes(layers: Layers, p: Patient, side: int, rng: np.random.Generator, size: float, n: int) -> np.ndarray:
    hx, hy = p.hilum(side)
    lat = -1.0 if side == 1 else 1.0
    mask = np.zeros(layers.body.shape, bool)
    for k in range(n):
        cx = hx + lat * (0.012 + rng.uniform(0.0, 0.02))
        cy = hy + (k - (n - 1) / 2) * size * 1.1 + rng.normal(0, 0.006)
        mask |= _soft(layers, p, cx, cy, size * rng.uniform(0.9, 1.2), size * rng.uniform(0.8, 1.1), 0.18)
    return mask


def hilar_enlargement(layers: Layers, p: Patient, spec: FindingSpec, rng: np.random.Generator, t: Template) -> np.ndarray:
    """Enlarged, lobulated hila."""
    size = 0.025 + 0.01 * severity01(spec)
    mask = np.zeros(layers.body.shape, bool)
    for side in spec.sides():
        mask |= _hilum_lobes(layers, p, side, rng, size, 3)
    return mask


def lymphadenopathy(layers: Layers, p: Patient, spec: FindingSpec, rng: np.random.Generator, t: Template) -> np.ndarray:
    """Lobulated hilar nodes; with a right side, a widened right paratracheal stripe."""
    mask = np.zeros(layers.body.shape, bool)
    for side in spec.sides():
        mask |= _hilum_lobes(layers, p, side, rng, 0.02, 4)
    if 1 in spec.sides():
        y = p.carina[1] - 0.06
        mask |= _soft(layers, p, _mediastinal_edge(p, y, 1) - 0.005, y, 0.022, 0.04, 0.2)
    return mask


def calcified_nodes(layers: Layers, p: Patient, spec: FindingSpec, rng: np.random.Generator, t: Template) -> np.ndarray:
    """Calcified lymph nodes: bright irregular dots at the hila."""
    mask = np.zeros(layers.body.shape, bool)
    for side in spec.sides():
        hx, hy = p.hilum(side)
        for _ in range(int(rng.integers(2, 5))):
            cx, cy = hx + rng.normal(0, 0.012), hy + rng.normal(0, 0.02)
            mask |= add_ellipsoid(layers.body, cx, cy, rng.uniform(0.006, 0.01), rng.uniform(0.005, 0.009), 1.0,
                                  angle=rng.uniform(0, np.pi))
    return mask


def pneumomediastinum(layers: Layers, p: Patient, spec: FindingSpec, rng: np.random.Generator, t: Template) -> np.ndarray:
    """Lucent streaks along the left heart border and the mediastinum, up into the neck."""
    mask = np.zeros(layers.body.shape, bool)
    _, _, top, floor = silhouette_borders(p, np.array([0.5], np.float32))
    for side in (2, 1):
        ys = np.linspace(p.lung_top - 0.08, (floor - 0.06) if side == 2 else top, 14)
        xs = np.array([_mediastinal_edge(p, float(y), side) for y in ys])
        inward = -0.007 if side == 2 else 0.007
        path = np.stack([xs + inward, ys], axis=1)
        mask |= add_stroke(layers.body, path, 0.008, -0.35)
        add_stroke(layers.body, np.stack([xs - 1.6 * inward, ys], axis=1), 0.003, 0.12)  # the lifted pleura
    return mask


def hiatal_hernia(layers: Layers, p: Patient, spec: FindingSpec, rng: np.random.Generator, t: Template) -> np.ndarray:
    """A rounded retrocardiac air bubble with an air-fluid level, over the lower heart."""
    _, _, _, floor = silhouette_borders(p, np.array([0.5], np.float32))
    r = 0.03 + 0.02 * severity01(spec)
    cx, cy = p.spine_x + rng.uniform(0.0, 0.03), floor - r - rng.uniform(0.01, 0.03)
    bb, r2 = ellipse_field(cx, cy, r * 1.15, r, p.size)
    _, ys = axes(p.size)
    dome = np.sqrt(np.clip(1.0 - r2, 0.0, 1.0))
    air = dome * (ys[bb[0]][:, None] < cy + rng.uniform(0.3, 0.6) * r)
    layers.body[bb] -= (0.6 * air).astype(np.float32)
    layers.body[bb] += (0.12 * np.where((r2 < 1.0) & (r2 > 0.75), 1.0, 0.0)).astype(np.float32)  # wall
    mask = np.zeros(layers.body.shape, bool)
    mask[bb] = r2 < 1.0
    return mask


def pneumoperitoneum(layers: Layers, p: Patient, spec: FindingSpec, rng: np.random.Generator, t: Template) -> np.ndarray:
    """Crescents of free air under the domes (the right one first), separating them from the liver."""
    y_dome, weight = dome_curve(p, p.size)
    xs, ys = axes(p.size)
    mask = np.zeros(layers.body.shape, bool)
    thick = 0.018 + 0.012 * severity01(spec)
    for side in spec.sides():
        med, lat = p.lung_bounds_at(side, p.dome[side])
        u = (xs - med) / (lat - med)
        crescent = np.clip(np.sin(np.pi * np.clip((u - 0.1) / 0.8, 0, 1)), 0, 1) * thick * (weight > 0.5)
        d = ys[:, None] - (y_dome[None, :] + 0.004)
        band = (d > 0) & (d < crescent[None, :])
        layers.body -= np.where(band, np.float32(0.8), np.float32(0.0))
        mask |= band
    return mask


CENTRAL_DRAWERS: dict[str, Drawer] = {
    "pericardial_effusion": pericardial_effusion,
    "mediastinal_shift": mediastinal_shift,
    "tortuous_aorta": tortuous_aorta,
    "aortic_calcification": aortic_calcification,
    "hilar_enlargement": hilar_enlargement,
    "lymphadenopathy": lymphadenopathy,
    "calcified_nodes": calcified_nodes,
    "pneumomediastinum": pneumomediastinum,
    "hiatal_hernia": hiatal_hernia,
    "pneumoperitoneum": pneumoperitoneum,
}
