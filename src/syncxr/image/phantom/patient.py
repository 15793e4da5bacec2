"""Findings that change the patient's anatomy itself, applied before any layer is drawn.

Cardiomegaly and pericardial effusion enlarge the heart, a widened mediastinum widens it, a shift
moves it, low lung volumes or an elevated hemidiaphragm raise the domes. The drawers of these
findings (findings.py, mediastinum.py) then only return the region that changed as their mask.
"""

from __future__ import annotations

from syncxr.image.phantom.anatomy import SIDE_OF, Patient
from syncxr.image.phantom.spec import FindingSpec

HEART_SCALE = {"mild": 1.40, "moderate": 1.50, "severe": 1.62}  # mild: CTR > 0.5 for every patient (min 0.51 over 200 seeds)
EFFUSION_SCALE = {"mild": 1.35, "moderate": 1.45, "severe": 1.6}
MEDIASTINUM_SCALE = {"mild": 1.5, "moderate": 1.8, "severe": 2.1}
SHIFT = {"mild": 0.035, "moderate": 0.05, "severe": 0.07}  # image x
DOME_RISE = {"mild": 0.06, "moderate": 0.08, "severe": 0.1}
LOW_VOLUME_RISE = {"mild": 0.05, "moderate": 0.065, "severe": 0.08}


def adapt_patient(p: Patient, specs: list[FindingSpec], jitter: float) -> None:
    """Apply the anatomy-changing findings of `specs` to `p` (in place; deterministic)."""
    p.normal_dome = dict(p.dome)
    by = {s.name: s for s in specs}
    sev = lambda name: by[name].severity or "moderate"  # noqa: E731
    if "cardiomegaly" in by:
        p.heart_scale = HEART_SCALE[sev("cardiomegaly")] * jitter
    if "pericardial_effusion" in by:
        p.heart_scale = max(p.heart_scale, EFFUSION_SCALE[sev("pericardial_effusion")] * jitter)
        p.globular = True
    if "enlarged_cardiomediastinum" in by:
        p.mediastinum_scale = MEDIASTINUM_SCALE[sev("enlarged_cardiomediastinum")]
    if "mediastinal_shift" in by:  # shift TO the patient's side: patient left = image right
        p.mediastinum_dx = SHIFT[sev("mediastinal_shift")] * (1.0 if by["mediastinal_shift"].laterality == "left" else -1.0)
    if "low_lung_volumes" in by:
        rise = LOW_VOLUME_RISE[sev("low_lung_volumes")]
        p.dome = {k: v - rise for k, v in p.dome.items()}
    if "elevated_hemidiaphragm" in by:
        side = SIDE_OF.get(by["elevated_hemidiaphragm"].laterality or "right", 1)
        p.dome[side] -= DOME_RISE[sev("elevated_hemidiaphragm")]
