"""Vectorised drawing primitives for the phantom renderer.

All geometry is in *normalised image coordinates*: x = column / size (0 = image left),
y = row / size (0 = top). Shapes are evaluated only inside their bounding box so that a small
lesion costs a few thousand pixel operations, not a whole image. Layers are float32 (H, W)
attenuation arrays; masks are bool (H, W).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np


@lru_cache(maxsize=8)
def axes(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Normalised pixel-centre coordinates (xs (W,), ys (H,)), float32, cached per size."""
    c = ((np.arange(size, dtype=np.float32) + 0.5) / size).astype(np.float32)
    c.setflags(write=False)
    return c, c


def box(x0: float, x1: float, y0: float, y1: float, size: int) -> tuple[slice, slice]:
    """Row and column slices covering [x0, x1] x [y0, y1], clipped to the image."""
    c0 = max(int(np.floor(min(x0, x1) * size)), 0)
    c1 = min(int(np.ceil(max(x0, x1) * size)) + 1, size)
    r0 = max(int(np.floor(min(y0, y1) * size)), 0)
    r1 = min(int(np.ceil(max(y0, y1) * size)) + 1, size)
    return slice(r0, max(r0, r1)), slice(c0, max(c0, c1))


def ellipse_field(
    cx: float, cy: float, rx: float, ry: float, size: int, angle: float = 0.0
) -> tuple[tuple[slice, slice], np.ndarray]:
    """(bbox, r2) where r2 is the squared normalised radius of a rotated ellipse in its bbox."""
    ext = max(rx, ry)
    bb = box(cx - ext, cx + ext, cy - ext, cy + ext, size)
    xs, ys = axes(size)
    dx = xs[bb[1]][None, :] - cx
    dy = ys[bb[0]][:, None] - cy
    if angle:
        ca, sa = np.float32(np.cos(angle)), np.float32(np.sin(angle))
        dx, dy = ca * dx + sa * dy, -sa * dx + ca * dy
    r2 = (dx / rx) ** 2 + (dy / ry) ** 2
    return bb, r2.astype(np.float32, copy=False)


def ellipse_mask(cx: float, cy: float, rx: float, ry: float, size: int, angle: float = 0.0) -> np.ndarray:
    """Bool (H, W) mask of a filled ellipse."""
    bb, r2 = ellipse_field(cx, cy, rx, ry, size, angle)
    mask = np.zeros((size, size), dtype=bool)
    mask[bb] = r2 < 1.0
    return mask


def add_ellipsoid(
    layer: np.ndarray,
    cx: float,
    cy: float,
    rx: float,
    ry: float,
    amp: float,
    angle: float = 0.0,
    power: float = 0.5,
) -> np.ndarray:
    """Add the projected thickness amp * (1 - r^2)^power of an ellipsoid; return its bool mask."""
    size = layer.shape[0]
    bb, r2 = ellipse_field(cx, cy, rx, ry, size, angle)
    inside = r2 < 1.0
    layer[bb] += amp * np.power(np.clip(1.0 - r2, 0.0, 1.0), power)
    mask = np.zeros(layer.shape, dtype=bool)
    mask[bb] = inside
    return mask


def add_irregular_ellipsoid(
    layer: np.ndarray, cx: float, cy: float, rx: float, ry: float, amp: float, rng: np.random.Generator,
    angle: float = 0.0, roughness: float = 0.12,
) -> np.ndarray:
    """`add_ellipsoid` with a natural, irregular margin: the boundary radius wobbles with a few
    random angular harmonics (lobulation, spiculation-like notches) instead of a perfect ellipse."""
    size = layer.shape[0]
    grow = 1.0 + 2.0 * roughness  # the bbox must hold the largest excursion
    bb, r2 = ellipse_field(cx, cy, rx * grow, ry * grow, size, angle)
    r2 = r2 * np.float32(grow * grow)
    xs, ys = axes(size)
    theta = np.arctan2(ys[bb[0]][:, None] - cy, xs[bb[1]][None, :] - cx)
    edge = np.ones_like(theta)
    for k in range(2, 7):
        edge += rng.normal(0.0, roughness / k * 2.0) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    edge = np.clip(edge, 0.6, grow).astype(np.float32)
    rel = r2 / (edge * edge)
    layer[bb] += amp * np.sqrt(np.clip(1.0 - rel, 0.0, 1.0)).astype(np.float32)
    mask = np.zeros(layer.shape, dtype=bool)
    mask[bb] = rel < 1.0
    return mask


def bezier(points: np.ndarray, n: int) -> np.ndarray:
    """n points (n, 2) on the Bezier curve with control points (k, 2) (de Casteljau)."""
    t = np.linspace(0.0, 1.0, n, dtype=np.float64)[:, None, None]
    pts = np.broadcast_to(np.asarray(points, dtype=np.float64), (n, *np.shape(points))).copy()
    while pts.shape[1] > 1:
        pts = (1 - t) * pts[:, :-1] + t * pts[:, 1:]
    return pts[:, 0]


def resample(poly: np.ndarray, step: float) -> np.ndarray:
    """Points along a polyline (k, 2) spaced at most `step` apart."""
    poly = np.asarray(poly, dtype=np.float64)
    seg = np.diff(poly, axis=0)
    length = np.hypot(seg[:, 0], seg[:, 1])
    cum = np.concatenate([[0.0], np.cumsum(length)])
    n = max(int(cum[-1] / step) + 2, 2)
    s = np.linspace(0.0, cum[-1], n)
    return np.stack([np.interp(s, cum, poly[:, 0]), np.interp(s, cum, poly[:, 1])], axis=1)


@lru_cache(maxsize=32)
def _disk(radius_px: float) -> tuple[np.ndarray, np.ndarray]:
    r = int(np.ceil(radius_px))
    dy, dx = np.mgrid[-r : r + 1, -r : r + 1]
    keep = dx**2 + dy**2 <= radius_px**2 + 0.25
    return dy[keep].astype(np.intp), dx[keep].astype(np.intp)


def polyline_box(poly: np.ndarray, width: float, size: int) -> tuple[tuple[slice, slice], np.ndarray]:
    """(bbox, bool mask inside it) of a polyline stamped with a disk of `width` (normalised)."""
    radius_px = max(width * size / 2.0, 0.5)
    pts = resample(poly, 0.5 / size) * size
    dy, dx = _disk(radius_px)
    rr = (np.floor(pts[:, 1]).astype(np.intp)[:, None] + dy[None, :]).ravel()
    cc = (np.floor(pts[:, 0]).astype(np.intp)[:, None] + dx[None, :]).ravel()
    ok = (rr >= 0) & (rr < size) & (cc >= 0) & (cc < size)
    rr, cc = rr[ok], cc[ok]
    if rr.size == 0:
        return (slice(0, 0), slice(0, 0)), np.zeros((0, 0), bool)
    r0, c0 = int(rr.min()), int(cc.min())
    sub = np.zeros((int(rr.max()) - r0 + 1, int(cc.max()) - c0 + 1), dtype=bool)
    sub[rr - r0, cc - c0] = True
    return (slice(r0, r0 + sub.shape[0]), slice(c0, c0 + sub.shape[1])), sub


def polyline_mask(poly: np.ndarray, width: float, size: int) -> np.ndarray:
    """Bool (H, W) mask of a polyline (normalised coords) stamped with a disk of `width` (norm.)."""
    bb, sub = polyline_box(poly, width, size)
    mask = np.zeros((size, size), dtype=bool)
    mask[bb] = sub
    return mask


def add_stroke(layer: np.ndarray, poly: np.ndarray, width: float, amp: float, where: np.ndarray | None = None) -> np.ndarray:
    """Add `amp` along a polyline (optionally only where `where` (H, W) is true); return its mask."""
    size = layer.shape[0]
    bb, sub = polyline_box(poly, width, size)
    if where is not None:
        sub &= where[bb]
    layer[bb] += np.where(sub, np.float32(amp), np.float32(0.0))
    mask = np.zeros(layer.shape, dtype=bool)
    mask[bb] = sub
    return mask


def erode4(m: np.ndarray) -> np.ndarray:
    """Binary erosion with the 4-neighbourhood (edges count as outside)."""
    out = m.copy()
    out[1:] &= m[:-1]
    out[:-1] &= m[1:]
    out[:, 1:] &= m[:, :-1]
    out[:, :-1] &= m[:, 1:]
    out[0] = out[-1] = False
    out[:, 0] = out[:, -1] = False
    return out


def dilate4(m: np.ndarray) -> np.ndarray:
    """Binary dilation with the 4-neighbourhood."""
    out = m.copy()
    out[1:] |= m[:-1]
    out[:-1] |= m[1:]
    out[:, 1:] |= m[:, :-1]
    out[:, :-1] |= m[:, 1:]
    return out


def smoothstep(x: np.ndarray) -> np.ndarray:
    """0 below 0, 1 above 1, a smooth ramp between (float32)."""
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def blur3(a: np.ndarray) -> np.ndarray:
    """Separable [1, 2, 1] / 4 blur with edge replication: a cheap detector point-spread function.

    Each pass computes (2 a[i] + a[i-1]) + a[i+1], then * 0.25, with a[-1] = a[0] and a[n] = a[n-1]
    at the edges, in place on one buffer per pass (no padded copy, no temporaries). (H, W), H, W >= 2.
    """
    v = np.multiply(a, 2.0)  # rows
    v[1:] += a[:-1]
    v[0] += a[0]
    v[:-1] += a[1:]
    v[-1] += a[-1]
    v *= 0.25
    out = np.multiply(v, 2.0)  # columns
    out[:, 1:] += v[:, :-1]
    out[:, 0] += v[:, 0]
    out[:, :-1] += v[:, 1:]
    out[:, -1] += v[:, -1]
    out *= 0.25
    return out
