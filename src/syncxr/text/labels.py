"""CheXpert-14 label vector from extracted entities, following the CheXpert labeler's conventions.

Values: 1.0 positive, 0.0 negative, -1.0 uncertain, None unmentioned. Rules:

1. An ABNORMALITY / DISEASE entity votes on its concept's `chexpert` label: present -> 1,
   uncertain -> -1, absent (NON- type) -> 0. A present or uncertain entity casts the same vote
   for the labels of the concepts in its `implies_present` (hydropneumothorax -> Pleural Effusion).
2. A normal statement (NON-ABNORMALITY / NON-DISEASE concept) votes 0 on the labels of the
   concepts it `contradicts` ("heart size is normal" -> Cardiomegaly 0, "lungs are clear" ->
   Lung Opacity / Consolidation / Atelectasis / Edema / Pneumonia 0). Global normal statements
   (chexpert "No Finding", e.g. "no acute cardiopulmonary process") cast no 0 votes, as the
   CheXpert labeler leaves the other labels blank for such reports.
3. Several votes on one label: positive beats uncertain beats negative.
4. "No Finding" is 1 when no label other than Support Devices ended 1 or -1 and at least one
   non-anatomy entity was mentioned; otherwise None (CheXpert never writes 0 for No Finding).
   Findings without a CheXpert label (scoliosis, hiatal hernia, ...) do not block it, as in
   CheXpert, whose "No Finding" means none of the 13 pathologies.
5. ANATOMY entities, and names the ontology lacks, cast no votes (the latter are logged once
   at debug level).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from syncxr.records import ABSENT, CHEXPERT14_SNAKE, UNCERTAIN, Entity, snake
from syncxr.vocab import Concept, Ontology, load_ontology

log = logging.getLogger(__name__)

NO_FINDING = "No Finding"
SUPPORT_DEVICES = "Support Devices"
_RANK = {1.0: 2, -1.0: 1, 0.0: 0}  # positive > uncertain > negative
FINDING_TYPES = ("ABNORMALITY", "DISEASE")


def _value(entity: Entity, concept: Concept) -> float:
    # The NON- type encodes absence even when an extractor leaves `assertion` at its default.
    if entity.assertion == ABSENT or entity.type.startswith("NON-"):
        return 0.0
    return -1.0 if entity.assertion == UNCERTAIN else 1.0


def chexpert_vector(entities: Iterable[Entity], ontology: Ontology | None = None) -> dict[str, float | None]:
    """CheXpert-14 labels keyed by records.CHEXPERT14_SNAKE (module docstring: the rules)."""
    onto = ontology or load_ontology()
    by_name = onto.by_name
    votes: dict[str, float] = {}
    mentioned = False

    def vote(label: str | None, value: float) -> None:
        if label is None or label == NO_FINDING:
            return
        if label not in votes or _RANK[value] > _RANK[votes[label]]:
            votes[label] = value

    for e in entities:
        concept = by_name.get(e.name)
        if concept is None:
            log.debug("entity %r is not in the ontology; no CheXpert vote", e.name)
            continue
        if concept.type == "ANATOMY":
            continue
        mentioned = True
        if concept.type not in FINDING_TYPES:  # a normal statement
            if concept.chexpert != NO_FINDING:
                for other in concept.contradicts:
                    if by_name[other].type in FINDING_TYPES:
                        vote(by_name[other].chexpert, 0.0)
            continue
        value = _value(e, concept)
        vote(concept.chexpert, value)
        if value != 0.0:
            for other in concept.implies_present:
                vote(by_name[other].chexpert, value)

    out: dict[str, float | None] = {name: None for name in CHEXPERT14_SNAKE}
    for label, value in votes.items():
        out[snake(label)] = value
    blocked = any(v != 0.0 for label, v in votes.items() if label != SUPPORT_DEVICES)
    out[snake(NO_FINDING)] = 1.0 if mentioned and not blocked else None
    return out
