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
    CENTER,
    Patient,
    add_abdomen_texture,
    add_heart_and_mediastinum,
    add_soft_extras,
    base_layers,
    sample_patient,
)
from syncxr.image.phantom.devices import DEVICE_DRAWERS
from syncxr.image.phantom.extras import add_ecg_leads, add_label_text, add_marker
from syncxr.image.phantom.findings import DRAWERS
from syncxr.image.phantom.mediastinum import CENTRAL_DRAWERS
from syncxr.image.phantom.parenchyma import PARENCHYMA_DRAWERS
from syncxr.image.phantom.patient import adapt_patient
from syncxr.image.phantom.skeleton import SKELETON_DRAWERS
from syncxr.image.phantom.spec import FindingSpec
from syncxr.image.phantom.template import template

VERSION = "phantom-v9"  # bump whenever what a (findings, seed, size) draws changes
MIN_SIZE, MAX_SIZE = 128, 1024
ALL_DRAWERS = {**DRAWERS, **PARENCHYMA_DRAWERS, **CENTRAL_DRAWERS, **SKELETON_DRAWERS, **DEVICE_DRAWERS}
# Drawing order: what changes lung air first, then additive densities, devices last. The first 20
# keep their phantom-v1 positions (each finding's random stream is keyed by its position).
ORDER = (
    "emphysema", "pneumothorax", "pleural_effusion", "pleural_thickening", "consolidation", "opacity",
    "atelectasis", "edema", "nodule", "mass", "granuloma", "fracture", "cardiomegaly",
    "enlarged_cardiomediastinum", "sternotomy", "pacemaker", "central_line", "et_tube", "ng_tube", "chest_tube",
    "low_lung_volumes", "elevated_hemidiaphragm", "pericardial_effusion", "mediastinal_shift", "hydropneumothorax",
    "pleural_plaque", "cavitary_lesion", "metastases", "congestion", "heart_failure", "interstitial_edema",
    "kerley_lines", "ards", "reticular", "fibrosis", "bronchiectasis", "bronchial_wall_thickening",
    "tortuous_aorta", "aortic_calcification", "hilar_enlargement", "lymphadenopathy", "calcified_nodes",
    "pneumomediastinum", "hiatal_hernia", "pneumoperitoneum", "subcutaneous_emphysema", "clavicle_fracture",
    "compression_fracture", "scoliosis", "degenerative_spine", "prosthetic_valve", "surgical_clips",
    "tracheostomy_tube", "picc_line", "port_catheter", "swan_ganz_catheter",
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
    names = {sp.name for sp in specs}
    lines = bool(names & {"et_tube", "central_line", "ng_tube", "chest_tube", "tracheostomy_tube", "swan_ganz_catheter"})
    draw = rng.random()
    portable = bool(draw < 0.7) if lines else bool(draw < 0.15)  # some ward films are portable too
    exposure = sample_exposure(rng, portable)

    layers = base_layers(t, p)
    add_heart_and_mediastinum(layers, p)
    add_soft_extras(layers, p, rng)
    add_abdomen_texture(layers, t, rng)
    masks: dict[str, np.ndarray] = {}
    seen: dict[str, int] = {}
    for spec in sorted(specs, key=lambda sp: ORDER.index(sp.name)):
        # each finding draws from its own stream so adding one finding does not move the others
        k = ORDER.index(spec.name)
        stream = [seed, k] if not seen.get(spec.name) else [seed, k, seen[spec.name]]
        seen[spec.name] = seen.get(spec.name, 0) + 1
        mask = ALL_DRAWERS[spec.name](layers, p, spec, np.random.default_rng(stream), t)
        masks[spec.key] = mask | masks[spec.key] if spec.key in masks else mask
    add_ecg_leads(layers, np.random.default_rng([seed, 9001]), portable)
    add_marker(layers, np.random.default_rng([seed, 9002]))
    add_label_text(layers, np.random.default_rng([seed, 9003]), portable)
    mu = layers.body + layers.lung
    image = expose(mu, exposure, t.noise, rng)
    # where the patient's midline (canonical centre) lands, as a share of the width: films are not
    # centred, so "which side is a mask on" is judged against this, not the image's middle
    midline = float(p.to_image(CENTER)[0])
    return GeneratedImage(image=image, masks=masks, meta={"patient_midline_x": round(midline, 4)})


def _resolve(findings: list[FindingSpec], seed: int) -> list[FindingSpec]:
    """Validated specs with defaults filled, each from its own stream (the patient stays put).
    One spec per mask name (`FindingSpec.key`): the first wins."""
    specs: dict[str, FindingSpec] = {}
    for f in findings:
        if f.key not in specs:
            specs[f.key] = f.resolved(np.random.default_rng([seed, 1000 + len(specs)]))
    return list(specs.values())


def _patient(specs: list[FindingSpec], rng: np.random.Generator, size: int) -> Patient:
    hyper = any(sp.name == "emphysema" and sp.laterality in (None, "bilateral") for sp in specs)
    p = sample_patient(rng, size, emphysema=hyper)
    jitter = rng.uniform(0.97, 1.03)  # drawn always, so the rest of the stream does not shift
    adapt_patient(p, specs, jitter)
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


def anatomy_masks(findings: list[FindingSpec], seed: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(lungs, body) (size, size) bool masks of the patient `render_phantom(findings, seed, size)`
    draws: the lung fields after the diaphragm cut, before any finding edits them, and everything
    with soft tissue or bone (the rest is the air around the patient). For analyses of where a
    model looks in a rendered image."""
    seed = seed & ((1 << 63) - 1)
    specs = _resolve(findings, seed)
    p = _patient(specs, np.random.default_rng(seed), size)
    layers = base_layers(template(size, p.variant), p)
    # body is 0 in the air around the patient; interpolation leaves tiny values at the skin line
    return layers.label > 0, layers.body > 0.05
