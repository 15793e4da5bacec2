"""`render_phantom`: findings + seed -> frontal PA chest radiograph with one mask per finding.

Pipeline (all float32, vectorised; see the module docs of each step):
  template        canonical anatomy layers of one of N_VARIANTS people, built lazily per size
  patient         habitus, inspiration, tilt, weights drawn from the seed (+ findings that change
                  the anatomy itself: cardiomegaly, widened mediastinum, emphysema)
  base layers     one affine gather of the template; diaphragm cut
  findings        each drawer edits the layers and returns its mask
  acquisition     quantum noise, detector blur, film curve -> uint8

Orientation: PA view, PATIENT RIGHT = IMAGE LEFT. A finding with laterality "left" is drawn on
the image's right half. Same (findings, seed, size) -> byte-identical image and masks.
"""

from __future__ import annotations

import numpy as np

from syncxr.errors import UserError
from syncxr.image.base import GeneratedImage
from syncxr.image.phantom.acquisition import expose, sample_exposure
from syncxr.image.phantom.anatomy import (
    Patient,
    add_abdomen_texture,
    add_heart_and_mediastinum,
    add_soft_extras,
    base_layers,
    sample_patient,
)
from syncxr.image.phantom.devices import DEVICE_DRAWERS
from syncxr.image.phantom.findings import DRAWERS
from syncxr.image.phantom.spec import FindingSpec
from syncxr.image.phantom.template import template

MIN_SIZE, MAX_SIZE = 128, 1024
HEART_SCALE = {"mild": 1.36, "moderate": 1.48, "severe": 1.62}
MEDIASTINUM_SCALE = {"mild": 1.5, "moderate": 1.8, "severe": 2.1}
# Drawing order: what changes lung air first, then additive densities, devices last.
ORDER = (
    "emphysema", "pneumothorax", "pleural_effusion", "pleural_thickening", "consolidation", "opacity",
    "atelectasis", "edema", "nodule", "mass", "granuloma", "fracture", "cardiomegaly",
    "enlarged_cardiomediastinum", "sternotomy", "pacemaker", "central_line", "et_tube", "ng_tube", "chest_tube",
)


def render_phantom(findings: list[FindingSpec], seed: int, size: int = 256) -> GeneratedImage:
    """Draw one radiograph showing `findings` (duplicates by name: the first wins)."""
    if not isinstance(size, int) or not MIN_SIZE <= size <= MAX_SIZE:
        raise UserError(f"phantom image size must be an int in {MIN_SIZE}..{MAX_SIZE}, got {size!r}")
    seed = seed & ((1 << 63) - 1)
    specs = _resolve(findings, seed)
    rng = np.random.default_rng(seed)
    p = _patient(specs, rng, size)
    t = template(size, p.variant)  # built on first use; depends only on (size, variant)
    # ICU patients with lines and tubes are mostly portable AP films (noisier). Only the exposure
    # changes: adding a device must not move the patient's anatomy.
    lines = any(n in specs for n in ("et_tube", "central_line", "ng_tube", "chest_tube"))
    portable = bool(rng.random() < 0.7) and lines
    exposure = sample_exposure(rng, portable)

    layers = base_layers(t, p)
    add_heart_and_mediastinum(layers, p)
    add_soft_extras(layers, p, rng)
    add_abdomen_texture(layers, t, rng)
    masks: dict[str, np.ndarray] = {}
    for name in ORDER:
        if name in specs:
            draw = DRAWERS.get(name) or DEVICE_DRAWERS[name]
            # each finding draws from its own stream so adding one finding does not move the others
            masks[name] = draw(layers, p, specs[name], np.random.default_rng([seed, ORDER.index(name)]), t)
    mu = layers.body + layers.lung
    image = expose(mu, exposure, t.noise, rng)
    return GeneratedImage(image=image, masks=masks)


def _resolve(findings: list[FindingSpec], seed: int) -> dict[str, FindingSpec]:
    """Validated specs with defaults filled, each from its own stream (the patient stays put)."""
    specs: dict[str, FindingSpec] = {}
    for f in findings:
        if f.name not in specs:
            specs[f.name] = f.resolved(np.random.default_rng([seed, 1000 + len(specs)]))
    return specs


def _patient(specs: dict[str, FindingSpec], rng: np.random.Generator, size: int) -> Patient:
    p = sample_patient(rng, size, emphysema="emphysema" in specs)
    jitter = rng.uniform(0.97, 1.03)  # drawn always, so the rest of the stream does not shift
    if "cardiomegaly" in specs:
        p.heart_scale = HEART_SCALE[specs["cardiomegaly"].severity or "moderate"] * jitter
    if "enlarged_cardiomediastinum" in specs:
        p.mediastinum_scale = MEDIASTINUM_SCALE[specs["enlarged_cardiomediastinum"].severity or "moderate"]
    return p


def cardiothoracic_ratio(findings: list[FindingSpec], seed: int, size: int = 256) -> float:
    """CTR of the patient `render_phantom` would draw: widest heart / widest inner thorax (lungs)."""
    seed = seed & ((1 << 63) - 1)
    specs = _resolve(findings, seed)
    p = _patient(specs, np.random.default_rng(seed), size)
    layers = base_layers(template(size, p.variant), p)
    add_heart_and_mediastinum(layers, p)
    heart_cols = np.flatnonzero(layers.heart.any(axis=0))
    lung_cols = np.flatnonzero((layers.label > 0).any(axis=0))
    return float((heart_cols[-1] - heart_cols[0] + 1) / (lung_cols[-1] - lung_cols[0] + 1))
