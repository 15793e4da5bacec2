"""Canonical anatomy templates, built lazily per (image size, variant) and cached for the process.

The template holds the anatomy that does not depend on findings, drawn in a *canonical* frame
(normalised coordinates, midline x = 0.5) as attenuation layers. Each patient is a cheap affine
resampling of these layers (see anatomy.py); the parts that findings change (heart,
mediastinum, diaphragm) are drawn per patient instead.

There are N_VARIANTS templates per size ("people"): each has its own vessel tree, rib spacing
and curvature, clavicle height and angle, scapula position and soft-tissue build, drawn from
the variant index alone (so variant k is the same person at every size, and building variants
in any order gives the same arrays). Lung outline, air, noise and cloud fields are shared.

Orientation: a PA film is viewed as if facing the patient, so the PATIENT'S RIGHT IS IMAGE
LEFT (x < 0.5) and the patient's left (heart apex, aortic knob, gastric bubble) is image right.
Lung label 1 = right lung (image left), 2 = left lung (image right).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import ndimage

from syncxr.errors import UserError
from syncxr.image.phantom.draw import axes, bezier, erode4, polyline_box, polyline_mask, smoothstep

log = logging.getLogger(__name__)

N_VARIANTS = 12  # anatomy variants per size; a patient picks one by seed
# Canonical landmarks (normalised coordinates).
CARINA = (0.5, 0.34)
HILA = {1: (0.41, 0.42), 2: (0.6, 0.395)}  # left hilum sits higher than the right
LUNG_TOP = 0.115  # apices, just above the medial clavicles
LUNG_BOTTOM = 0.98  # lungs are drawn down to here; the per-patient diaphragm cuts them
APEX_X = 0.18  # |x - 0.5| of each apex: the dome is centred over the mid-lung, not the wall
LATERAL_X = 0.405  # |x - 0.5| of the lateral lung wall at its widest
DOME_REACH = 0.34  # canonical height over which the lateral wall curves out from the apex
APEX_R = 0.095  # radius of the rounded apex
POST_RIB_Y0, POST_RIB_DY = 0.125, 0.052  # spine level of posterior rib 1 and the rib spacing
RIB_REACH = 0.43  # |x - 0.5| of the lateral end of the ribs


@dataclass(frozen=True)
class Variant:
    """The skeleton and build of one template variant (offsets/scales around the canonical values)."""

    index: int
    rib_y0: float = POST_RIB_Y0  # spine level of posterior rib 1
    rib_dy: float = POST_RIB_DY  # rib spacing
    rib_bulge: float = 1.0  # scale of the lateral downward curve of the ribs
    rib_rise: float = 0.06  # how far a rib rises from its head before curving down
    rib_amp: tuple[float, ...] = (1.0,) * 11  # per-rib density
    clavicle_dy: float = 0.0  # clavicles lower (+) or higher (-)
    clavicle_lift: float = 0.0  # lateral ends raised (-) or dropped (+): the clavicle angle
    scapula_dx: float = 0.0  # scapular medial borders further out (+) or over the lungs (-)
    scapula_amp: float = 1.0
    shoulder: float = 1.0  # shoulder/chest-wall width scale
    wall: float = 0.2  # torso profile exponent: larger = thicker soft tissue at the chest wall
    spine: float = 1.0  # vertebral body width scale
    vessel_seed: int = 7
    flare: float = 0.04  # lower chest wider than the upper (share of the half-width at the 10th rib)
    waist: float = 0.05  # narrowing below the costal margin toward the waist


CANONICAL = Variant(index=-1)  # the mean skeleton (for callers without a template)


def variant(k: int) -> Variant:
    """Variant k's anatomy, drawn from k alone (independent of size and of other variants)."""
    rng = np.random.default_rng([20240917, k])
    return Variant(
        index=k,
        rib_y0=POST_RIB_Y0 + rng.uniform(-0.008, 0.008),
        rib_dy=POST_RIB_DY * rng.uniform(0.94, 1.06),
        rib_bulge=rng.uniform(0.85, 1.15),
        rib_rise=0.06 * rng.uniform(0.6, 1.4),
        rib_amp=tuple(float(a) for a in rng.uniform(0.8, 1.15, 11)),
        clavicle_dy=rng.uniform(-0.02, 0.02),
        clavicle_lift=rng.uniform(-0.025, 0.02),
        scapula_dx=rng.uniform(-0.035, 0.03),
        scapula_amp=rng.uniform(0.6, 1.4),
        shoulder=rng.uniform(0.92, 1.08),
        wall=rng.uniform(0.16, 0.28),
        spine=rng.uniform(0.9, 1.1),
        vessel_seed=7 + 101 * k,
        flare=rng.uniform(0.0, 0.08),  # drawn last: the fields above keep their values
        waist=rng.uniform(0.0, 0.1),
    )


@dataclass(frozen=True)
class Template:
    size: int
    soft: np.ndarray  # (H, W) soft-tissue line integral (body, neck, shoulders)
    bone: np.ndarray  # (H, W) spine, ribs, clavicles, scapulae, humeral heads
    air: np.ndarray  # (H, W) lung + trachea air thickness (subtracted)
    vessels: np.ndarray  # (H, W) lung markings + hila + fine mottle
    label: np.ndarray  # (H, W) uint8 lung label: 0 none, 1 right (image left), 2 left
    noise: np.ndarray  # (2H, 2W) standard-normal field; patients take offset windows
    cloud: np.ndarray  # (2H, 2W) smooth fractal field in [0, 1] for fluffy opacities
    variant: Variant

    def posterior_rib(self, i: int, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """`posterior_rib` of this template's skeleton."""
        return posterior_rib(i, s, self.variant)


def lung_span(y: np.ndarray, side: int) -> tuple[np.ndarray, np.ndarray]:
    """Canonical (medial, lateral) x of a lung at heights y; medial == lateral above the apex.

    A round apex (radius APEX_R) opens into a lateral wall that reaches the widest chest at about
    mid-height; the medial border drops from the apex onto the mediastinum.
    """
    sign = -1.0 if side == 1 else 1.0  # image direction of "lateral"
    d = np.clip(y - LUNG_TOP, 0.0, None)
    cap = np.sqrt(np.clip(APEX_R**2 - (APEX_R - np.minimum(d, APEX_R)) ** 2, 0.0, None))  # round apex
    wall = (LATERAL_X - APEX_X) * np.sin(0.5 * np.pi * np.clip(d / DOME_REACH, 0, 1)) ** 0.75
    lat_off = APEX_X + np.maximum(cap, wall) + 0.012 * smoothstep((y - 0.5) / 0.3)  # slight basal flare
    floor = 0.045 if side == 1 else 0.05
    drop = (APEX_X - floor) * np.sin(0.5 * np.pi * np.clip(d / 0.2, 0, 1))
    med_off = APEX_X - np.maximum(cap, drop)
    above = y < LUNG_TOP
    lateral = np.where(above, 0.5 + sign * APEX_X, 0.5 + sign * lat_off)
    medial = np.where(above, lateral, 0.5 + sign * med_off)
    return medial, lateral


def _lungs(size: int) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = axes(size)
    air = np.zeros((size, size), np.float32)
    label = np.zeros((size, size), np.uint8)
    y = ys[:, None]
    for side in (1, 2):
        med, lat = lung_span(ys, side)
        width = np.abs(lat - med)[:, None]
        # u: 0 at the lateral wall, 1 at the medial border
        den = np.where(np.abs(med - lat) > 1e-6, med - lat, 1e-6)[:, None]
        u = (xs[None, :] - lat[:, None]) / den
        inside = (u > 0) & (u < 1) & (width > 1.0 / size) & (y < LUNG_BOTTOM)
        # air thickness: rises over a short lateral rim, flat inside, soft at the mediastinum
        prof = smoothstep(u / 0.12) ** 0.5 * smoothstep((1.0 - u) / 0.07)
        prof *= 0.82 + 0.18 * smoothstep((y - 0.25) / 0.35)  # apices are thinner than bases
        prof *= smoothstep((y - LUNG_TOP) / 0.05)
        air += np.where(inside, prof, 0.0).astype(np.float32)
        label[inside] = side
    # trachea and main bronchi: an air column over the upper spine
    tr = bezier(np.array([[0.5, -0.02], [0.5, 0.2], [0.5, CARINA[1]]]), 40)
    trachea = polyline_mask(tr, 0.03, size).astype(np.float32) * 0.6
    for side, (hx, hy) in HILA.items():
        br = np.array([[0.5, CARINA[1]], [(0.5 + hx) / 2, CARINA[1] + 0.025], [hx, hy - 0.02]])
        trachea = np.maximum(trachea, polyline_mask(bezier(br, 20), 0.018, size) * 0.2)
    air += ndimage.gaussian_filter(trachea, 0.8 * size / 256)
    return ndimage.gaussian_filter(air, 0.7 * size / 256), label


def _body(size: int, v: Variant) -> np.ndarray:
    """Soft tissue: neck, sloping shoulders, a barrel chest thinning toward the walls."""
    xs, ys = axes(size)
    dx = np.abs(xs[None, :] - 0.5)
    y = ys[:, None]
    neck = 0.1 + 0.03 * np.clip(y, 0, 1)
    shoulder = 0.13 + 0.33 * v.shoulder * np.sqrt(smoothstep((y + 0.01) / 0.2))
    # the chest wall is not straight: it widens toward the lower ribs and narrows below the costal
    # margin toward the waist
    contour = 1.0 + v.flare * smoothstep((y - 0.25) / 0.4) - v.waist * smoothstep((y - 0.72) / 0.3)
    half = np.maximum(shoulder * contour, neck)
    # a chest is wider than deep: the path length stays long until close to the skin; the neck is
    # nearly round in section, so its edges fall off sooner (larger exponent)
    wall = v.wall + (0.5 - v.wall) * (1.0 - smoothstep((y - 0.04) / 0.1))
    torso = np.clip(1.0 - (dx / half) ** 2, 0.0, 1.0) ** wall
    soft = 2.2 * torso
    deltoid = np.clip(1.0 - ((dx - 0.44 * v.shoulder) / 0.1) ** 2 - ((y - 0.12) / 0.1) ** 2, 0.0, 1.0) ** 0.6
    soft += 0.9 * deltoid
    soft += 0.3 * smoothstep((y - 0.7) / 0.25) * torso  # abdomen a little thicker than the chest
    return ndimage.gaussian_filter(soft.astype(np.float32), 1.5 * size / 256)


def _band(size: int, ys_c: np.ndarray, slope: np.ndarray, half_th: float | np.ndarray, amp: float,
          reach: np.ndarray) -> np.ndarray:
    """A bone band around the curve y = ys_c(x): cancellous core plus brighter cortical edges."""
    _, ys = axes(size)
    d = np.abs(ys[:, None] - ys_c[None, :]) / (half_th * np.sqrt(1.0 + slope**2))[None, :]
    core = smoothstep((1.0 - d) / 0.3)
    cortex = 0.55 + 0.45 * np.exp(-(((d - 0.82) / 0.16) ** 2))
    return (amp * core * cortex * reach[None, :]).astype(np.float32)


def posterior_rib(i: int, s: np.ndarray, v: Variant = CANONICAL) -> tuple[np.ndarray, np.ndarray]:
    """Canonical centre line y and slope dy/dx of posterior rib i at lateral fractions s (0 spine, 1 wall).

    The rib rises a little from its head at the spine, runs nearly level, then curves steeply
    down toward the lateral chest wall. `v` sets the spacing and curvature (one skeleton).
    """
    y0 = v.rib_y0 + i * v.rib_dy * (1 + 0.015 * i)
    bulge = (0.17 + 0.01 * i) * v.rib_bulge
    s = np.asarray(s, dtype=np.float64)
    return y0 - v.rib_rise * s + bulge * s**2.2, (-v.rib_rise + 2.2 * bulge * s**1.2) / RIB_REACH


def _ribs(size: int, v: Variant) -> np.ndarray:
    xs, _ = axes(size)
    bone = np.zeros((size, size), np.float32)
    s = np.abs(xs - 0.5) / RIB_REACH  # 0 at the spine, 1 at the lateral chest wall
    reach = smoothstep((1.05 - s) / 0.08) * smoothstep((s - 0.05) / 0.05)
    for i in range(11):
        y0 = v.rib_y0 + i * v.rib_dy * (1 + 0.015 * i)
        yc, slope = posterior_rib(i, s, v)
        amp = 0.25 * v.rib_amp[i] * (1.0 - 0.25 * smoothstep((s - 0.7) / 0.3))
        # posterior ribs are slender by the spine and broaden laterally
        half_th = (0.0085 + 0.0005 * i) * (0.8 + 0.45 * smoothstep(s / 0.8))
        bone += _band(size, yc, slope, half_th, amp, reach)
        if i < 7:  # anterior ribs: from the wall down toward the midline, fading before the sternum
            ya = y0 + 0.035 + 0.13 * np.clip(1.0 - s, 0, None) ** 1.2
            slope_a = -0.156 * np.clip(1.0 - s, 0, None) ** 0.2 / 0.43
            ant_reach = smoothstep((1.02 - s) / 0.06) * smoothstep((s - 0.3) / 0.15)
            bone += _band(size, ya, slope_a, 0.013, 0.12, ant_reach)
    return bone


def _bones(size: int, v: Variant, label: np.ndarray) -> np.ndarray:
    xs, ys = axes(size)
    # ribs are seen mostly against lung air; over the heart and abdomen they are washed out
    heart = ((xs[None, :] - 0.55) / 0.15) ** 2 + ((ys[:, None] - 0.56) / 0.12) ** 2 < 1.0
    in_chest = (label > 0) & (ys < 0.66)[:, None] & ~heart
    in_chest = ndimage.gaussian_filter(in_chest.astype(np.float32), 6.0 * size / 256)
    bone = _ribs(size, v) * (0.45 + 0.55 * in_chest)
    x = xs[None, :]
    y = ys[:, None]
    # spine: vertebral bodies with endplates and pedicles; widens slightly downward
    level = (y - v.rib_y0 + 0.03) / v.rib_dy
    frac = level - np.floor(level)
    endplate = 0.8 + 0.2 * smoothstep(np.minimum(frac, 1 - frac) / 0.12)
    half = (0.03 + 0.012 * np.clip(y, 0, 1)) * v.spine
    body = np.sqrt(np.clip(1.0 - (np.abs(x - 0.5) / half) ** 2, 0, 1))
    bone += (0.15 - 0.04 * smoothstep((y - 0.6) / 0.3)) * body * endplate
    for sgn in (-1, 1):
        ped = np.exp(-(((x - 0.5 - sgn * 0.8 * half) / 0.008) ** 2) - ((frac - 0.35) / 0.1) ** 2)
        bone += 0.14 * ped
    bone += _shoulder_girdle(size, v)
    return ndimage.gaussian_filter(bone, 0.6 * size / 256)


def _shoulder_girdle(size: int, v: Variant) -> np.ndarray:
    """S-shaped clavicles, scapular borders over the upper lateral lungs, humeral heads."""
    xs, ys = axes(size)
    x, y = xs[None, :], ys[:, None]
    out = np.zeros((size, size), np.float32)
    for sgn in (-1, 1):
        cy, lift = v.clavicle_dy, v.clavicle_lift
        ctrl = np.array([[0.5 + sgn * 0.05, 0.19 + cy], [0.5 + sgn * 0.16, 0.175 + cy],
                         [0.5 + sgn * 0.27, 0.1 + cy + 0.6 * lift], [0.5 + sgn * 0.42, 0.095 + cy + lift]])
        bb, core = polyline_box(bezier(ctrl, 80), 0.028, size)
        pad = np.zeros((size, size), np.float32)
        pad[bb] = 0.4 * core + 0.15 * (core & ~erode4(erode4(core)))  # brighter cortex
        out += ndimage.gaussian_filter(pad, 0.7 * size / 256)
        # scapula: a faint plate lateral to its medial border, which curves down over the lung
        border = 0.5 + sgn * (0.31 + v.scapula_dx + 0.06 * np.clip((y - 0.12) / 0.3, 0, 1))
        plate = (sgn * (x - border) > 0) & (y > 0.09) & (y < 0.43 - 0.5 * np.clip(sgn * (x - 0.5) - 0.37, 0, 1))
        out += 0.1 * v.scapula_amp * ndimage.gaussian_filter(plate.astype(np.float32), 1.2 * size / 256)
        hum = np.clip(1.0 - ((x - 0.5 - sgn * 0.5) / 0.055) ** 2 - ((y - 0.12) / 0.06) ** 2, 0, 1) ** 0.6
        out += 0.22 * hum
    return out


def _vessel_tree(size: int, label: np.ndarray, seed: int) -> np.ndarray:
    """Branching pulmonary vessels from each hilum, dense centrally, tapering out, plus mottle."""
    rng = np.random.default_rng(seed)
    acc = np.zeros((size, size), np.float32)

    def grow(p: np.ndarray, ang: float, length: float, width: float, depth: int) -> None:
        end_ang = ang + rng.normal(0, 0.22)
        mid = p + 0.5 * length * np.array([np.cos(ang), np.sin(ang)])
        q = mid + 0.5 * length * np.array([np.cos(end_ang), np.sin(end_ang)])
        bb, m = polyline_box(bezier(np.array([p, mid, q]), 10), max(width, 1.2 / size), size)
        np.maximum(acc[bb], m * np.float32(min(width / 0.01, 1.0)), out=acc[bb])
        if depth == 0:
            return
        for k in (-1, 1):
            grow(q, end_ang + k * rng.uniform(0.15, 0.5), length * rng.uniform(0.7, 0.85), width * 0.75, depth - 1)

    for side, hilum in HILA.items():
        for a in (-95, -120, -145, -170, 165, 140, 115, 95):
            ang = np.deg2rad(a if side == 1 else 180 - a) + rng.normal(0, 0.15)
            start = np.array(hilum) + rng.normal(0, 0.02, 2)
            upper = np.sin(ang) < 0  # upper-lobe vessels are thinner than the basal ones (gravity)
            grow(start, ang, rng.uniform(0.07, 0.1), 0.011 if upper else 0.015, 6)
    xs, ys = axes(size)
    # vessels seen end-on: small round dots, denser and larger near the hila
    n_dots = 900
    px, py = rng.uniform(0.05, 0.95, n_dots), rng.uniform(0.1, 0.9, n_dots)
    near = np.min([np.hypot(px - hx, py - hy) for hx, hy in HILA.values()], axis=0)
    keep = rng.random(n_dots) < np.exp(-near / 0.15)
    rows, cols = (py[keep] * size).astype(np.intp), (px[keep] * size).astype(np.intp)
    dots = np.zeros((size, size), np.float32)
    dots[rows, cols] = rng.uniform(0.5, 1.0, rows.size).astype(np.float32)
    acc = np.maximum(acc, ndimage.maximum_filter(dots, size=max(1, round(2 * size / 256))))
    acc = ndimage.gaussian_filter(acc, 1.2 * size / 256)
    for hx, hy in HILA.values():  # hilar pulmonary arteries and lymphatics
        acc += 0.7 * np.exp(-((xs[None, :] - hx) / 0.03) ** 2 - ((ys[:, None] - hy) / 0.055) ** 2)
    lung = ndimage.gaussian_filter((label > 0).astype(np.float32), 2.0 * size / 256)
    # fine background mottle: correlated noise at two scales (acini, secondary lobules)
    tex = sum(ndimage.gaussian_filter(rng.standard_normal((size, size)).astype(np.float32), s * size / 256) * w
              for s, w in ((0.8, 0.9), (2.0, 1.6), (5.0, 2.5)))
    haze = sum(np.exp(-(((xs[None, :] - hx) / 0.16) ** 2) - ((ys[:, None] - hy) / 0.22) ** 2) for hx, hy in HILA.values())
    return ((acc * 0.28 + haze * 0.2 + tex * 0.08) * lung).astype(np.float32)


def _fractal(size: int, rng: np.random.Generator) -> np.ndarray:
    out = np.zeros((size, size), np.float32)
    for k, sigma in enumerate((24, 10, 4)):
        out += ndimage.gaussian_filter(rng.standard_normal((size, size)).astype(np.float32), sigma * size / 512) * (0.6**k)
    out -= out.min()
    return (out / max(out.max(), 1e-6)).astype(np.float32)


def _frozen(*arrays: np.ndarray) -> None:
    for a in arrays:
        a.setflags(write=False)


@lru_cache(maxsize=4)
def _shared(size: int) -> dict[str, np.ndarray]:
    """The layers every variant shares at one size: lungs, noise and cloud fields (arms are drawn
    per patient in image space: anatomy.arms)."""
    air, label = _lungs(size)
    rng = np.random.default_rng(20240917 + size)
    out = dict(air=air, label=label,
               noise=rng.standard_normal((2 * size, 2 * size), dtype=np.float32), cloud=_fractal(2 * size, rng))
    _frozen(*out.values())
    return out


@lru_cache(maxsize=64)
def template(size: int, variant_index: int = 0) -> Template:
    """Anatomy variant `variant_index` at one size, built on first use (a process pays only for
    the variants it draws) and then cached. Depends only on (size, variant_index)."""
    if not 0 <= variant_index < N_VARIANTS:
        raise UserError(f"phantom template variant must be in 0..{N_VARIANTS - 1}, got {variant_index!r}")
    log.debug("building phantom template variant %d at %d px", variant_index, size)
    shared = _shared(size)
    v = variant(variant_index)
    own = dict(soft=_body(size, v), bone=_bones(size, v, shared["label"]),
               vessels=_vessel_tree(size, shared["label"], v.vessel_seed))
    _frozen(*own.values())
    return Template(size=size, variant=v, **shared, **own)
