"""Record types shared by every generation stage.

One `Sample` flows through the pipeline; each field group is filled by exactly one stage:

    sample   -> entities (the sampled, target set)
    write    -> findings, impression, write_attempts
    verify   -> extracted, verify_ok
    image    -> image_png, masks, image_attempts
    qc       -> qc (scores), image regenerated on failure
    label    -> labels (CheXpert-14 vector from the extractor)

A stage that rejects a sample sets `rejected` (stage name + reason); the runner keeps rejects
with their reasons in `rejects/*.parquet`, never silently drops them.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass, field, fields
from typing import Any

# RaTE-NER entity types. NON-* are the negated (absent) forms of ABNORMALITY / DISEASE.
ENTITY_TYPES = ("ABNORMALITY", "NON-ABNORMALITY", "DISEASE", "NON-DISEASE", "ANATOMY")
NON_ANATOMY_TYPES = ENTITY_TYPES[:4]

# CheXpert-14 labels, display names and snake_case column names, in the canonical order.
CHEXPERT14 = (
    "Atelectasis",
    "Cardiomegaly",
    "Consolidation",
    "Edema",
    "Enlarged Cardiomediastinum",
    "Fracture",
    "Lung Lesion",
    "Lung Opacity",
    "No Finding",
    "Pleural Effusion",
    "Pleural Other",
    "Pneumonia",
    "Pneumothorax",
    "Support Devices",
)


def snake_name(label: str) -> str:
    """The one snake-case helper: any label -> snake_case.
    'Enlarged Cardiomediastinum' -> 'enlarged_cardiomediastinum', 'pleural-effusion' -> 'pleural_effusion'."""
    return re.sub(r"[^0-9a-zA-Z]+", "_", label.strip()).strip("_").lower()


snake = snake_name  # the short name used across the package


CHEXPERT14_SNAKE = tuple(snake(x) for x in CHEXPERT14)

# Assertion status of a mention (ConText-style).
PRESENT, ABSENT, UNCERTAIN = "present", "absent", "uncertain"


def typed(base_type: str, assertion: str) -> str:
    """RaTE-NER type of a mention: the base type, or its NON- form when negated."""
    if base_type == "ANATOMY" or assertion != ABSENT:
        return base_type
    return "NON-" + base_type


@dataclass
class Entity:
    """One clinical entity: a concept of the ontology with a RaTE-NER type.

    `name` is the ontology concept id (e.g. "pleural_effusion"); `type` is one of ENTITY_TYPES and
    already encodes polarity ("no pleural effusion" -> NON-DISEASE). `key` identifies the entity
    for sampling and verification.
    """

    name: str
    type: str
    assertion: str = PRESENT
    attributes: dict[str, str] = field(default_factory=dict)  # laterality / severity / zone
    text: str = ""  # surface text as found (extractor) or written (writer)
    section: str = ""  # "findings" | "impression" | ""
    start: int = -1  # character span within the section text
    end: int = -1

    @property
    def key(self) -> str:
        return f"{self.name}|{self.type}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "assertion": self.assertion,
            "attributes": dict(self.attributes),
            "text": self.text,
            "section": self.section,
            "start": self.start,
            "end": self.end,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Entity":
        return cls(
            name=d["name"],
            type=d["type"],
            assertion=d.get("assertion", PRESENT),
            attributes=dict(d.get("attributes") or {}),
            text=d.get("text", ""),
            section=d.get("section", ""),
            start=int(d.get("start", -1)),
            end=int(d.get("end", -1)),
        )


@dataclass
class Rejection:
    stage: str
    reason: str  # short machine-friendly code, e.g. "verify_mismatch", "qc_bank_similarity"
    detail: str = ""  # human-readable detail


@dataclass
class Sample:
    sample_id: str
    index: int  # position in the run (0..N-1); fixes shard membership
    seed: int  # derived from (run seed, sample id): see derive_seed
    entities: list[Entity] = field(default_factory=list)
    findings: str = ""
    impression: str = ""
    write_attempts: int = 0
    extracted: list[Entity] = field(default_factory=list)
    image_png: bytes = b""
    masks: dict[str, bytes] = field(default_factory=dict)  # finding name -> 1-bit PNG mask
    image_attempts: int = 0
    qc: dict[str, float] = field(default_factory=dict)
    labels: dict[str, float | None] = field(default_factory=dict)  # CheXpert-14 snake -> 1/0/-1/None
    backends: dict[str, str] = field(default_factory=dict)  # stage -> backend id
    rejected: Rejection | None = None
    history: list[str] = field(default_factory=list)  # retry reasons, e.g. "write#1: missing x"

    @property
    def ok(self) -> bool:
        return self.rejected is None

    def reject(self, stage: str, reason: str, detail: str = "") -> None:
        self.rejected = Rejection(stage, reason, detail)

    def to_state(self) -> dict[str, Any]:
        """Every field as JSON-able data (bytes as base64), for the work folder's checkpoints."""
        state: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in ("entities", "extracted"):
                value = [e.to_dict() for e in value]
            elif f.name == "image_png":
                value = base64.b64encode(value).decode()
            elif f.name == "masks":
                value = {k: base64.b64encode(v).decode() for k, v in value.items()}
            elif f.name == "rejected":
                value = None if value is None else [value.stage, value.reason, value.detail]
            state[f.name] = value
        return state

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> "Sample":
        """The inverse of `to_state`: `Sample.from_state(s.to_state()) == s`."""
        kw = dict(state)
        kw["entities"] = [Entity.from_dict(d) for d in kw["entities"]]
        kw["extracted"] = [Entity.from_dict(d) for d in kw["extracted"]]
        kw["image_png"] = base64.b64decode(kw["image_png"])
        kw["masks"] = {k: base64.b64decode(v) for k, v in kw["masks"].items()}
        kw["rejected"] = None if kw["rejected"] is None else Rejection(*kw["rejected"])
        return cls(**kw)


def derive_seed(run_seed: int, sample_id: str, purpose: str = "") -> int:
    """A 63-bit seed from (run seed, sample id, purpose), stable across processes and platforms."""
    h = hashlib.blake2b(f"{run_seed}:{sample_id}:{purpose}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "little") & ((1 << 63) - 1)


@dataclass
class Verdict:
    """Outcome of a check (verification, image QC): ok, or a reason code with detail and scores."""

    ok: bool
    reason: str = ""
    detail: str = ""
    scores: dict[str, float] = field(default_factory=dict)
