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

from syncxr.image.phantom.draw import axes, ellipse_field, smoothstep
from syncxr.image.phantom.template import CARINA, HILA, LUNG_TOP, N_VARIANTS, Template, lung_span

CENTER = np.array([0.5, 0.45])
SIDE_OF = {"right": 1, "left": 2}  # patient side -> lung label (1 = image left)
# A pneumothorax relabels the pleural air it opens: side + PLEURAL_AIR (3 = right, 4 = left). Lung
# findings test `label == side` and so stay out of the air; pleural ones use `pleural_space`.
PLEURAL_AIR = 2


def lung_fields(label: np.ndarray) -> np.ndarray:
    """bool: both lungs, without any pleural air."""
    return (label == 1) | (label == 2)


def pleural_space(label: np.ndarray, side: int) -> np.ndarray:
    """bool: the hemithorax of `side` inside the chest wall (lung plus any pleural air)."""
    return (label == side) | (label == side + PLEURAL_AIR)


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
    arm_weight: float  # 0 = arms raised out of the field (typical PA), up to 1 = arms at the sides (AP)
    air_weight: float
    vessel_weight: float
    variant: int  # which template variant (skeleton, vessel tree, build) this patient is drawn from
    breasts: bool
    mediastinum_density: float = 1.0  # scales the mediastinal/cardiac soft-tissue density
    ap: bool = False  # AP film: arms at the sides, chest magnified and framed a little lower
    mediastinum_dx: float = 0.0  # mediastinal shift (image x; + = toward image right = patient left)
    globular: bool = False  # pericardial effusion: a symmetric "water-bottle" cardiac silhouette
    normal_dome: dict[int, float] = field(default_factory=dict)  # domes before a finding moved them
    extra: dict[str, float] = field(default_factory=dict)
    # (size, size) bool: the pleural air a pneumothorax opened (set by its drawer, None without one);
    # findings drawn after it are placed in the collapsed lung, not in the air
    pleural_air: np.ndarray | None = None
    _cache: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def to_image(self, pts: np.ndarray) -> np.ndarray:
        """Canonical points (..., 2) -> image points (..., 2)."""
        p = (np.asarray(pts, dtype=np.float64) - CENTER) * (self.sx, self.sy)
        c, s = self._cos_sin()
        rot = np.stack([c * p[..., 0] - s * p[..., 1], s * p[..., 0] + c * p[..., 1]], axis=-1)
        return rot + CENTER + self.shift

    def _cos_sin(self) -> tuple[float, float]:
        return float(np.cos(self.tilt)), float(np.sin(self.tilt))

    def _point(self, x: float, y: float) -> tuple[float, float]:
        """`to_image` of one point in plain float arithmetic: the same IEEE operations in the same
        order, so bit-identical, without ~10 numpy calls on 2-element arrays (this is hot)."""
        c, s = self._cos_sin()
        px, py = (x - CENTER[0]) * self.sx, (y - CENTER[1]) * self.sy
        return (c * px - s * py) + CENTER[0] + self.shift[0], (s * px + c * py) + CENTER[1] + self.shift[1]

    def _memo(self) -> dict:
        """Per-patient cache of derived landmarks, dropped if the geometry fields were changed."""
        key = (self.sx, self.sy, self.tilt, float(self.shift[0]), float(self.shift[1]))
        if self._cache.get("key") != key:
            self._cache.clear()
            self._cache["key"] = key
        return self._cache

    def lung_bounds(self, side: int, y_canon: float) -> tuple[float, float]:
        """Image x of the (medial, lateral) edge of a lung at a canonical height."""
        memo = self._memo()
        k = ("bounds", side, y_canon)
        if k not in memo:
            med, lat = lung_span(np.array([y_canon]), side)
            memo[k] = (float(self._point(float(med[0]), y_canon)[0]), float(self._point(float(lat[0]), y_canon)[0]))
        return memo[k]

    def canon_y(self, y_image: float) -> float:
        """Approximate canonical height of an image height (ignores the small tilt)."""
        return float((y_image - CENTER[1] - self.shift[1]) / self.sy + CENTER[1])

    def lung_bounds_at(self, side: int, y_image: float) -> tuple[float, float]:
        """Image x of the (medial, lateral) edge of a lung at an image height."""
        return self.lung_bounds(side, self.canon_y(y_image))

    @property
    def carina(self) -> np.ndarray:
        return np.array(self._point(*CARINA))

    def hilum(self, side: int) -> np.ndarray:
        return np.array(self._point(*HILA[side]))

    @property
    def lung_top(self) -> float:
        memo = self._memo()
        if "lung_top" not in memo:
            memo["lung_top"] = float(self._point(0.5, LUNG_TOP)[1])
        return memo["lung_top"]

    @property
    def spine_x(self) -> float:
        memo = self._memo()
        if "spine_x" not in memo:
            memo["spine_x"] = float(self._point(0.5, 0.5)[0])
        return memo["spine_x"]


def sample_patient(rng: np.random.Generator, size: int, emphysema: bool = False) -> Patient:
    """Draw habitus, inspiration and exposure-independent anatomy for one patient."""
    dome_r = rng.uniform(0.65, 0.72)
    dome_l = dome_r + rng.uniform(0.015, 0.045)  # right hemidiaphragm higher (liver)
    depth = rng.uniform(0.09, 0.13)
    if emphysema:  # hyperinflation: low, flat domes
        dome_r, dome_l, depth = rng.uniform(0.78, 0.82), 0.0, rng.uniform(0.03, 0.045)
        dome_l = dome_r + rng.uniform(0.0, 0.015)
    # patient size / collimation: real films are framed tight (body fills the width) and vary a lot
    # in scale and centring; renders framed alike look alike (thumbnail correlation between films
    # 0.71 vs 0.55 on the real samples), which a discriminator picks up (benchmarks/realism.py)
    zoom = rng.uniform(0.88, 1.18)
    p = Patient(
        size=size,
        sx=zoom * rng.uniform(0.92, 1.06) * (1.03 if emphysema else 1.0),
        sy=zoom * rng.uniform(0.95, 1.05),
        tilt=float(rng.normal(0.0, 0.04)),  # real films are rarely straight (left-right symmetry ~0.8)
        shift=np.array([rng.normal(0.0, 0.045), rng.uniform(-0.1, 0.1)]),  # framing: off-centre, high or low
        dome={1: dome_r, 2: dome_l},
        dome_depth=depth,
        heart_scale=rng.uniform(0.96, 1.12),
        mediastinum_scale=rng.uniform(0.9, 1.1),
        soft_weight=rng.uniform(0.85, 1.15),
        bone_weight=rng.uniform(0.8, 1.2),
        arm_weight=float(rng.uniform(0.5, 1.1) if rng.random() < 0.55 else 0.0),
        air_weight=rng.uniform(1.12, 1.38) * (1.12 if emphysema else 1.0),
        vessel_weight=rng.uniform(0.8, 1.2) * (0.55 if emphysema else 1.0),
        variant=int(rng.integers(0, N_VARIANTS)),
        breasts=bool(rng.random() < 0.3),
        # real films are darker over the spine/mediastinum than a uniform slab would make them
        mediastinum_density=float(rng.uniform(0.78, 1.0)),
    )
    if rng.random() < 0.2:  # AP framing: arms down by the sides, chest a little larger and lower
        p.ap = True
        p.arm_weight = float(rng.uniform(0.8, 1.1))
        grow = rng.uniform(1.0, 1.04)
        p.sx, p.sy = p.sx * grow, p.sy * grow
        p.shift = p.shift + np.array([0.0, rng.uniform(0.0, 0.015)])
    return p


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
    # Clipped coordinates are >= 0, so truncation is the floor; row * size + col of two whole
    # numbers below 2**12 is exact in float32, so one cast to intp at the end gives the index.
    flat = np.empty((size, size), np.float32)
    col = np.empty((size, size), np.float32)
    for out, a0, a1, c0 in ((flat, ay[0], ay[1], CENTER[1]), (col, ax[0], ax[1], CENTER[0])):
        np.add((a0 * dx)[None, :], (a1 * dy)[:, None], out=out)
        out += np.float32(c0 * size)
        np.clip(out, 0, size - 1, out=out)
        np.trunc(out, out=out)
    flat *= np.float32(size)
    flat += col
    return flat.astype(np.intp)


def canonical_coords(p: Patient, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(H, W) canonical x and y of every image pixel (the inverse of `Patient.to_image`, unclipped)."""
    xs, ys = axes(size)
    c, s = np.cos(p.tilt), np.sin(p.tilt)
    ox, oy = CENTER + p.shift
    dx, dy = xs[None, :] - ox, ys[:, None] - oy
    return (c * dx + s * dy) / p.sx + CENTER[0], (-s * dx + c * dy) / p.sy + CENTER[1]


def beyond_sides(cx: np.ndarray) -> np.ndarray | None:
    """(H, W) float32 weight from the pixels' canonical x (`canonical_coords`): 1 inside the
    template's width, falling to 0 left of x = 0 or right of x = 1 (a zoomed-out or off-centre
    patient): there is air beside the body, not a copy of the template's edge column (which
    `warp_index` clips to). None when no pixel lies beyond."""
    margin = np.minimum(cx, 1.0 - cx)
    if margin.min() >= 0.0:
        return None
    return smoothstep(margin / 0.01 + 1.0).astype(np.float32)


def arms(cx: np.ndarray, cy: np.ndarray) -> np.ndarray:
    """(H, W) float32 line integral of the upper arms beside the chest, with a strip of air (the
    axilla) between, humeral shafts inside and a rounded top at the shoulder, from the pixels'
    canonical coordinates. They lie just outside the template's width (|x - 0.5| about 0.54), so
    they are drawn in image space and show where the patient is small in the film or off-centre
    (AP films, arms by the sides)."""
    d = np.abs(cx - 0.5)
    out = 0.04 * np.clip(cy - 0.1, 0, 1)  # arms hang slightly away from the body
    across = (d - 0.54 - out) / (0.05 + 0.015 * np.clip(cy, 0, 1))  # -1..1 over the arm's width
    arm = np.sqrt(np.clip(1.0 - across**2, 0.0, 1.0)) * smoothstep((cy - 0.03 - 0.08 * across**2) / 0.08)
    shaft = np.sqrt(np.clip(1.0 - ((d - 0.535 - out) / 0.025) ** 2, 0.0, 1.0)) * smoothstep((cy - 0.14) / 0.05)
    return (1.5 * arm + 0.25 * shaft).astype(np.float32)


@dataclass
class Layers:
    """Per-patient attenuation pieces in image space (all float32 (H, W) unless noted)."""

    body: np.ndarray  # soft tissue + bone (+ heart, mediastinum, lesions, devices as they are added)
    lung: np.ndarray  # lung contribution: markings minus air (<= 0 mostly); findings edit it
    label: np.ndarray  # uint8 lung label after the diaphragm cut
    above: np.ndarray  # 1 above the diaphragm, 0 below (soft edge)
    idx: np.ndarray  # (H, W) flat template index of every pixel (for local re-sampling)
    under_lung: np.ndarray  # (1, W) 1 in the columns the lungs span (where the domes are), 0 outside
    dome_row: int = 0  # rows above this one are wholly above the diaphragm (`above` == 1 there)
    heart: np.ndarray | None = None  # bool mask of the cardiac silhouette
    mediastinum: np.ndarray | None = None  # bool mask of the superior mediastinum + aortic knob


def dome_curve(p: Patient, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(y of the diaphragm, weight of the organs under it) for every image column, both (W,).

    Two domes with deep lateral recesses (sharp costophrenic angles); the weight is 1 under the
    lungs and fades out beyond the lateral walls, where the chest wall continues into the flank.
    Both sides are evaluated in one pass with per-column float32 parameters (each column belongs
    to one side), which is the same float32 arithmetic as one pass per side with scalars.
    """
    xs, _ = axes(size)
    right = xs < p.spine_x  # (W,) image left of the spine: side 1
    param = np.empty((4, size), np.float32)  # medial edge, lung width, dome apex y, per column
    for side, cols in ((1, right), (2, ~right)):
        med, lat = p.lung_bounds_at(side, p.dome[side])
        param[0, cols], param[1, cols], param[2, cols] = med, lat - med, p.dome[side]
    u = (xs - param[0]) / param[1]  # 0 medial, 1 lateral edge of the lung
    apex_u = 0.45
    lateral = np.clip(u - apex_u, 0, None) / (1 - apex_u)
    medial = np.clip(apex_u - u, 0, None) / apex_u
    curve = param[2] + p.dome_depth * lateral**1.7 + 0.2 * p.dome_depth * medial**1.6
    curve = curve + 2.0 * np.clip(u - 1.0, 0, None)  # beyond the wall: straight down the flank
    y = np.where((u > -0.3) & (u < 1.4), curve, np.float32(1.2)).astype(np.float32)
    w = smoothstep((1.15 - u) / 0.2).astype(np.float32)
    return y, w


def base_layers(t: Template, p: Patient) -> Layers:
    """Resample the template for this patient and cut the lungs at the diaphragm."""
    size = t.size
    idx = warp_index(p, size)
    static = p.soft_weight * t.soft + p.bone_weight * t.bone
    lung = p.vessel_weight * t.vessels - p.air_weight * t.air
    body = np.take(static, idx)
    cx, cy = canonical_coords(p, size)  # once: both steps below read them
    sides = beyond_sides(cx)
    if sides is not None:
        body *= sides
    if p.arm_weight:
        body += np.float32(p.arm_weight) * arms(cx, cy)
    lung = np.take(lung, idx)
    label = np.take(t.label, idx)
    _, ys = axes(size)
    dome, under = dome_curve(p, size)
    # Rows above the highest dome are exactly 1 (smoothstep saturates): only evaluate below them.
    # (min(dome) - y) * k is the row minimum of the same float32 expression, so this cut is exact.
    r0 = int(np.count_nonzero((dome.min() - ys) * np.float32(size / 2.0) >= 1.0))
    above = np.ones((size, size), np.float32)
    above[r0:] = smoothstep((dome[None, :] - ys[r0:, None]) * (size / 2.0))
    # trachea air (above the lungs) is not cut; only lung air is removed below the domes
    r_cut = max(r0, int(np.count_nonzero(ys < p.lung_top + 0.05)))
    lung[r_cut:] *= above[r_cut:]
    label[r0:][above[r0:] <= 0.5] = 0
    return Layers(body=body, lung=lung, label=label, above=above, idx=idx, under_lung=under[None, :], dome_row=r0)


def silhouette_borders(p: Patient, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, float]:
    """(right, left, heart top, heart floor): per-row border offsets (H,) from the spine.

    Right = toward image left (patient right), left = toward image right. Above the heart: the
    superior mediastinum (SVC on the right, aortic knob on the left). Below the carina the heart
    widens: its right border is the right-atrial bulge, its left border (left ventricle) slopes
    down to the apex, so about 2/3 of it lies left of the midline.
    """
    hs, ms, sx = p.heart_scale, p.mediastinum_scale, p.sx
    floor = max(p.dome[1], p.dome[2]) + 0.6 * p.dome_depth  # the domes cut the heart's base
    height = (floor - p.carina[1] - 0.03) * (1.0 + 0.25 * (hs - 1.0))  # big hearts reach higher
    top = floor - height
    t = np.clip((ys - top) / height, 0.0, 1.2)
    in_heart = (ys >= top).astype(np.float32)
    bulge = np.sin(0.5 * np.pi * np.clip(t / 0.45, 0, 1)) ** 0.7
    ra = (0.15 if p.globular else 0.105) * hs * sx * bulge * (1 - 0.12 * np.clip((t - 0.5) / 0.5, 0, 1) ** 2)
    right = np.maximum(0.05 * ms * sx, ra * in_heart)
    grow = np.clip((t - 0.08) / 0.75, 0, 1)
    lv = 0.07 * ms * sx + (0.225 * hs - 0.07 * ms) * sx * (1.0 - (1.0 - grow) ** 1.6)
    lv *= np.sqrt(np.clip(1.0 - ((t - 0.83) / 0.45).clip(0, None) ** 2, 0, 1))  # apex rounds off
    knob = 0.035 * ms * sx * np.exp(-(((ys - (p.carina[1] - 0.04)) / 0.028) ** 2))
    left = np.maximum(0.058 * ms * sx + knob, lv * in_heart)
    return right, left, float(top), float(floor)


def add_heart_and_mediastinum(layers: Layers, p: Patient) -> None:
    """One cardiomediastinal silhouette from the neck down onto the diaphragm, plus the organs below.

    Each row is an ellipse-profile slab between its borders. The heart is cut by the domes, so it
    sits on (and blends into) the subdiaphragmatic soft tissue; it also displaces lung air.
    """
    size = layers.body.shape[0]
    xs, ys = axes(size)
    spine = p.spine_x + p.mediastinum_dx
    right, left, top, floor = silhouette_borders(p, ys)
    r0 = int(max(0, np.floor(size * (p.lung_top - 0.08))))
    r1 = int(min(size, np.ceil(size * (floor + 0.08))))
    c0 = int(max(0, np.floor(size * (spine - right.max() - 0.02))))
    c1 = int(min(size, np.ceil(size * (spine + left.max() + 0.02))))
    bb = (slice(r0, r1), slice(c0, c1))
    y = ys[bb[0]][:, None]
    rr, ll = right[bb[0]][:, None], left[bb[0]][:, None]
    dx = xs[bb[1]][None, :] - spine
    centre, half = 0.5 * (ll - rr), 0.5 * (ll + rr)
    # (rows, cols) float64 work below is done in place on two buffers; the operations and their
    # order are those of the plain expressions in the comments, so the result is bit-identical.
    r = (dx - centre) / half  # half > 0, so |dx - centre| / half == |r| exactly
    q = np.square(r)
    np.subtract(1.0, q, out=q)
    np.clip(q, 0.0, 1.0, out=q)  # q = clip(1 - r**2, 0, 1): 1 on the axis, 0 at the borders
    edge = np.abs(r, out=r)
    np.subtract(1.0, edge, out=edge)
    edge *= half
    edge *= size
    edge /= 1.5
    prof = np.sqrt(q) * smoothstep(edge)  # q**0.5 * smoothstep((1 - |dx - centre| / half) * half * size / 1.5)
    heart_w = smoothstep((y - top + 0.04) / 0.16)  # mediastinum -> heart, no step between them
    neck = smoothstep((y - p.lung_top + 0.1) / 0.12)  # merges into the neck soft tissue
    add = ((0.25 + 0.12 * heart_w) * (neck * p.mediastinum_density)) * prof
    add *= layers.above[bb]
    layers.body[bb] += add.astype(np.float32)
    shade = np.multiply(prof, 0.75, out=add)
    shade *= heart_w
    np.subtract(1.0, shade, out=shade)
    layers.lung[bb] *= shade  # the heart displaces the lung in front of it
    inside = (q > 0) & (layers.above[bb] > 0.5)
    layers.heart = np.zeros(layers.body.shape, bool)
    layers.heart[bb] = inside & (y > top + 0.02)
    layers.mediastinum = np.zeros(layers.body.shape, bool)
    layers.mediastinum[bb] = inside & (y <= top + 0.02) & (y > p.lung_top - 0.02)
    # subdiaphragmatic organs (liver, spleen, stomach wall) fill in under the domes
    r = layers.dome_row  # above it, 1 - above == 0: nothing to add
    layers.body[r:] += np.float32(0.3) * (1.0 - layers.above[r:]) * layers.under_lung


def add_abdomen_texture(layers: Layers, t: Template, rng: np.random.Generator) -> None:
    """Bowel gas: faint irregular lucencies low in the abdomen, from an offset window of the cloud field."""
    size = layers.body.shape[0]
    r0 = int(size * 0.72)
    oy, ox = (int(v) for v in rng.integers(0, size, size=2))
    cloud = t.cloud[oy : oy + size - r0, ox : ox + size]
    gas = np.clip(cloud - 0.55, 0.0, None) * np.float32(rng.uniform(0.5, 1.2))
    layers.body[r0:] -= gas * (1.0 - layers.above[r0:]) * layers.under_lung


def add_soft_extras(layers: Layers, p: Patient, rng: np.random.Generator) -> None:
    """Gastric bubble under the left dome; breast shadows over the lower zones in some patients."""
    _, ys = axes(layers.body.shape[0])
    med, lat = p.lung_bounds_at(2, p.dome[2])
    gx = med + 0.45 * (lat - med) + rng.uniform(-0.03, 0.03)
    gy = p.dome[2] + rng.uniform(0.035, 0.06)
    rx, ry = rng.uniform(0.035, 0.06), rng.uniform(0.022, 0.032)
    bb, r2 = ellipse_field(gx, gy, rx, ry, layers.body.shape[0])
    level = ys[bb[0]][:, None] < gy + rng.uniform(0.0, 0.5) * ry  # air-fluid level: flat floor
    layers.body[bb] -= np.where(level, 0.45 * np.sqrt(np.clip(1.0 - r2, 0.0, 1.0)), 0.0).astype(np.float32)
    if p.breasts:
        amp = rng.uniform(0.3, 0.5)
        for side in (1, 2):
            m, la = p.lung_bounds_at(side, p.dome[side])
            bx = m + 0.6 * (la - m)
            cy, ry = p.dome[side] + 0.05, 0.13
            bb, r2 = ellipse_field(bx, cy, 0.18, ry, layers.body.shape[0])
            # density builds toward the sharp inferior skin fold and fades out upward
            fade = smoothstep((ys[bb[0]][:, None] - cy + 0.9 * ry) / (1.4 * ry))
            layers.body[bb] += (amp * np.sqrt(np.clip(1.0 - r2, 0.0, 1.0)) * fade).astype(np.float32)
