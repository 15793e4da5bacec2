"""The built-in text-conditioned phantom generator.

`PhantomGenerator` reads the IMPRESSION with the built-in extractor, maps present/uncertain
entities whose ontology concept has a `render` id to `FindingSpec`s (absent ones draw nothing)
and renders them; each mask is stored under the concept it draws.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Sequence

from syncxr.image.base import GeneratedImage, GenerateOneByOne
from syncxr.image.phantom.render import VERSION as PHANTOM_VERSION, render_phantom
from syncxr.image.phantom.spec import COUNTS, LATERALITIES, SEVERITY_ALIASES, SEVERITIES, ZONES, FindingSpec
from syncxr.records import ABSENT, Entity, derive_seed


def _clean(value: str | None, allowed: tuple[str, ...]) -> str | None:
    value = SEVERITY_ALIASES.get(value or "", value)
    return value if value in allowed else None


def entities_to_specs(entities: Sequence[Entity], ontology: Any) -> list[FindingSpec]:
    """Present/uncertain entities with a `render` concept -> one spec per concept, named after it
    (its mask is stored under the concept name); sides of repeated mentions are merged."""
    by_name = ontology.by_name
    out: dict[str, FindingSpec] = {}
    for e in entities:
        concept = by_name.get(e.name)
        if e.assertion == ABSENT or concept is None or not concept.render:
            continue
        a = e.attributes or {}
        spec = FindingSpec(
            concept.render,
            _clean(a.get("laterality"), LATERALITIES),
            _clean(a.get("severity"), SEVERITIES),
            _clean(a.get("zone"), ZONES),
            entity=concept.name,
            count=_clean(a.get("count"), COUNTS),
        )
        prev = out.get(concept.name)
        if prev is None:
            out[concept.name] = spec
        elif prev.laterality and spec.laterality and prev.laterality != spec.laterality:
            out[concept.name] = replace(prev, laterality="bilateral", severity=prev.severity or spec.severity,
                                        zone=prev.zone or spec.zone, count=prev.count or spec.count)
    return list(out.values())


def undrawable(ontology: Any) -> set[str]:
    """ABNORMALITY/DISEASE concepts the phantom does not draw (no `render`): the sampler should
    not offer them as present findings when `image.backend: phantom` (spec.INVISIBLE says why)."""
    return {c.name for c in ontology.concepts if c.type in ("ABNORMALITY", "DISEASE") and not c.render}


class PhantomGenerator(GenerateOneByOne):
    """Built-in procedural radiograph generator conditioned on the IMPRESSION text."""

    backend_id = PHANTOM_VERSION  # recorded per sample; bumped whenever the drawing changes

    def __init__(self, size: int = 256, extractor: Any = None, ontology: Any = None) -> None:
        self.size = size
        self._extractor = extractor
        self._ontology = ontology

    @property
    def ontology(self) -> Any:
        if self._ontology is None:
            from syncxr.vocab import load_ontology

            self._ontology = load_ontology()
        return self._ontology

    @property
    def extractor(self) -> Any:
        if self._extractor is None:  # the pipeline passes its extractor; standalone use reads with the lexicon
            from syncxr.text.lexicon_extractor import LexiconExtractor

            self._extractor = LexiconExtractor(ontology=self.ontology)
        return self._extractor

    def specs(self, impression: str) -> list[FindingSpec]:
        """The findings an IMPRESSION asks the renderer to draw."""
        return entities_to_specs(self.extractor.extract(impression, section="impression"), self.ontology)

    def generate(self, impression: str, seed: int, attempt: int = 0) -> GeneratedImage:
        """Draw an image for the IMPRESSION; a new attempt draws a different patient."""
        s = seed if attempt == 0 else derive_seed(seed, "phantom", f"attempt{attempt}")
        return render_phantom(self.specs(impression), seed=s, size=self.size)
