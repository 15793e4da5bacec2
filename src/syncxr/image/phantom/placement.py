"""Where a finding is placed in the lungs: zones, points in a zone (away from a pneumothorax's
pleural air), and non-touching spots for several lesions."""

from __future__ import annotations

import numpy as np

from syncxr.image.phantom.anatomy import Patient

ZONE_SPAN = {"upper": (0.05, 0.33), "middle": (0.33, 0.62), "lower": (0.62, 0.92)}
PLEURAL_AIR_TRIES = 12  # draws of a point before falling back toward the hilum


def zone_point(p: Patient, side: int, zone: str, rng: np.random.Generator, u_range=(0.3, 0.75)) -> tuple[float, float]:
    """A random point inside a lung zone: u = 0 medial .. 1 lateral. After a pneumothorax, a
    point in its pleural air is drawn again, moving medially (the lung collapses toward the hilum);
    without one the random stream is the same as always."""
    f0, f1 = ZONE_SPAN[zone]
    top, bottom = p.lung_top, p.dome[side] + 0.5 * p.dome_depth
    lo, hi = u_range
    for _ in range(PLEURAL_AIR_TRIES):
        y = top + rng.uniform(f0 + 0.05, f1 - 0.05) * (bottom - top)
        med, lat = p.lung_bounds_at(side, y)
        x = med + rng.uniform(lo, hi) * (lat - med)
        if p.pleural_air is None or not _in_air(p, x, y):
            break
        lo, hi = 0.05, max(0.1, 0.75 * hi)  # drift medially, toward the collapsed lung
    else:  # the whole zone is air (a large pneumothorax): the lobe lies collapsed toward the hilum
        x, y = _toward_hilum(p, side, x, y)
    return float(x), float(y)


def _toward_hilum(p: Patient, side: int, x: float, y: float) -> tuple[float, float]:
    """The first point out of the pleural air on the way from (x, y) to the hilum."""
    hx, hy = p.hilum(side)
    for f in np.linspace(0.0, 1.0, 41):
        px, py = x + f * (hx - x), y + f * (hy - y)
        if not _in_air(p, px, py):
            # a little past the pleural line, so a lesion centred here sits in the lung
            f2 = min(1.0, f + 0.2)
            return x + f2 * (hx - x), y + f2 * (hy - y)
    return hx, hy


def _in_air(p: Patient, x: float, y: float) -> bool:
    r, c = int(np.clip(y * p.size, 0, p.size - 1)), int(np.clip(x * p.size, 0, p.size - 1))
    return bool(p.pleural_air[r, c])  # type: ignore[index]


def spread_spots(p: Patient, sides: tuple[int, ...], zones: list[str], radii: list[float], reach: float,
                 rng: np.random.Generator, u_range: tuple[float, float] = (0.2, 0.8)) -> list[tuple[int, float, float, float]]:
    """(side, x, y, radius) for len(radii) lesions that do not touch: lesion k lies on side
    sides[k % len(sides)] in zones[k]; `reach` * radius bounds how far a lesion's drawing extends.
    When they do not all fit, every lesion shrinks and the placement starts over (a crowded zone
    holds smaller lesions, never merged ones)."""
    gap = 3.0 / p.size  # at least ~3 pixels of lung between two lesions
    scale = 1.0
    for _ in range(16):
        spots: list[tuple[int, float, float, float]] = []
        for k, r0 in enumerate(radii):
            r, side = r0 * scale, sides[k % len(sides)]
            for _ in range(60):
                cx, cy = zone_point(p, side, zones[k], rng, u_range)
                if all(np.hypot(cx - x, cy - y) > reach * (r + rr) + gap for _, x, y, rr in spots):
                    spots.append((side, cx, cy, r))
                    break
            else:
                break
        if len(spots) == len(radii):
            return spots
        scale *= 0.8
    return spots + [(sides[k % len(sides)], *zone_point(p, sides[k % len(sides)], zones[k], rng, u_range), radii[k] * scale)
                    for k in range(len(spots), len(radii))]
