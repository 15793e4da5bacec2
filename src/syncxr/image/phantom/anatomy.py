"""Per-patient anatomy: an affine variant of the canonical template plus the parts findings change.

A `Patient` maps canonical coordinates to image coordinates (habitus = x scale, torso length =
y scale, slight in-plane tilt, shift). The template layers are resampled once through that map
(one flat gather per layer); heart, mediastinum and diaphragm are then drawn analytically in
image coordinates so that cardiomegaly, a widened mediastinum or emphysema can change them.
Image left = patient right (see template.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from syncxr.image.phantom.draw import add_ellipsoid, axes, smoothstep
from syncxr.image.phantom.template import CARINA, HILA, LUNG_TOP, Template, lung_span

CENTER = np.array([0.5, 0.45])
SIDE_OF = {"right": 1, "left": 2}  # patient side -> lung label (1 = image left)


@dataclass
class Patient:
    """Geometry of one patient (all positions in normalised image coordinates)."""

    size: int
    sx: float
    sy: float
    tilt: float
    shift: np.ndarray
    dome: dict[int, float]  # lung label -> y of the hemidiaphragm's apex
    dome_depth: float  # how far the costophrenic recess lies below the dome apex
    heart_scale: float  # 1 = normal; cardiomegaly > 1.2
    mediastinum_scale: float
    soft_weight: float
    bone_weight: float
    air_weight: float
    vessel_weight: float
    vessel_variant: int
    breasts: bool
    extra: dict[str, float] = field(default_factory=dict)

    def to_image(self, pts: np.ndarray) -> np.ndarray:
        """Canonical points (..., 2) -> image points (..., 2)."""
        p = (np.asarray(pts, dtype=np.float64) - CENTER) * (self.sx, self.sy)
        c, s = np.cos(self.tilt), np.sin(self.tilt)
        rot = np.stack([c * p[..., 0] - s * p[..., 1], s * p[..., 0] + c * p[..., 1]], axis=-1)
        return rot + CENTER + self.shift

    def lung_bounds(self, side: int, y_canon: float) -> tuple[float, float]:
        """Image x of the (medial, lateral) edge of a lung at a canonical height."""
        med, lat = lung_span(np.array([y_canon]), side)
        m = self.to_image(np.array([med[0], y_canon]))[0]
        la = self.to_image(np.array([lat[0], y_canon]))[0]
        return float(m), float(la)

    def canon_y(self, y_image: float) -> float:
        """Approximate canonical height of an image height (ignores the small tilt)."""
        return float((y_image - CENTER[1] - self.shift[1]) / self.sy + CENTER[1])

    def lung_bounds_at(self, side: int, y_image: float) -> tuple[float, float]:
        """Image x of the (medial, lateral) edge of a lung at an image height."""
        return self.lung_bounds(side, self.canon_y(y_image))

    @property
    def carina(self) -> np.ndarray:
        return self.to_image(np.array(CARINA))

    def hilum(self, side: int) -> np.ndarray:
        return self.to_image(np.array(HILA[side]))

    @property
    def lung_top(self) -> float:
        return float(self.to_image(np.array([0.5, LUNG_TOP]))[1])

    @property
    def spine_x(self) -> float:
        return float(self.to_image(np.array([0.5, 0.5]))[0])


def sample_patient(rng: np.random.Generator, size: int, emphysema: bool = False) -> Patient:
    """Draw habitus, inspiration and exposure-independent anatomy for one patient."""
    dome_r = rng.uniform(0.6, 0.67)
    dome_l = dome_r + rng.uniform(0.015, 0.045)  # right hemidiaphragm higher (liver)
    depth = rng.uniform(0.09, 0.13)
    if emphysema:  # hyperinflation: low, flat domes
        dome_r, dome_l, depth = rng.uniform(0.71, 0.75), 0.0, rng.uniform(0.025, 0.04)
        dome_l = dome_r + rng.uniform(0.0, 0.015)
    return Patient(
        size=size,
        sx=rng.uniform(0.93, 1.07) * (1.03 if emphysema else 1.0),
        sy=rng.uniform(0.95, 1.05),
        tilt=float(rng.normal(0.0, 0.018)),
        shift=np.array([rng.normal(0.0, 0.01), rng.uniform(-0.03, 0.025)]),
        dome={1: dome_r, 2: dome_l},
        dome_depth=depth,
        heart_scale=rng.uniform(0.9, 1.04),
        mediastinum_scale=rng.uniform(0.9, 1.1),
        soft_weight=rng.uniform(0.85, 1.15),
        bone_weight=rng.uniform(0.8, 1.2),
        air_weight=rng.uniform(1.15, 1.4) * (1.12 if emphysema else 1.0),
        vessel_weight=rng.uniform(0.8, 1.2) * (0.55 if emphysema else 1.0),
        vessel_variant=int(rng.integers(0, 3)),
        breasts=bool(rng.random() < 0.3),
    )


def warp_index(p: Patient, size: int) -> np.ndarray:
    """Flat template index (H, W) for every image pixel (nearest neighbour inverse affine)."""
    xs, ys = axes(size)
    c, s = np.cos(p.tilt), np.sin(p.tilt)
    ox, oy = CENTER + p.shift
    # inverse of rotate(scale(canon - C)) + C + shift
    ax = np.float32(c / p.sx * size), np.float32(s / p.sx * size)
    ay = np.float32(-s / p.sy * size), np.float32(c / p.sy * size)
    dx = xs - np.float32(ox)
    dy = ys - np.float32(oy)
    col = (ax[0] * dx)[None, :] + (ax[1] * dy)[:, None] + np.float32(CENTER[0] * size)
    row = (ay[0] * dx)[None, :] + (ay[1] * dy)[:, None] + np.float32(CENTER[1] * size)
    col = np.clip(col, 0, size - 1).astype(np.intp)
    row = np.clip(row, 0, size - 1).astype(np.intp)
    return row * size + col


@dataclass
class Layers:
    """Per-patient attenuation pieces in image space (all float32 (H, W) unless noted)."""

    body: np.ndarray  # soft tissue + bone (+ heart, mediastinum, lesions, devices as they are added)
    lung: np.ndarray  # lung contribution: markings minus air (<= 0 mostly); findings edit it
    label: np.ndarray  # uint8 lung label after the diaphragm cut
    above: np.ndarray  # 1 above the diaphragm, 0 below (soft edge)
    idx: np.ndarray  # (H, W) flat template index of every pixel (for local re-sampling)
    under_lung: np.ndarray  # (1, W) 1 in the columns the lungs span (where the domes are), 0 outside
    heart: np.ndarray | None = None  # bool mask of the cardiac silhouette
    mediastinum: np.ndarray | None = None  # bool mask of the superior mediastinum + aortic knob


def dome_curve(p: Patient, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(y of the diaphragm, weight of the organs under it) for every image column, both (W,).

    Two domes with deep lateral recesses (sharp costophrenic angles); the weight is 1 under the
    lungs and fades out beyond the lateral walls, where the chest wall continues into the flank.
    """
    xs, _ = axes(size)
    y = np.full(size, 1.2, np.float32)
    w = np.zeros(size, np.float32)
    for side in (1, 2):
        med, lat = p.lung_bounds_at(side, p.dome[side])
        u = (xs - med) / (lat - med)  # 0 medial, 1 lateral edge of the lung
        apex_u = 0.45
        lateral = np.clip(u - apex_u, 0, None) / (1 - apex_u)
        medial = np.clip(apex_u - u, 0, None) / apex_u
        curve = p.dome[side] + p.dome_depth * lateral**1.7 + 0.2 * p.dome_depth * medial**1.6
        curve = curve + 2.0 * np.clip(u - 1.0, 0, None)  # beyond the wall: straight down the flank
        on_side = (xs < p.spine_x) if side == 1 else (xs >= p.spine_x)
        y = np.where(on_side & (u > -0.3) & (u < 1.4), curve, y).astype(np.float32)
        w = np.where(on_side, smoothstep((1.35 - u) / 0.3), w).astype(np.float32)
    return y, w


def base_layers(t: Template, p: Patient) -> Layers:
    """Resample the template for this patient and cut the lungs at the diaphragm."""
    size = t.size
    idx = warp_index(p, size)
    static = p.soft_weight * t.soft + p.bone_weight * t.bone
    lung = p.vessel_weight * t.vessels[p.vessel_variant] - p.air_weight * t.air
    body = np.take(static, idx)
    lung = np.take(lung, idx)
    label = np.take(t.label, idx)
    _, ys = axes(size)
    dome, under = dome_curve(p, size)
    above = smoothstep((dome[None, :] - ys[:, None]) * (size / 2.0))
    # trachea air (above the lungs) is not cut; only lung air is removed below the domes
    lung *= np.where(ys[:, None] < p.lung_top + 0.05, np.float32(1.0), above)
    label = np.where(above > 0.5, label, np.uint8(0))
    return Layers(body=body, lung=lung, label=label, above=above, idx=idx, under_lung=under[None, :])


def add_heart_and_mediastinum(layers: Layers, p: Patient) -> None:
    """One cardiomediastinal silhouette, from the neck down onto the diaphragm.

    Drawn row by row: each row has a right (image-left) and left (image-right) border offset from
    the spine. Above the heart: the superior mediastinum (with the aortic knob on the left);
    below the carina the heart widens, its right border the right-atrial bulge and its left
    border sloping down to the apex, about 2/3 of it left of the midline. The lower heart is
    cut by the domes, so it sits on (and blends into) the subdiaphragmatic soft tissue.
    """
    size = layers.body.shape[0]
    xs, ys = axes(size)
    hs, ms, sx = p.heart_scale, p.mediastinum_scale, p.sx
    spine = p.spine_x
    floor = max(p.dome[1], p.dome[2]) + 0.6 * p.dome_depth  # the domes cut the heart's base
    top = p.carina[1] + 0.03
    height = (floor - top) * (1.0 + 0.25 * (hs - 1.0))
    top = floor - height
    knob_y = p.carina[1] - 0.04
    y = ys
    t = np.clip((y - top) / height, 0.0, 1.2)
    in_heart = (y >= top).astype(np.float32)
    # right border: SVC above, then the right atrium bulging out and tucking in at the base
    ra = 0.105 * hs * sx * np.sin(0.5 * np.pi * np.clip(t / 0.45, 0, 1)) ** 0.7 * (1 - 0.12 * np.clip((t - 0.5) / 0.5, 0, 1) ** 2)
    svc = 0.05 * ms * sx
    right = np.maximum(svc, ra * in_heart)
    # left border: knob, pulmonary trunk, then the left ventricle sloping down to the apex
    lv = 0.07 * ms * sx + (0.225 * hs - 0.07 * ms) * sx * np.sin(0.5 * np.pi * np.clip((t - 0.08) / 0.62, 0, 1)) ** 1.2
    lv *= np.sqrt(np.clip(1.0 - ((t - 0.72) / 0.5).clip(0, None) ** 2, 0, 1))
    sup = 0.058 * ms * sx + 0.035 * ms * sx * np.exp(-(((y - knob_y) / 0.028) ** 2))
    left = np.maximum(sup, lv * in_heart)
    neck = smoothstep((y - p.lung_top + 0.1) / 0.12)  # merges into the neck soft tissue
    r0 = int(max(0, np.floor(size * (p.lung_top - 0.08))))
    r1 = int(min(size, np.ceil(size * (floor + 0.08))))
    c0 = int(max(0, np.floor(size * (spine - right.max() - 0.02))))
    c1 = int(min(size, np.ceil(size * (spine + left.max() + 0.02))))
    bb = (slice(r0, r1), slice(c0, c1))
    rr, ll = right[bb[0]][:, None], left[bb[0]][:, None]
    dx = xs[bb[1]][None, :] - spine
    centre, half = 0.5 * (ll - rr), 0.5 * (ll + rr)
    q = np.clip(1.0 - ((dx - centre) / half) ** 2, 0.0, 1.0)
    prof = q**0.35 * smoothstep((1.0 - np.abs(dx - centre) / half) * half * size / 1.5)
    heart_w = smoothstep((y[bb[0]][:, None] - top + 0.04) / 0.16)
    amp = (0.45 + 0.25 * heart_w) * neck[bb[0]][:, None]
    dens = (amp * prof * layers.above[bb]).astype(np.float32)
    layers.body[bb] += dens
    layers.lung[bb] *= 1.0 - 0.75 * prof * heart_w  # the heart displaces the lung in front of it
    inside = (q > 0) & (layers.above[bb] > 0.5)
    heart = np.zeros(layers.body.shape, bool)
    heart[bb] = inside & (ys[bb[0]][:, None] > top + 0.02)
    med = np.zeros(layers.body.shape, bool)
    med[bb] = inside & (ys[bb[0]][:, None] <= top + 0.02) & (ys[bb[0]][:, None] > p.lung_top - 0.02)
    layers.heart, layers.mediastinum = heart, med
    # subdiaphragmatic organs (liver, spleen, stomach wall) fill in under the domes
    layers.body += np.float32(0.4) * (1.0 - layers.above) * layers.under_lung


def add_soft_extras(layers: Layers, p: Patient, rng: np.random.Generator) -> None:
    """Gastric bubble under the left dome; breast shadows over the lower zones in some patients."""
    xs, _ = axes(layers.body.shape[0])
    med, lat = p.lung_bounds_at(2, p.dome[2])
    gx = med + 0.45 * (lat - med) + rng.uniform(-0.03, 0.03)
    gy = p.dome[2] + rng.uniform(0.035, 0.06)
    add_ellipsoid(layers.body, gx, gy, rng.uniform(0.035, 0.06), rng.uniform(0.02, 0.03), -0.55, power=0.8)
    if p.breasts:
        for side in (1, 2):
            m, la = p.lung_bounds_at(side, p.dome[side])
            bx = m + 0.6 * (la - m)
            add_ellipsoid(layers.body, bx, p.dome[side] + 0.02, 0.17, 0.12, rng.uniform(0.35, 0.55), power=0.35)
