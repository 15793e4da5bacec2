"""Label vectors from extracted entities: CheXpert-14 (default) and CheXpert-14+ (extra columns).

THE LABEL RULES (this docstring is the one place they are written down).

Values: 1.0 positive, 0.0 negative, -1.0 uncertain, None unmentioned.

1. An ABNORMALITY / DISEASE entity votes on its concept's `chexpert` label: present -> 1,
   uncertain -> -1, absent (NON- type) -> 0. A present or uncertain entity casts the same vote
   for the labels of the concepts in its `implies_present` (hydropneumothorax -> Pleural Effusion).
2. A normal statement (NON-ABNORMALITY / NON-DISEASE concept) votes 0 on the labels of the
   concepts it `contradicts` ("heart size is normal" -> Cardiomegaly 0, "lungs are clear" ->
   Lung Opacity / Consolidation / Atelectasis / Edema / Pneumonia 0). Global normal statements
   (chexpert "No Finding", e.g. "no acute cardiopulmonary process") cast no 0 votes, as the
   CheXpert labeler leaves the other labels blank for such reports.
3. Several votes on one label: positive beats uncertain beats negative.
4. `no_finding` has the CLINICAL meaning (the default): 1.0 when at least one non-anatomy entity
   was mentioned and no ABNORMALITY / DISEASE concept of the ontology is present or uncertain;
   0.0 when any is (every finding counts, with or without a CheXpert label: pneumoperitoneum,
   pericardial effusion, bronchiectasis, a calcified granuloma, and support devices too, which are
   ABNORMALITY concepts here); None when nothing but anatomy was mentioned.
5. `no_finding_chexpert` has the STRICT CheXpert meaning: 1.0 when at least one non-anatomy entity
   was mentioned and none of the 13 CheXpert labels other than Support Devices ended 1 or -1;
   otherwise None (CheXpert never writes 0 for No Finding). Findings without a CheXpert label
   (pneumoperitoneum, hiatal hernia, emphysema, ...) do not block it.
6. ANATOMY entities, and names the ontology lacks, cast no votes (the latter are logged once at
   debug level).
7. CheXpert-14+ (`scheme="chexpert14+"`) adds the columns of `PLUS_COLUMNS`, each voted by rules
   1-3 from the concepts listed there: emphysema, fibrosis, nodule and mass apart (Lung Lesion
   keeps both, plus cancer, metastases and cavities), hernia, calcified_granuloma. A calcified
   granuloma is benign and healed: it is not a CheXpert Lung Lesion.

Key order: the 14 CheXpert columns (records.CHEXPERT14_SNAKE), then `no_finding_chexpert`, then
(chexpert14+ only) the `PLUS_COLUMNS`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from syncxr.records import ABSENT, CHEXPERT14_SNAKE, UNCERTAIN, Entity, snake
from syncxr.vocab import Concept, Ontology, load_ontology

log = logging.getLogger(__name__)

NO_FINDING = "No Finding"
NO_FINDING_CHEXPERT = "no_finding_chexpert"
SUPPORT_DEVICES = "Support Devices"
_RANK = {1.0: 2, -1.0: 1, 0.0: 0}  # positive > uncertain > negative
FINDING_TYPES = ("ABNORMALITY", "DISEASE")

# chexpert14+ extra column -> the ontology concepts that vote on it (rule 7).
PLUS_COLUMNS: dict[str, tuple[str, ...]] = {
    "emphysema": ("emphysema",),
    "fibrosis": ("fibrosis",),
    "nodule": ("nodule", "metastatic_disease"),
    "mass": ("mass", "lung_cancer"),
    "hernia": ("hiatal_hernia",),
    "calcified_granuloma": ("granuloma",),
}
SCHEMES = ("chexpert14", "chexpert14+")
CHEXPERT14_COLUMNS = (*CHEXPERT14_SNAKE, NO_FINDING_CHEXPERT)
CHEXPERT14_PLUS = (*CHEXPERT14_COLUMNS, *PLUS_COLUMNS)


def columns(scheme: str = "chexpert14") -> tuple[str, ...]:
    """The label keys a scheme produces, in order."""
    if scheme not in SCHEMES:
        raise ValueError(f"unknown label scheme {scheme!r}; expected one of {list(SCHEMES)}")
    return CHEXPERT14_PLUS if scheme == "chexpert14+" else CHEXPERT14_COLUMNS


def _value(entity: Entity) -> float:
    # The NON- type encodes absence even when an extractor leaves `assertion` at its default.
    if entity.assertion == ABSENT or entity.type.startswith("NON-"):
        return 0.0
    return -1.0 if entity.assertion == UNCERTAIN else 1.0


class _Votes(dict):
    """label -> value; a stronger value replaces a weaker one (rule 3)."""

    def cast(self, label: str | None, value: float) -> None:
        if label is None or label == NO_FINDING:
            return
        if label not in self or _RANK[value] > _RANK[self[label]]:
            self[label] = value


def _plus_owner(ontology: Ontology) -> dict[str, str]:
    owner = {}
    for column, names in PLUS_COLUMNS.items():
        for name in names:
            if name in ontology.by_name:
                owner[name] = column
    return owner


def label_vector(
    entities: Iterable[Entity], ontology: Ontology | None = None, scheme: str = "chexpert14"
) -> dict[str, float | None]:
    """Labels of one report under `scheme` (module docstring: the rules; `columns`: the keys)."""
    keys = columns(scheme)
    onto = ontology or load_ontology()
    by_name = onto.by_name
    plus = _plus_owner(onto) if scheme == "chexpert14+" else {}
    votes, extra = _Votes(), _Votes()
    mentioned = abnormal = False

    for e in entities:
        concept = by_name.get(e.name)
        if concept is None:
            log.debug("entity %r is not in the ontology; no label vote", e.name)
            continue
        if concept.type == "ANATOMY":
            continue
        mentioned = True
        if concept.type not in FINDING_TYPES:
            _normal_votes(concept, by_name, votes, extra, plus)
            continue
        value = _value(e)
        abnormal = abnormal or value != 0.0
        for c in (concept, *(by_name[o] for o in concept.implies_present if value != 0.0)):
            votes.cast(c.chexpert, value)
            extra.cast(plus.get(c.name), value)

    out: dict[str, float | None] = dict.fromkeys(keys)
    for label, value in votes.items():
        out[snake(label)] = value
    for column, value in extra.items():
        out[column] = value
    blocked = any(v != 0.0 for label, v in votes.items() if label != SUPPORT_DEVICES)
    out[NO_FINDING_CHEXPERT] = 1.0 if mentioned and not blocked else None
    out[snake(NO_FINDING)] = (0.0 if abnormal else 1.0) if mentioned else None
    return out


def _normal_votes(concept: Concept, by_name: dict[str, Concept], votes: _Votes, extra: _Votes, plus: dict[str, str]) -> None:
    """Rule 2: a normal statement negates the labels of the findings it contradicts."""
    if concept.chexpert == NO_FINDING:
        return
    for other in concept.contradicts:
        if by_name[other].type in FINDING_TYPES:
            votes.cast(by_name[other].chexpert, 0.0)
            extra.cast(plus.get(other), 0.0)


def chexpert_vector(entities: Iterable[Entity], ontology: Ontology | None = None) -> dict[str, float | None]:
    """CheXpert-14 labels (records.CHEXPERT14_SNAKE keys, `no_finding` clinical) plus
    `no_finding_chexpert` (strict CheXpert): `label_vector` with the default scheme."""
    return label_vector(entities, ontology, "chexpert14")
