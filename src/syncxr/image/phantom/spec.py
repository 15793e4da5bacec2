"""What the phantom can draw: `FindingSpec` and its validation and seeded defaults."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from syncxr.errors import UserError

FINDINGS = (
    "cardiomegaly",
    "enlarged_cardiomediastinum",
    "pleural_effusion",
    "pneumothorax",
    "consolidation",
    "atelectasis",
    "edema",
    "nodule",
    "mass",
    "opacity",
    "fracture",
    "et_tube",
    "central_line",
    "pacemaker",
    "ng_tube",
    "sternotomy",
    "chest_tube",
    "emphysema",
    "pleural_thickening",
    "granuloma",
)
LATERALITIES = ("left", "right", "bilateral")
SEVERITIES = ("mild", "moderate", "severe")
ZONES = ("upper", "middle", "lower")
# Effusion / pneumothorax sizes are written small/moderate/large in reports.
SEVERITY_ALIASES = {"small": "mild", "large": "severe", "minimal": "mild", "trace": "mild", "massive": "severe"}

# Plausible defaults when the text says nothing: (lateralities, zones) with weights.
_DEFAULT_SIDES: dict[str, tuple[tuple[str, ...], tuple[float, ...]]] = {
    "pleural_effusion": (("right", "left", "bilateral"), (0.35, 0.3, 0.35)),
    "edema": (("bilateral",), (1.0,)),
    "emphysema": (("bilateral",), (1.0,)),
    "central_line": (("right", "left"), (0.7, 0.3)),
    "pacemaker": (("left", "right"), (0.85, 0.15)),
    "atelectasis": (("right", "left", "bilateral"), (0.35, 0.3, 0.35)),
}
_DEFAULT_ZONES: dict[str, tuple[tuple[str, ...], tuple[float, ...]]] = {
    "pneumothorax": (("upper", "middle"), (0.8, 0.2)),
    "consolidation": (("upper", "middle", "lower"), (0.25, 0.3, 0.45)),
    "opacity": (("upper", "middle", "lower"), (0.3, 0.3, 0.4)),
    "atelectasis": (("lower",), (1.0,)),
    "fracture": (("upper", "middle", "lower"), (0.25, 0.45, 0.3)),
    "pleural_thickening": (("upper", "middle", "lower"), (0.5, 0.3, 0.2)),
}
# Findings whose side is meaningless (midline or whole chest): laterality is ignored.
MIDLINE = {"cardiomegaly", "enlarged_cardiomediastinum", "et_tube", "ng_tube", "sternotomy", "edema", "emphysema"}


@dataclass(frozen=True)
class FindingSpec:
    """One finding to draw. Laterality is the PATIENT's side (patient left = image right on PA)."""

    name: str
    laterality: str | None = None
    severity: str | None = None
    zone: str | None = None

    def validated(self) -> "FindingSpec":
        """This spec with severity aliases normalised; UserError naming the bad field otherwise."""
        if self.name not in FINDINGS:
            raise UserError(f"unknown phantom finding {self.name!r}; expected one of {', '.join(FINDINGS)}")
        sev = SEVERITY_ALIASES.get(self.severity, self.severity) if self.severity else None
        for key, value, allowed in (
            ("laterality", self.laterality, LATERALITIES),
            ("severity", sev, SEVERITIES),
            ("zone", self.zone, ZONES),
        ):
            if value is not None and value not in allowed:
                raise UserError(
                    f"finding {self.name!r}: {key}={value!r} is not valid; expected one of {', '.join(allowed)} or None"
                )
        return FindingSpec(self.name, self.laterality, sev, self.zone)

    def resolved(self, rng: np.random.Generator) -> "FindingSpec":
        """Fill unset attributes with plausible values drawn from `rng` (deterministic per seed)."""
        s = self.validated()
        lat, sev, zone = s.laterality, s.severity, s.zone
        if lat is None:
            opts, w = _DEFAULT_SIDES.get(s.name, (("right", "left"), (0.5, 0.5)))
            lat = str(rng.choice(opts, p=w))
        if sev is None:
            sev = str(rng.choice(SEVERITIES, p=(0.4, 0.4, 0.2)))
        if zone is None:
            opts, w = _DEFAULT_ZONES.get(s.name, (ZONES, (1 / 3, 1 / 3, 1 / 3)))
            zone = str(rng.choice(opts, p=w))
        if s.name in MIDLINE:
            lat = "bilateral" if s.name in ("edema", "emphysema") else None
        return FindingSpec(s.name, lat, sev, zone)

    def sides(self) -> tuple[int, ...]:
        """Lung labels this finding is drawn on: 1 = patient right (image left), 2 = patient left."""
        return {"right": (1,), "left": (2,), "bilateral": (1, 2)}.get(self.laterality or "", (1, 2))


SEVERITY_SCALE = {"mild": 0.0, "moderate": 0.5, "severe": 1.0}


def severity01(spec: FindingSpec) -> float:
    """Severity as a number in [0, 1] (mild 0, moderate 0.5, severe 1)."""
    return SEVERITY_SCALE.get(spec.severity or "moderate", 0.5)
