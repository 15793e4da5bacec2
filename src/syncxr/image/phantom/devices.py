"""Support devices: tubes, lines, pacemaker, sternotomy wires. Each returns its bool mask.

Devices are radio-opaque, so they add strongly to `layers.body`. Paths are Bezier curves through
anatomical landmarks of the patient (carina, spine, hemidiaphragms); side 1 = patient right =
image left.
"""

from __future__ import annotations

import numpy as np

from syncxr.image.phantom.anatomy import Layers, Patient
from syncxr.image.phantom.draw import add_ellipsoid, add_stroke, bezier, ellipse_field, polyline_box, polyline_mask
from syncxr.image.phantom.findings import Drawer
from syncxr.image.phantom.spec import FindingSpec
from syncxr.image.phantom.template import Template


def _stroke(layers: Layers, ctrl: np.ndarray, width: float, amp: float, n: int = 40) -> np.ndarray:
    return add_stroke(layers.body, bezier(ctrl, n), width, amp)


def _tube(layers: Layers, ctrl: np.ndarray, width: float, amp: float) -> np.ndarray:
    """A tube: two walls and a radio-opaque stripe, lucent lumen between (mask = whole tube)."""
    size = layers.body.shape[0]
    path = bezier(ctrl, 60)
    bb, full = polyline_box(path, width, size)
    lumen = polyline_mask(path, width * 0.45, size)[bb]
    stripe = polyline_mask(path, 1.2 / size, size)[bb]
    layers.body[bb] += np.where(full & ~lumen, np.float32(amp), np.float32(0.0))
    layers.body[bb] += np.where(stripe, np.float32(amp * 1.4), np.float32(0.0))
    mask = np.zeros(layers.body.shape, bool)
    mask[bb] = full
    return mask


def et_tube(layers: Layers, p: Patient, spec: FindingSpec, rng: np.random.Generator, t: Template) -> np.ndarray:
    """Endotracheal tube down the trachea, tip 3-5 cm above the carina."""
    cx, cy = p.carina
    tip = cy - rng.uniform(0.07, 0.12)
    x = cx + rng.normal(0, 0.004)
    ctrl = np.array([[x + rng.normal(0, 0.02), -0.02], [x, tip * 0.5], [x, tip]])
    return _tube(layers, ctrl, 0.02, 0.35)


def central_line(layers: Layers, p: Patient, spec: FindingSpec, rng: np.random.Generator, t: Template) -> np.ndarray:
    """Internal jugular line from the neck into the SVC (tip at about the cavo-atrial level)."""
    spine, (_, cy) = p.spine_x, p.carina
    sgn = -1.0 if spec.sides()[0] == 1 else 1.0
    tip = (spine - 0.035 + rng.normal(0, 0.005), cy + rng.uniform(0.02, 0.07))
    entry = (spine + sgn * rng.uniform(0.07, 0.1), -0.02)
    ctrl = np.array([entry, (spine + sgn * 0.06, 0.12), (spine - 0.03 + sgn * 0.02, 0.2), tip])
    return _stroke(layers, ctrl, 0.006, 0.55)


def pacemaker(layers: Layers, p: Patient, spec: FindingSpec, rng: np.random.Generator, t: Template) -> np.ndarray:
    """Pulse generator (bright metal box) below the clavicle, leads through the SVC to RA and RV."""
    size = layers.body.shape[0]
    sgn = -1.0 if spec.sides()[0] == 1 else 1.0
    spine = p.spine_x
    gx, gy = spine + sgn * rng.uniform(0.2, 0.26), rng.uniform(0.14, 0.19)
    bb, r2 = ellipse_field(gx, gy, 0.04, 0.03, size, rng.uniform(-0.3, 0.3))
    # a rounded rectangle: superellipse |dx|^4 + |dy|^4 < 1 approximated through r2 of a squarer box
    boxy = r2 < 1.0
    layers.body[bb] += np.where(boxy, np.float32(2.2), np.float32(0.0))
    mask = np.zeros(layers.body.shape, bool)
    mask[bb] = boxy
    apex = (spine + 0.1 * p.heart_scale, 0.5 * (p.dome[1] + p.dome[2]) - 0.05)
    ra = (spine - 0.04, p.carina[1] + 0.16)
    for end in (apex, ra):
        ctrl = np.array([(gx, gy), (spine + sgn * 0.05, gy - 0.02), (spine - 0.02, p.carina[1] + 0.05), end])
        mask |= _stroke(layers, ctrl, 0.006, 0.8)
        mask |= add_ellipsoid(layers.body, end[0], end[1], 0.007, 0.007, 1.0)
    return mask


def ng_tube(layers: Layers, p: Patient, spec: FindingSpec, rng: np.random.Generator, t: Template) -> np.ndarray:
    """Nasogastric tube down the midline (oesophagus), through the hiatus, tip in the stomach."""
    spine, dome_l = p.spine_x, p.dome[2]
    med, lat = p.lung_bounds_at(2, dome_l)
    tip = (med + rng.uniform(0.3, 0.6) * (lat - med), dome_l + rng.uniform(0.06, 0.1))
    ctrl = np.array([(spine + 0.01, -0.02), (spine + 0.015, 0.4), (spine + 0.02, dome_l + 0.02), (tip[0] - 0.05, tip[1] + 0.03), tip])
    return _stroke(layers, ctrl, 0.008, 0.5)


def sternotomy(layers: Layers, p: Patient, spec: FindingSpec, rng: np.random.Generator, t: Template) -> np.ndarray:
    """Median sternotomy: 5-7 twisted wire loops down the midline."""
    size = layers.body.shape[0]
    mask = np.zeros(layers.body.shape, bool)
    n = int(rng.integers(5, 8))
    ys = np.linspace(p.carina[1] - 0.1, p.carina[1] + 0.2 + 0.04 * n / 7, n) + rng.normal(0, 0.005, n)
    for y in ys:
        x = p.spine_x + rng.normal(0, 0.006)
        bb, r2 = ellipse_field(x, y, 0.016, 0.008, size, rng.normal(0, 0.15))
        ring = (r2 < 1.0) & (r2 > 0.35)
        layers.body[bb] += np.where(ring, np.float32(1.6), np.float32(0.0))
        mask[bb] |= r2 < 1.0
        mask |= _stroke(layers, np.array([[x, y - 0.004], [x + 0.004, y - 0.012], [x, y - 0.02]]), 0.004, 1.4, 8)
    return mask


def chest_tube(layers: Layers, p: Patient, spec: FindingSpec, rng: np.random.Generator, t: Template) -> np.ndarray:
    """Chest tube entering the lower lateral chest wall and curving up toward the apex."""
    side = spec.sides()[0]
    y_in = p.dome[side] - rng.uniform(0.03, 0.08)
    med, lat = p.lung_bounds_at(side, y_in)
    sgn = np.sign(lat - med)
    entry = (lat + sgn * 0.05, y_in + 0.04)
    mid = (lat - sgn * 0.04, y_in - 0.1)
    top_med, top_lat = p.lung_bounds_at(side, p.lung_top + 0.1)
    tip = (top_med + 0.55 * (top_lat - top_med), p.lung_top + rng.uniform(0.06, 0.12))
    return _tube(layers, np.array([entry, (lat, y_in), mid, tip]), 0.018, 0.4)


DEVICE_DRAWERS: dict[str, Drawer] = {
    "et_tube": et_tube,
    "central_line": central_line,
    "pacemaker": pacemaker,
    "ng_tube": ng_tube,
    "sternotomy": sternotomy,
    "chest_tube": chest_tube,
}
