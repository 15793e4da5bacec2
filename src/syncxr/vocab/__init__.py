"""The CXR ontology as data (ontology.yaml) and its loader.

One vocabulary serves generation (sampler, writer, phantom) and evaluation (label mapping).
Each concept has a *base type* (ABNORMALITY, DISEASE, ANATOMY, or NON-ABNORMALITY for
"normal" statements such as "heart size is normal"); a negated mention of a negatable concept
takes the NON- form of its base type (see records.typed).
"""

from __future__ import annotations

import hashlib
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from syncxr.fsio import load_yaml
from syncxr.records import ABSENT, CHEXPERT14, PRESENT, typed

ATTRIBUTE_KINDS = ("laterality", "severity", "zone", "count")
LATERALITY = ("left", "right", "bilateral")
SEVERITY = ("mild", "moderate", "severe")
ZONE = ("upper", "middle", "lower")
# How many lesions a film shows, for countable findings (nodules, masses, rib fractures, ...).
COUNT = ("single", "two", "multiple")
REGIONS = ("mediastinum", "lung", "lung_volume", "pleura", "diaphragm", "bone", "soft_tissue", "abdomen", "device")
Region = Literal["mediastinum", "lung", "lung_volume", "pleura", "diaphragm", "bone", "soft_tissue", "abdomen", "device"]
# `excludes` scopes besides the regions: every finding, or every finding that is neither chronic nor a device
EXCLUDE_SCOPES = ("all", "acute")

_ALL_VALUES = {"laterality": LATERALITY, "severity": SEVERITY, "zone": ZONE, "count": COUNT}
AttributeKind = Literal["laterality", "severity", "zone", "count"]

DEFAULT_PATH = Path(__file__).with_name("ontology.yaml")


class Concept(BaseModel):
    """One ontology concept (see ontology.yaml for field documentation). Frozen: a loaded
    ontology is shared by every caller of `load_ontology`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    type: Literal["ABNORMALITY", "DISEASE", "ANATOMY", "NON-ABNORMALITY", "NON-DISEASE"]
    chexpert: Optional[str] = None  # CheXpert-14 display name, or None
    synonyms: list[str] = Field(min_length=1)  # plain phrases, lower case; first = preferred
    patterns: list[str] = Field(default_factory=list)  # extra regexes (real-report phrasings)
    attributes: list[AttributeKind] = Field(default_factory=list)
    size_words: bool = False  # severity written as small/moderate/large instead of mild/../severe
    negatable: bool = True  # may appear negated ("no pleural effusion")
    contradicts: list[str] = Field(default_factory=list)  # concept names never sampled together
    render: Optional[str] = None  # phantom finding id this concept draws, or None
    # allowed values per attribute kind where not all are plausible (default: all of the kind)
    values: dict[AttributeKind, list[str]] = Field(default_factory=dict)
    implies_present: list[str] = Field(default_factory=list)  # e.g. pneumonia -> consolidation label
    # For ANATOMY concepts: the side / zone the structure fixes ("right lower lobe" -> right, lower).
    anatomy_side: Optional[Literal["left", "right", "bilateral"]] = None
    anatomy_zone: Optional[Literal["upper", "middle", "lower"]] = None
    region: Optional[Region] = None  # ABNORMALITY/DISEASE: where the finding lies
    chronic: bool = False  # a chronic/incidental finding "no acute process" may accompany
    # normal statements: the present findings they deny, by scope ("all", "acute" or a region)
    excludes: list[Literal["all", "acute", "mediastinum", "lung", "lung_volume", "pleura", "diaphragm",
                           "bone", "soft_tissue", "abdomen", "device"]] = Field(default_factory=list)

    @field_validator("chexpert")
    @classmethod
    def _known_label(cls, v: Optional[str]) -> Optional[str]:
        if v is not None and v not in CHEXPERT14:
            raise ValueError(f"unknown CheXpert-14 label {v!r}; expected one of {list(CHEXPERT14)}")
        return v

    @model_validator(mode="after")
    def _known_values(self) -> "Concept":
        for kind, vals in self.values.items():
            if kind not in self.attributes:
                raise ValueError(f"concept {self.name!r}: values for {kind!r}, which is not one of its attributes")
            bad = [v for v in vals if v not in _ALL_VALUES[kind]]
            if bad or not vals:
                raise ValueError(f"concept {self.name!r}: {kind} values {vals} must be a non-empty subset of {list(_ALL_VALUES[kind])}")
        return self

    @model_validator(mode="after")
    def _scope_fields(self) -> "Concept":
        finding = self.type in ("ABNORMALITY", "DISEASE")
        if self.excludes and self.type not in ("NON-ABNORMALITY", "NON-DISEASE"):
            raise ValueError(f"concept {self.name!r}: only normal statements (NON-*) may have `excludes`")
        if (self.region or self.chronic) and not finding:
            raise ValueError(f"concept {self.name!r}: `region` and `chronic` are for ABNORMALITY/DISEASE concepts")
        return self

    def excludes_finding(self, other: "Concept") -> bool:
        """True when this normal statement denies `other` when present, by its `excludes` scopes
        ("normal chest radiograph" denies every finding; "lungs are clear" every lung finding)."""
        if other.type not in ("ABNORMALITY", "DISEASE"):
            return False
        for scope in self.excludes:
            if scope == "all" or scope == other.region:
                return True
            if scope == "acute" and not other.chronic and not _is_device(other):
                return True
        return False

    def allowed(self, kind: str) -> tuple[str, ...]:
        """The values attribute `kind` may take for this concept (`values`, else all of the kind)."""
        return tuple(self.values.get(kind) or _ALL_VALUES[kind])

    @model_validator(mode="before")
    @classmethod
    def _anatomy_not_negatable(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("type") in ("ANATOMY", "NON-ABNORMALITY", "NON-DISEASE"):
            data = {**data, "negatable": False}
        return data

    def keys(self) -> list[str]:
        """Entity keys (name|TYPE) this concept can produce."""
        out = [f"{self.name}|{typed(self.type, PRESENT)}"]
        if self.negatable:
            out.append(f"{self.name}|{typed(self.type, ABSENT)}")
        return out


class Ontology(BaseModel):
    """The concepts, frozen: `load_ontology` hands the same object to every caller."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: int = 1
    concepts: list[Concept]

    @model_validator(mode="after")
    def _check_refs(self) -> "Ontology":
        names = [c.name for c in self.concepts]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"duplicate concept names: {sorted(dup)}")
        known = set(names)
        for c in self.concepts:
            for ref in c.contradicts + c.implies_present:
                if ref not in known:
                    raise ValueError(f"concept {c.name!r} refers to unknown concept {ref!r}")
        return self

    @property
    def by_name(self) -> dict[str, Concept]:
        return {c.name: c for c in self.concepts}

    @cached_property
    def content_hash(self) -> str:
        """A hash of the concepts (identifies the ontology's content, unlike id())."""
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()[:16]

    def concept(self, name: str) -> Concept:
        try:
            return self.by_name[name]
        except KeyError:
            raise KeyError(f"unknown concept {name!r}") from None

    def all_keys(self) -> list[str]:
        return [k for c in self.concepts for k in c.keys()]

    def contradiction_pairs(self) -> set[frozenset[str]]:
        """Concept-name pairs declared contradictory (symmetric)."""
        pairs = set()
        for c in self.concepts:
            for other in c.contradicts:
                pairs.add(frozenset((c.name, other)))
        return pairs


def _is_device(c: Concept) -> bool:
    return c.region == "device" or c.chexpert == "Support Devices"


@lru_cache(maxsize=8)
def load_ontology(path: str | Path | None = None) -> Ontology:
    """Load and validate an ontology YAML (the bundled one by default)."""
    p = Path(path) if path else DEFAULT_PATH
    if not p.is_file():
        raise FileNotFoundError(f"ontology file not found: {p}")
    return Ontology.model_validate(load_yaml(p))
