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
    mask[bb] = (full & ~lumen) | stripe  # the radio-opaque wall and stripe (the lumen is air)
    return mask


def et_tube(layers: Layers, p: Patient, spec: FindingSpec, rng: np.random.Generator, t: Template) -> np.ndarray:
    """Endotracheal tube down the trachea, tip 3-5 cm above the carina."""
    cx, cy = p.carina
    tip = cy - rng.uniform(0.07, 0.12)
    x = cx + rng.normal(0, 0.004)
    ctrl = np.array([[x + rng.normal(0, 0.02), -0.02], [x, tip * 0.5], [x, tip]])
    return _tube(layers, ctrl, 0.02, 1.3)  # bright enough to beat the neck soft tissue under scatter


def tracheostomy_tube(layers: Layers, p: Patient, spec: FindingSpec, rng: np.random.Generator, t: Template) -> np.ndarray:
    """A short curved tube entering the trachea at the base of the neck, tip well above the carina,
    with its flange across the neck."""
    cx, cy = p.carina
    x = cx + rng.normal(0, 0.004)
    top = p.lung_top - rng.uniform(0.02, 0.05)
    ctrl = np.array([[x + 0.02, top - 0.03], [x, top + 0.02], [x, cy - rng.uniform(0.08, 0.12)]])
    mask = _tube(layers, ctrl, 0.024, 0.9)
    flange = np.array([[x - 0.05, top - 0.03], [x + 0.05, top - 0.03]])
    return mask | _stroke(layers, flange, 0.01, 0.8, 8)


def _svc_tip(p: Patient, rng: np.random.Generator) -> tuple[float, float]:
    """The SVC / cavo-atrial junction: right of the spine (image left), below the carina."""
    return p.spine_x - 0.035 + rng.normal(0, 0.005), p.carina[1] + rng.uniform(0.02, 0.07)


def _each_side(spec: FindingSpec) -> tuple[int, ...]:
    """Sides a sided device is drawn on ("bilateral" = one on each side)."""
    return spec.sides() if spec.laterality else spec.sides()[:1]


def central_line(layers: Layers, p: Patient, spec: FindingSpec, rng: np.random.Generator, t: Template) -> np.ndarray:
    """Internal jugular line from the neck into the SVC (tip at about the cavo-atrial level)."""
    spine = p.spine_x
    mask = np.zeros(layers.body.shape, bool)
    for side in _each_side(spec):
        sgn = -1.0 if side == 1 else 1.0
        entry = (spine + sgn * rng.uniform(0.08, 0.11), -0.02)
        if side == 1:  # right IJ: nearly straight down into the SVC
            ctrl = np.array([entry, (spine + sgn * 0.06, 0.12), (spine - 0.04, 0.2), _svc_tip(p, rng)])
        else:  # left IJ: down the left neck, across the brachiocephalic vein, into the SVC
            ctrl = np.array([entry, (spine + 0.085, 0.14), (spine + 0.07, p.carina[1] - 0.08),
                             (spine - 0.01, p.carina[1] - 0.05), _svc_tip(p, rng)])
        mask |= _stroke(layers, ctrl, 0.006, 0.55, 50)
    return mask


def picc_line(layers: Layers, p: Patient, spec: FindingSpec, rng: np.random.Generator, t: Template) -> np.ndarray:
    """PICC: from the arm at the image edge, along the axillary and subclavian veins into the SVC."""
    spine = p.spine_x
    mask = np.zeros(layers.body.shape, bool)
    for side in _each_side(spec):
        sgn = -1.0 if side == 1 else 1.0
        y_arm = rng.uniform(0.2, 0.27)
        entry = (0.5 + sgn * 0.52, y_arm + 0.03)
        axilla = (spine + sgn * 0.33, y_arm)
        subclavian = (spine + sgn * 0.12, p.lung_top + 0.04)
        ctrl = np.array([entry, axilla, subclavian, (spine - 0.03, p.carina[1] - 0.04), _svc_tip(p, rng)])
        mask |= _stroke(layers, ctrl, 0.005, 0.55, 60)
    return mask


def port_catheter(layers: Layers, p: Patient, spec: FindingSpec, rng: np.random.Generator, t: Template) -> np.ndarray:
    """Chest port: a bright round reservoir in the upper chest wall, its catheter into the SVC."""
    size = layers.body.shape[0]
    spine = p.spine_x
    mask = np.zeros(layers.body.shape, bool)
    for side in _each_side(spec):
        sgn = -1.0 if side == 1 else 1.0
        gx, gy = spine + sgn * rng.uniform(0.14, 0.2), rng.uniform(0.2, 0.26)
        bb, r2 = ellipse_field(gx, gy, 0.022, 0.022, size)
        disc = r2 < 1.0
        layers.body[bb] += np.where(disc, np.float32(1.4), np.float32(0.0)) - np.where(r2 < 0.3, np.float32(0.5), np.float32(0.0))
        mask[bb] |= disc
        ctrl = np.array([(gx, gy), (spine + sgn * 0.08, p.lung_top - 0.01), (spine - 0.03, p.carina[1] - 0.03), _svc_tip(p, rng)])
        mask |= _stroke(layers, ctrl, 0.005, 0.55)
    return mask


def swan_ganz_catheter(layers: Layers, p: Patient, spec: FindingSpec, rng: np.random.Generator, t: Template) -> np.ndarray:
    """Pulmonary artery catheter: neck, SVC, right atrium, right ventricle, out to a pulmonary artery."""
    spine, (_, cy) = p.spine_x, p.carina
    hx, hy = p.hilum(2 if rng.random() < 0.4 else 1)
    ra = (spine - 0.06, cy + 0.15)
    rv = (spine + 0.04, cy + 0.2)
    ctrl = np.array([(spine - 0.08, -0.02), (spine - 0.05, 0.15), (spine - 0.04, cy + 0.04), ra, rv, (spine + 0.02, cy + 0.06), (hx, hy)])
    return _stroke(layers, ctrl, 0.006, 0.55, 80)


def surgical_clips(layers: Layers, p: Patient, spec: FindingSpec, rng: np.random.Generator, t: Template) -> np.ndarray:
    """A cluster of small bright metallic clips: right upper quadrant (cholecystectomy), axilla or
    mediastinum."""
    site = int(rng.integers(0, 3))
    if site == 0:
        cx, cy = p.spine_x - rng.uniform(0.12, 0.2), p.dome[1] + rng.uniform(0.06, 0.1)
    elif site == 1:
        cx, cy = p.spine_x + (1 if rng.random() < 0.5 else -1) * rng.uniform(0.3, 0.36), rng.uniform(0.22, 0.3)
    else:
        cx, cy = p.spine_x + rng.uniform(-0.02, 0.05), p.carina[1] + rng.uniform(0.0, 0.1)
    mask = np.zeros(layers.body.shape, bool)
    for _ in range(int(rng.integers(3, 7))):
        x, y = cx + rng.normal(0, 0.015), cy + rng.normal(0, 0.015)
        a = rng.uniform(0, np.pi)
        d = 0.008 * np.array([np.cos(a), np.sin(a)])
        mask |= _stroke(layers, np.array([[x, y] - d, [x, y] + d]), 0.005, 1.6, 6)
    return mask


def prosthetic_valve(layers: Layers, p: Patient, spec: FindingSpec, rng: np.random.Generator, t: Template) -> np.ndarray:
    """A bright prosthetic valve ring over the heart (aortic or mitral position)."""
    size = layers.body.shape[0]
    spine, (_, cy) = p.spine_x, p.carina
    vx, vy = (spine + 0.01, cy + 0.1) if rng.random() < 0.5 else (spine + 0.05, cy + 0.15)
    bb, r2 = ellipse_field(vx, vy, 0.022, 0.014, size, rng.uniform(-0.6, 0.6))
    ring = (r2 < 1.0) & (r2 > 0.45)
    layers.body[bb] += np.where(ring, np.float32(1.5), np.float32(0.0))
    mask = np.zeros(layers.body.shape, bool)
    mask[bb] = r2 < 1.0
    return mask


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
    mask = np.zeros(layers.body.shape, bool)
    for side in _each_side(spec):
        y_in = p.dome[side] - rng.uniform(0.03, 0.08)
        med, lat = p.lung_bounds_at(side, y_in)
        sgn = np.sign(lat - med)
        entry = (lat + sgn * 0.05, y_in + 0.04)
        mid = (lat - sgn * 0.04, y_in - 0.1)
        top_med, top_lat = p.lung_bounds_at(side, p.lung_top + 0.1)
        tip = (top_med + 0.55 * (top_lat - top_med), p.lung_top + rng.uniform(0.06, 0.12))
        mask |= _tube(layers, np.array([entry, (lat, y_in), mid, tip]), 0.018, 0.4)
    return mask


DEVICE_DRAWERS: dict[str, Drawer] = {
    "et_tube": et_tube,
    "central_line": central_line,
    "pacemaker": pacemaker,
    "ng_tube": ng_tube,
    "sternotomy": sternotomy,
    "chest_tube": chest_tube,
    "tracheostomy_tube": tracheostomy_tube,
    "picc_line": picc_line,
    "port_catheter": port_catheter,
    "swan_ganz_catheter": swan_ganz_catheter,
    "surgical_clips": surgical_clips,
    "prosthetic_valve": prosthetic_valve,
}
