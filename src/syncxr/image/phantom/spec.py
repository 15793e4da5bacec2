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
    # added in phantom-v2 (every ABNORMALITY/DISEASE concept of the bundled ontology has a drawer)
    "cavitary_lesion", "metastases", "hydropneumothorax", "congestion", "kerley_lines", "interstitial_edema",
    "heart_failure", "ards", "reticular", "fibrosis", "bronchiectasis", "bronchial_wall_thickening",
    "low_lung_volumes", "elevated_hemidiaphragm", "pericardial_effusion", "mediastinal_shift", "tortuous_aorta",
    "aortic_calcification", "hilar_enlargement", "lymphadenopathy", "calcified_nodes", "pneumomediastinum",
    "hiatal_hernia", "pneumoperitoneum", "subcutaneous_emphysema", "clavicle_fracture", "compression_fracture",
    "scoliosis", "degenerative_spine", "tracheostomy_tube", "picc_line", "port_catheter", "swan_ganz_catheter",
    "surgical_clips", "prosthetic_valve", "pleural_plaque",
)
# Declared invisible on a frontal film: concepts whose ontology `render` is omitted on purpose.
# The sampler should not offer them present when `image.backend: phantom` (see coverage.py).
INVISIBLE = {"kyphosis": "a lateral-view finding: a frontal film shows at most a foreshortened chest"}
LATERALITIES = ("left", "right", "bilateral")
SEVERITIES = ("mild", "moderate", "severe")
ZONES = ("upper", "middle", "lower")
# How many separate lesions a countable finding draws: "multiple" is 3..6 (MULTIPLE, inclusive)
COUNTS = ("single", "two", "multiple")
MULTIPLE = (3, 6)
# Effusion / pneumothorax sizes are written small/moderate/large in reports.
SEVERITY_ALIASES = {"small": "mild", "large": "severe", "minimal": "mild", "trace": "mild", "massive": "severe"}

# Plausible defaults when the text says nothing: (lateralities, zones) with weights.
_DEFAULT_SIDES: dict[str, tuple[tuple[str, ...], tuple[float, ...]]] = {
    "pleural_effusion": (("right", "left", "bilateral"), (0.35, 0.3, 0.35)),
    "hydropneumothorax": (("right", "left"), (0.5, 0.5)),
    "empyema": (("right", "left"), (0.5, 0.5)),  # keyed by entity (rendered as pleural_effusion)
    "hemothorax": (("right", "left"), (0.5, 0.5)),
    "edema": (("bilateral",), (1.0,)),
    "kerley_lines": (("bilateral",), (1.0,)),
    "reticular": (("bilateral",), (1.0,)),
    "fibrosis": (("bilateral", "right", "left"), (0.6, 0.2, 0.2)),
    "bronchiectasis": (("bilateral", "right", "left"), (0.4, 0.3, 0.3)),
    "metastases": (("bilateral",), (1.0,)),
    "hilar_enlargement": (("bilateral", "right", "left"), (0.6, 0.2, 0.2)),
    "lymphadenopathy": (("bilateral", "right", "left"), (0.6, 0.2, 0.2)),
    "calcified_nodes": (("bilateral", "right", "left"), (0.4, 0.3, 0.3)),
    "pneumoperitoneum": (("right", "bilateral"), (0.6, 0.4)),
    "picc_line": (("right", "left"), (0.6, 0.4)),
    "port_catheter": (("right", "left"), (0.6, 0.4)),
    "pleural_plaque": (("bilateral", "right", "left"), (0.6, 0.2, 0.2)),
    "elevated_hemidiaphragm": (("right", "left"), (0.5, 0.5)),
    "mediastinal_shift": (("right", "left"), (0.5, 0.5)),
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
    "reticular": (("lower",), (1.0,)),
    "fibrosis": (("lower", "upper"), (0.6, 0.4)),
    "bronchiectasis": (("lower",), (1.0,)),
    "cavitary_lesion": (("upper", "middle", "lower"), (0.5, 0.2, 0.3)),
    "pleural_thickening": (("upper", "middle", "lower"), (0.5, 0.3, 0.2)),
}
# Findings drawn differently when no zone is stated (diffuse emphysema): the zone stays unset.
ZONE_OPTIONAL = {"emphysema"}
# Findings whose side is meaningless (midline or whole chest): laterality is ignored.
MIDLINE = {"cardiomegaly", "enlarged_cardiomediastinum", "et_tube", "ng_tube", "sternotomy", "edema",
           "heart_failure", "ards", "interstitial_edema", "congestion", "low_lung_volumes", "pericardial_effusion",
           "tortuous_aorta", "aortic_calcification", "pneumomediastinum", "hiatal_hernia", "compression_fracture",
           "scoliosis", "degenerative_spine", "tracheostomy_tube", "swan_ganz_catheter", "surgical_clips",
           "prosthetic_valve", "bronchial_wall_thickening"}
# Midline findings that still cover both lungs (their mask spans both sides).
BOTH_LUNGS = {"edema", "heart_failure", "ards", "interstitial_edema", "congestion", "low_lung_volumes",
              "bronchial_wall_thickening"}
# Findings that make sense only on one side: "bilateral" there means one on each side (two
# PICCs), except where no side can be bilateral (a shift, a raised dome): then a side is drawn.
ONE_SIDED = {"mediastinal_shift", "elevated_hemidiaphragm"}


@dataclass(frozen=True)
class FindingSpec:
    """One finding to draw. Laterality is the PATIENT's side (patient left = image right on PA)."""

    name: str
    laterality: str | None = None
    severity: str | None = None
    zone: str | None = None
    entity: str | None = None  # the concept this draws (names its mask); None: the finding name
    count: str | None = None  # COUNTS member: how many separate lesions; None: the drawer's default

    @property
    def key(self) -> str:
        """The name of this finding's mask: the concept it draws, else the finding id."""
        return self.entity or self.name

    def validated(self) -> "FindingSpec":
        """This spec with severity aliases normalised; UserError naming the bad field otherwise."""
        if self.name not in FINDINGS:
            raise UserError(f"unknown phantom finding {self.name!r}; expected one of {', '.join(FINDINGS)}")
        sev = SEVERITY_ALIASES.get(self.severity, self.severity) if self.severity else None
        for key, value, allowed in (
            ("laterality", self.laterality, LATERALITIES),
            ("severity", sev, SEVERITIES),
            ("zone", self.zone, ZONES),
            ("count", self.count, COUNTS),
        ):
            if value is not None and value not in allowed:
                raise UserError(
                    f"finding {self.name!r}: {key}={value!r} is not valid; expected one of {', '.join(allowed)} or None"
                )
        return FindingSpec(self.name, self.laterality, sev, self.zone, self.entity, self.count)

    def resolved(self, rng: np.random.Generator) -> "FindingSpec":
        """Fill unset attributes with plausible values drawn from `rng` (deterministic per seed)."""
        s = self.validated()
        lat, sev, zone = s.laterality, s.severity, s.zone
        if lat is None:
            # the entity's own default first: an empyema is drawn like an effusion but on one side
            opts, w = _DEFAULT_SIDES.get(s.entity or "", _DEFAULT_SIDES.get(s.name, (("right", "left"), (0.5, 0.5))))
            lat = str(rng.choice(opts, p=w))
        if sev is None:
            sev = str(rng.choice(SEVERITIES, p=(0.4, 0.4, 0.2)))
        if zone is None and s.name not in ZONE_OPTIONAL:
            opts, w = _DEFAULT_ZONES.get(s.name, (ZONES, (1 / 3, 1 / 3, 1 / 3)))
            zone = str(rng.choice(opts, p=w))
        if s.name in MIDLINE:
            lat = "bilateral" if s.name in BOTH_LUNGS else None
        elif s.name in ONE_SIDED and lat == "bilateral":
            lat = str(rng.choice(("right", "left")))
        return FindingSpec(s.name, lat, sev, zone, s.entity, s.count)

    def sides(self) -> tuple[int, ...]:
        """Lung labels this finding is drawn on: 1 = patient right (image left), 2 = patient left."""
        return {"right": (1,), "left": (2,), "bilateral": (1, 2)}.get(self.laterality or "", (1, 2))


SEVERITY_SCALE = {"mild": 0.0, "moderate": 0.5, "severe": 1.0}


def severity01(spec: FindingSpec) -> float:
    """Severity as a number in [0, 1] (mild 0, moderate 0.5, severe 1)."""
    return SEVERITY_SCALE.get(spec.severity or "moderate", 0.5)


def lesion_count(spec: FindingSpec, rng: np.random.Generator) -> int | None:
    """How many separate lesions `spec` asks for (1, 2, or 3..6 for "multiple"); None when unstated."""
    if spec.count is None:
        return None
    if spec.count == "multiple":
        return int(rng.integers(MULTIPLE[0], MULTIPLE[1] + 1))
    return 1 if spec.count == "single" else 2
