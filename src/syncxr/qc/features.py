"""Built-in image features for QC: a fast, deterministic, download-free stand-in for RAD-DINO.

The descriptor is built for one job: cosine similarity to a bank of problematic images should be
high for an image with the same defect and low for a clean one. Each image is reduced once to

  a 64² thumbnail (4x4 block means of the 256² image)   -> anatomy, exposure, edges
  a 16² roughness map (mean |pixel pair difference| on every 4th full-resolution row)
                                                          -> noise, and flat (unexposed or
                                                             saturated) regions

and described by blocks:

  layout     16x16 thumbnail, z-scored                         -> where anatomy is (crop, rotation)
  asym       its left-right mirror difference                  -> rotation, off-centre crops
  intensity  Hellinger intensity histogram                     -> exposure, clipping, inversion
  edges      HOG-like orientation histograms in 4x4 cells      -> rotation, collimation edges
  detectors  scalar defect detectors (syncxr.qc.detectors), ~0 on a normal radiograph and O(1) or
             more on a defective one

The first four blocks are much alike for every frontal chest film, so they form a shared "anchor";
the detectors add large components, each in its own direction, only when something is wrong.
Two images with the same defect are therefore close (cosine near 1) while a clean image stays
near the anchor, at a cosine to defective images set by the detector weight. No learned weights;
D = FEATURE_DIM. Everything is vectorised over the batch: ~0.8 ms per 256² image on one core.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from syncxr.errors import UserError
from syncxr.qc.detectors import DETECTOR_NAMES, detectors

SIDE = 256  # images are described at this size (others are resized; 256² needs no resize)
THUMB_SIDE = 64  # thumbnail side (4x4 block means)
ROUGH_SIDE = 16  # roughness map side
THUMB = 16  # layout thumbnail side
CELLS = 4  # HOG cells per side
ORIENT = 8  # unsigned orientation bins over [0, pi)
HIST_BINS = 16

# Block weights after each block is scaled to unit norm on a typical image: the squared weight is
# the block's share of the anchor. Detectors are not rescaled: their raw values carry the signal.
WEIGHTS = {"layout": 0.6, "asym": 0.4, "intensity": 0.5, "edges": 0.5, "detectors": 1.0}
# Typical squared norm of each block (measured on clean images), used for that scaling.
BLOCK_SCALE = {"layout": THUMB * THUMB, "asym": 40.0, "intensity": 0.4, "edges": 8.0, "detectors": 1.0}
FEATURE_DIM = THUMB * THUMB + THUMB * THUMB // 2 + HIST_BINS + CELLS * CELLS * ORIENT + len(DETECTOR_NAMES)


@dataclass
class Reduced:
    """What every block and detector reads; all arrays have the batch first."""

    thumb: np.ndarray  # (N, 64, 64) float32 in [0, 1]
    hist: np.ndarray  # (N, 256) float64 histogram of the thumbnail's grey levels, rows sum to 1
    rough: np.ndarray  # (N, 16, 16) float32 mean |pair difference| per block, 0-255 grey levels
    noise: np.ndarray  # (N,) float32 median |pair difference| over the whole image, 0-255 levels
    white_edge: np.ndarray  # (N,) fraction of inner pixels that are near-white beside a much darker one
    _pools: dict[int, np.ndarray] = field(default_factory=dict, repr=False)

    def pooled(self, k: int) -> np.ndarray:
        """(N, k, k) block means of the thumbnail, computed once (several blocks read the 16² and 32²)."""
        if k not in self._pools:
            self._pools[k] = pool(self.thumb, k)
        return self._pools[k]


def _check(i: int, img: object) -> None:
    if not isinstance(img, np.ndarray) or img.ndim != 2 or img.dtype != np.uint8 or min(img.shape) < 16:
        got = f"shape {getattr(img, 'shape', None)} dtype {getattr(img, 'dtype', type(img).__name__)}"
        raise UserError(
            f"image {i}: QC features expect a (H, W) uint8 grayscale array of at least 16x16, got {got}; "
            "read files with syncxr.imread.read_gray(path)"
        )


def _to_side(img: np.ndarray) -> np.ndarray:
    """(SIDE, SIDE) uint8: area-averaged when larger, bilinear when smaller."""
    if img.shape == (SIDE, SIDE):
        return img
    small = img.shape[0] < SIDE or img.shape[1] < SIDE
    return np.asarray(Image.fromarray(img).resize((SIDE, SIDE), Image.BILINEAR if small else Image.BOX))


def _native_roughness(img: np.ndarray) -> tuple[np.ndarray, float]:
    """(16, 16) roughness map and median of an image not drawn at SIDE (its own pixel scale).

    Measured on the original pixels so that upsampling a small image does not fake smoothness.
    """
    h = img.shape[0]
    rows = img[:: max(1, h // 64), : img.shape[1] // 2 * 2].astype(np.int16)
    d = np.abs(rows[:, 1::2] - rows[:, 0::2]).astype(np.float32)  # (r, W/2)
    grid = np.asarray(Image.fromarray(d).resize((ROUGH_SIDE, ROUGH_SIDE), Image.BOX), np.float32)
    return grid, float(np.median(d))


def reduce_images(images: list[np.ndarray]) -> Reduced:
    """One pass over the pixels: thumbnail, grey-level histogram, roughness map and noise level."""
    for i, img in enumerate(images):
        _check(i, img)
    n = len(images)
    a = np.stack([_to_side(im) for im in images])  # (N, 256, 256) uint8
    s = a.reshape(n, THUMB_SIDE, 4, SIDE).sum(axis=2, dtype=np.uint16)  # (N, 64, 256) row sums
    s = s[:, :, 0::4] + s[:, :, 1::4] + s[:, :, 2::4] + s[:, :, 3::4]  # (N, 64, 64) 4x4 sums, <= 4080
    thumb = s.astype(np.float32) * np.float32(1.0 / (16 * 255))
    levels = (s >> 4).reshape(n, -1).astype(np.int64) + (np.arange(n) * 256)[:, None]
    hist = np.bincount(levels.ravel(), minlength=n * 256).reshape(n, 256) / levels.shape[1]
    # |a(2j+1) - a(2j)| on every 4th row: pixel-scale texture, blind to smooth anatomy.
    r = a[:, ::4].reshape(n, SIDE // 4, SIDE // 2, 2)
    d = np.maximum(r[..., 0], r[..., 1]) - np.minimum(r[..., 0], r[..., 1])  # (N, 64, 128) uint8
    rough = d.reshape(n, ROUGH_SIDE, 4, ROUGH_SIDE, 8).mean(axis=(2, 4), dtype=np.float32)
    noise = _hist_median(d[:, ::2].reshape(n, -1))  # half the rows: 4096 samples are plenty
    white_edge = _white_edge(a)
    for i, img in enumerate(images):
        if img.shape != (SIDE, SIDE):
            rough[i], noise[i] = _native_roughness(img)
    return Reduced(thumb, hist, rough, noise, white_edge)


def _white_edge(a: np.ndarray) -> np.ndarray:
    """(N,) fraction of inner pixels (every 4th row) >= 238 with a pixel 4 columns away >= 80 darker.

    Metal over the lungs (a coin, a buckle, a wire) is a saturated plateau with a sharp edge
    onto dark lung; saturated anatomy (spine over the heart) only borders other dense tissue.
    """
    rows = a[:, 8:-8:4, 16:-16].astype(np.int16)  # (N, 60, 224)
    c, left, right = rows[:, :, 4:-4], rows[:, :, :-8], rows[:, :, 8:]
    return ((c >= 238) & (np.minimum(left, right) <= c - 80)).mean(axis=(1, 2), dtype=np.float32)


def _hist_median(d: np.ndarray) -> np.ndarray:
    """Row medians (N,) of small non-negative integers (N, M), capped at 63: a histogram, no sort."""
    n = len(d)
    idx = np.minimum(d, 63).astype(np.intp) + (np.arange(n) * 64)[:, None]
    cdf = np.cumsum(np.bincount(idx.ravel(), minlength=n * 64).reshape(n, 64), axis=1)
    return (cdf < d.shape[1] / 2).sum(axis=1).astype(np.float32)


def pool(x: np.ndarray, k: int) -> np.ndarray:
    """(N, H, W) -> (N, k, k) block means."""
    n, h, w = x.shape
    return x.reshape(n, k, h // k, k, w // k).mean(axis=(2, 4))


def _zscore(v: np.ndarray) -> np.ndarray:
    """Per-row z-score of (N, D)."""
    v = v - v.mean(axis=1, keepdims=True)
    return v / (v.std(axis=1, keepdims=True) + 1e-3)


def _layout(small: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """z-scored 16² thumbnail (N, 256) and its left-right asymmetry (N, 128); small: (N, 16, 16)."""
    n = len(small)
    z = _zscore(small.reshape(n, -1)).reshape(n, THUMB, THUMB)
    asym = (z - z[:, :, ::-1])[:, :, : THUMB // 2]  # antisymmetric, so one half says it all
    return z.reshape(n, -1), asym.reshape(n, -1)


def _intensity(hist: np.ndarray) -> np.ndarray:
    """Hellinger intensity histogram (N, HIST_BINS), centred on a flat histogram."""
    coarse = hist.reshape(len(hist), HIST_BINS, -1).sum(axis=2)
    return (np.sqrt(coarse) - np.sqrt(1.0 / HIST_BINS)).astype(np.float32)


def gradients(thumb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Central differences (gy, gx) of an (N, h, w) thumbnail, zero on the outer ring; each (N, h, w)."""
    gy = np.zeros_like(thumb)
    gx = np.zeros_like(thumb)
    gy[:, 1:-1] = thumb[:, 2:] - thumb[:, :-2]
    gx[:, :, 1:-1] = thumb[:, :, 2:] - thumb[:, :, :-2]
    return gy, gx


def _edges(gy: np.ndarray, gx: np.ndarray) -> np.ndarray:
    """HOG-like orientation histograms (N, CELLS*CELLS*ORIENT), cells L2-normalised and centred.

    gy, gx: (N, h, w) gradients of a thumbnail (h, w multiples of CELLS).
    """
    n, h, w = gy.shape
    mag = np.sqrt(gx * gx + gy * gy)
    ang = np.mod(np.arctan2(gy, gx), np.pi)
    b = np.minimum((ang * (ORIENT / np.pi)).astype(np.int64), ORIENT - 1)
    cell = ((np.arange(h) * CELLS // h)[:, None] * CELLS + (np.arange(w) * CELLS // w)[None, :]) * ORIENT
    flat = (cell[None] + b).reshape(n, -1) + (np.arange(n) * CELLS * CELLS * ORIENT)[:, None]
    size = n * CELLS * CELLS * ORIENT
    hist = np.bincount(flat.ravel(), weights=mag.ravel(), minlength=size).reshape(n, CELLS * CELLS, ORIENT)
    hist = hist / (np.linalg.norm(hist, axis=2, keepdims=True) + 1e-3)
    hist = hist - hist.mean(axis=2, keepdims=True)  # an isotropic cell contributes nothing
    return hist.reshape(n, -1).astype(np.float32)


def describe(images: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Every descriptor block, unweighted: name -> (N, d) float32."""
    red = reduce_images(images)
    layout, asym = _layout(red.pooled(THUMB))
    gy, gx = gradients(red.pooled(32))  # anatomy edges at 32², not grain
    return {
        "layout": layout,
        "asym": asym,
        "intensity": _intensity(red.hist),
        "edges": _edges(gy, gx),
        "detectors": detectors(red, layout),
    }


class BuiltinFeatures:
    """Hand-designed multi-scale QC descriptor; deterministic, D=FEATURE_DIM, numpy only."""

    backend_id = "builtin-qc-v2"

    def __init__(self, batch_size: int = 256) -> None:
        self.batch_size = batch_size

    def features(self, images: list[np.ndarray]) -> np.ndarray:
        """(N, FEATURE_DIM) float32 with L2-normalised rows."""
        images = list(images)
        chunks = [self._batch(images[i : i + self.batch_size]) for i in range(0, len(images), self.batch_size)]
        if not chunks:
            return np.zeros((0, FEATURE_DIM), np.float32)
        return np.concatenate(chunks)

    def _batch(self, images: list[np.ndarray]) -> np.ndarray:
        blocks = describe(images)
        parts = [WEIGHTS[k] * v / np.sqrt(BLOCK_SCALE[k]) for k, v in blocks.items()]
        f = np.concatenate(parts, axis=1)
        return (f / (np.linalg.norm(f, axis=1, keepdims=True) + 1e-8)).astype(np.float32)
