"""Which entity keys contradict each other: a property of the ontology, shared by the sampler,
the writers, the verifier and the simulated world."""

from __future__ import annotations

from typing import Sequence

from syncxr.errors import UserError
from syncxr.vocab import Concept, Ontology

# CheXpert labels a "No Finding" normal statement may coexist with.
_NO_FINDING_COMPATIBLE = {None, "No Finding", "Support Devices"}


def split_key(key: str) -> tuple[str, str]:
    """'pleural_effusion|DISEASE' -> ('pleural_effusion', 'DISEASE')."""
    name, sep, typ = key.partition("|")
    if not sep or not name or not typ:
        raise UserError(f"bad entity key {key!r}: expected 'concept_name|TYPE'")
    return name, typ


def is_negated(concept: Concept, typ: str) -> bool:
    """True when an entity of `concept` with RaTE type `typ` is a negated (absent) mention."""
    return concept.negatable and typ != concept.type


class Conflicts:
    """Which entity keys may not share a report.

    Two keys conflict when
    - they are the same concept with both polarities ("effusion" and "no effusion");
    - their concepts are declared `contradicts` and neither key is negated ("cardiomegaly" and
      "heart size is normal"; "no cardiomegaly" and "heart size is normal" are fine);
    - one is a normal statement whose `excludes` scope covers the other, a positive finding
      ("normal chest radiograph" and anything abnormal; "lungs are clear" and any lung finding;
      "no acute cardiopulmonary process" and any finding neither chronic nor a device);
    - for a "No Finding" statement without `excludes` (custom ontologies), the other is a positive
      finding with a CheXpert label other than Support Devices;
    - one is a finding and the other the negation of a concept it implies ("hydropneumothorax"
      and "no pleural effusion").
    """

    def __init__(self, ontology: Ontology) -> None:
        self.ontology = ontology
        self._by_name = ontology.by_name
        self._declared = ontology.contradiction_pairs()

    def _positive(self, key: str) -> tuple[Concept, bool]:
        name, typ = split_key(key)
        concept = self._by_name[name]
        return concept, not is_negated(concept, typ)

    def conflict(self, a: str, b: str) -> bool:
        if a == b:
            return False
        ca, pos_a = self._positive(a)
        cb, pos_b = self._positive(b)
        if ca.name == cb.name:
            return True
        if pos_a != pos_b:  # a finding beside the negation of what it implies
            present, absent = (ca, cb) if pos_a else (cb, ca)
            return absent.name in present.implies_present
        if not (pos_a and pos_b):
            return False
        if frozenset((ca.name, cb.name)) in self._declared:
            return True
        return _excludes(ca, cb) or _excludes(cb, ca)

    def table(self, keys: Sequence[str]) -> list[frozenset[int]]:
        """For each key index, the indices of the keys it conflicts with."""
        return [
            frozenset(j for j, b in enumerate(keys) if self.conflict(a, b)) for a in keys
        ]


def _excludes(normal: Concept, other: Concept) -> bool:
    """True when normal statement `normal` denies present finding `other` by scope."""
    if normal.excludes:
        return normal.excludes_finding(other)
    return (
        normal.chexpert == "No Finding"
        and other.type in ("ABNORMALITY", "DISEASE")
        and other.chexpert not in _NO_FINDING_COMPATIBLE
    )


def canonical_key(ontology: Ontology, key: str) -> str | None:
    """The ontology's key for an entity key whose type may differ from the ontology's (a NER
    model's DISEASE for the ontology's ABNORMALITY): same concept, same polarity. None for a
    concept the ontology lacks."""
    name, typ = split_key(key)
    concept = ontology.by_name.get(name)
    if concept is None:
        return None
    keys = concept.keys()
    negated = typ.startswith("NON-") and concept.negatable
    return keys[1] if negated else keys[0]
