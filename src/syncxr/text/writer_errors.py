"""Simulated writer slips: the built-in writer errs like an LLM that fails verification.

With probability `rate` per (seed, attempt) a report is written from a corrupted entity set:
one entity dropped, one finding added that was not sampled, or one polarity flipped ("no
effusion" written as "effusion"). Verification should catch each (its IMPRESSION keys differ from
the sampled ones), so rewrites and rejects have something to measure. Deterministic per key.
"""

from __future__ import annotations

import random

from syncxr.records import ABSENT, PRESENT, Entity, typed
from syncxr.vocab import Ontology

KINDS = ("drop", "add", "flip")


class WriterErrors:
    def __init__(self, ontology: Ontology, rate: float = 0.0) -> None:
        if not 0.0 <= float(rate) <= 1.0:
            raise ValueError(f"writer error_rate must be in [0, 1], got {rate!r}")
        self.rate = float(rate)
        self._findings = [c for c in ontology.concepts if c.type in ("ABNORMALITY", "DISEASE")]
        self._by_name = ontology.by_name

    def apply(self, entities: list[Entity], key: str) -> list[Entity]:
        """`entities`, or (at `rate`) a copy with one slip; the input is never changed."""
        if self.rate <= 0.0:
            return entities
        rng = random.Random(f"{key}:slip")
        if rng.random() >= self.rate:
            return entities
        return self.slip(entities, rng.choice(KINDS), rng)

    def slip(self, entities: list[Entity], kind: str, rng: random.Random) -> list[Entity]:
        out = list(entities)
        findings = [i for i, e in enumerate(out) if e.type != "ANATOMY"]
        flippable = [i for i in findings if self._by_name[out[i].name].negatable]
        if kind == "drop" and len(findings) > 1:
            del out[rng.choice(findings)]
        elif kind == "flip" and flippable:
            i = rng.choice(flippable)
            e, c = out[i], self._by_name[out[i].name]
            assertion = PRESENT if e.assertion == ABSENT else ABSENT
            out[i] = Entity(e.name, typed(c.type, assertion), assertion)
        else:  # "add" (also when a drop or flip has nothing to act on)
            taken = {e.name for e in out}
            c = rng.choice([c for c in self._findings if c.name not in taken])
            out.append(Entity(c.name, c.type, PRESENT))
        return out
