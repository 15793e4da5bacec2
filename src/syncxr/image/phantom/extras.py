"""What real films carry besides the patient: a lead L/R side marker and, on ICU films, ECG
electrodes with their wires. Not findings: no masks, never written in reports.

Drawn into the attenuation (`layers.body`) so they pass through the same noise and blur as the
anatomy. Each call uses its own random stream, so adding them moves no finding.
"""

from __future__ import annotations

import numpy as np

from syncxr.image.phantom.anatomy import Layers
from syncxr.image.phantom.draw import add_stroke, bezier, ellipse_field

# 5x7 bitmaps of the side-marker letters (rows top to bottom).
GLYPHS = {
    "L": ["10000", "10000", "10000", "10000", "10000", "10000", "11111"],
    "R": ["11110", "10001", "10001", "11110", "10100", "10010", "10001"],
    "P": ["11110", "10001", "10001", "11110", "10000", "10000", "10000"],
    "O": ["01110", "10001", "10001", "10001", "10001", "10001", "01110"],
    "T": ["11111", "00100", "00100", "00100", "00100", "00100", "00100"],
    "A": ["01110", "10001", "10001", "11111", "10001", "10001", "10001"],
    "B": ["11110", "10001", "10001", "11110", "10001", "10001", "11110"],
    "E": ["11111", "10000", "10000", "11110", "10000", "10000", "11111"],
    " ": ["00000"] * 7,
}
TEXT_P = {True: 0.7, False: 0.1}  # probability of a burnt-in "PORTABLE" / "AP" label
ECG_P = {True: 0.6, False: 0.08}  # probability of ECG leads on portable / other films


def add_marker(layers: Layers, rng: np.random.Generator) -> None:
    """A bright lead letter in an upper corner: "L" over the patient's left (image right) mostly,
    sometimes "R" over the right, as technologists place them."""
    size = layers.body.shape[0]
    letter = "L" if rng.random() < 0.7 else "R"
    right_side = (letter == "L") != (rng.random() < 0.1)  # a few markers sit on the other side
    cell = max(1, int(round(size * rng.uniform(0.006, 0.009))))
    glyph = np.array([[c == "1" for c in row] for row in GLYPHS[letter]], dtype=np.float32)
    block = np.kron(glyph, np.ones((cell, cell), np.float32))
    h, w = block.shape
    y0 = int(size * rng.uniform(0.02, 0.07))
    x0 = int(size * rng.uniform(0.84, 0.92)) if right_side else int(size * rng.uniform(0.04, 0.1))
    x0 = min(max(x0, 0), size - w)
    layers.body[y0 : y0 + h, x0 : x0 + w] += np.float32(2.0) * block


def _glyphs(text: str, cell: int) -> np.ndarray:
    """A line of 5x7 block letters, one blank column between letters, scaled by `cell`."""
    cols = []
    for ch in text:
        cols.append(np.array([[c == "1" for c in row] for row in GLYPHS[ch]], dtype=np.float32))
        cols.append(np.zeros((7, 1), np.float32))
    return np.kron(np.hstack(cols[:-1]), np.ones((cell, cell), np.float32))


def add_label_text(layers: Layers, rng: np.random.Generator, portable: bool) -> None:
    """Burnt-in technologist text near the top edge ("PORTABLE", "AP"), as on many real films."""
    if rng.random() >= TEXT_P[portable]:
        return
    size = layers.body.shape[0]
    text = "PORTABLE" if portable and rng.random() < 0.8 else str(rng.choice(["AP", "PA", "PORTABLE AP"]))
    block = _glyphs(text, max(1, int(round(size * rng.uniform(0.005, 0.008)))))
    h, w = block.shape
    y0 = int(size * rng.uniform(0.01, 0.05))
    x0 = int(size * rng.uniform(0.02, 0.5))
    x0 = min(max(x0, 0), size - w)
    layers.body[y0 : y0 + h, x0 : x0 + w] += np.float32(rng.uniform(1.5, 2.5)) * block[: size - y0, : size - x0]


def add_ecg_leads(layers: Layers, rng: np.random.Generator, portable: bool) -> None:
    """ECG electrodes (a bright ring with a metal snap) with thin wires running off the film."""
    if rng.random() >= ECG_P[portable]:
        return
    size = layers.body.shape[0]
    spots = [(0.24, 0.2), (0.76, 0.2), (0.22, 0.72), (0.78, 0.72), (0.62, 0.6)]
    for k in rng.choice(len(spots), size=int(rng.integers(3, 6)), replace=False):
        x, y = spots[int(k)][0] + rng.normal(0, 0.03), spots[int(k)][1] + rng.normal(0, 0.03)
        bb, r2 = ellipse_field(x, y, 0.016, 0.016, size)
        pad = np.where((r2 < 1.0) & (r2 > 0.6), 0.6, 0.0) + np.where(r2 < 0.12, 1.5, 0.0)
        layers.body[bb] += pad.astype(np.float32)
        end = (x + rng.normal(0, 0.15), -0.05 if y < 0.5 else 1.05)
        mid = (0.5 * (x + end[0]) + rng.normal(0, 0.08), 0.5 * (y + end[1]))
        add_stroke(layers.body, bezier(np.array([(x, y), mid, end]), 30), 0.004, 0.45)
