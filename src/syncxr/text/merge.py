"""Merging entities of one report: one entity per key across mentions and sections."""

from __future__ import annotations

from syncxr.records import PRESENT, UNCERTAIN, Entity
from syncxr.text.base import Extractor


def fill_attributes(have: dict[str, str], new: dict[str, str]) -> None:
    """Add the attributes `have` lacks; a left and a right side make it bilateral."""
    for kind, value in new.items():
        if kind not in have:
            have[kind] = value
        elif kind == "laterality" and {have[kind], value} == {"left", "right"}:
            have[kind] = "bilateral"


def merge_entities(entities: list[Entity]) -> list[Entity]:
    """Entities unique by key, first occurrence kept; later ones fill missing attributes
    (left + right -> bilateral) and a present mention upgrades an uncertain one."""
    out: dict[str, Entity] = {}
    for e in entities:
        have = out.get(e.key)
        if have is None:
            out[e.key] = Entity.from_dict(e.to_dict())
            continue
        fill_attributes(have.attributes, e.attributes)
        if have.assertion == UNCERTAIN and e.assertion == PRESENT:
            have.assertion = PRESENT
    return list(out.values())


def extract_report(extractor: Extractor, findings: str, impression: str) -> list[Entity]:
    """Entities of a two-section report, unique by key across sections (`merge_entities`); each
    keeps the section and span of its first mention (findings before impression)."""
    ents = []
    for section, text in (("findings", findings or ""), ("impression", impression or "")):
        for e in extractor.extract(text, section):
            e.section = e.section or section
            ents.append(e)
    return merge_entities(ents)
