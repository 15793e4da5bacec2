"""Verification (SynCXR step 4): re-read a written report and compare with the sampled entities.

Modes:
- "impression" (the paper's, default): the IMPRESSION's entity keys equal the sampled keys, and
  FINDINGS holds every sampled key and nothing that contradicts one (fillers are allowed there).
- "exact": the whole report's keys equal the sampled keys (the writer must not add fillers).

With `check_attributes`, each mention of a sampled key in the checked text carries the sampled
laterality / severity / zone, compared only over the kinds its concept declares (an extractor may
attach more, e.g. a zone from "right lower lobe" to an effusion that has no zone attribute).

Reasons, first failing wins: "empty_section", "missing_entities", "extra_entities",
"attribute_mismatch"; otherwise "ok". `detail` lists the keys; `scores` holds key precision /
recall of the checked text (the impression in impression mode, the whole report in exact mode).
"""

from __future__ import annotations

from syncxr.errors import UserError
from syncxr.records import Entity, Verdict
from syncxr.text.base import Extractor
from syncxr.vocab.conflicts import Conflicts
from syncxr.vocab import Ontology, load_ontology

MODES = ("impression", "exact")


class Verifier:
    def __init__(
        self,
        extractor: Extractor,
        mode: str = "impression",
        check_attributes: bool = True,
        ontology: Ontology | None = None,
    ) -> None:
        if mode not in MODES:
            raise UserError(f"verifier mode {mode!r} is not one of {list(MODES)}")
        self.extractor = extractor
        self.mode = mode
        self.check_attributes = check_attributes
        # The extractor's own ontology when it has one: the keys it reads must be the ones compared.
        onto = ontology or getattr(extractor, "ontology", None)
        self.ontology = onto if isinstance(onto, Ontology) else load_ontology()
        self._conflicts = Conflicts(self.ontology)
        self._declared = {c.name: set(c.attributes) for c in self.ontology.concepts}

    def extract(self, findings: str, impression: str) -> list[Entity]:
        """Entities of both sections, each tagged with its section."""
        out = []
        for section, text in (("findings", findings), ("impression", impression)):
            if text.strip():
                for e in self.extractor.extract(text, section):
                    e.section = e.section or section
                    out.append(e)
        return out

    def extract_batch(self, reports: list[tuple[str, str]]) -> list[list[Entity]]:
        """`extract` of many (findings, impression) reports with one batched extractor call."""
        texts, sections, owner = [], [], []
        for i, (findings, impression) in enumerate(reports):
            for section, text in (("findings", findings), ("impression", impression)):
                if text.strip():
                    texts.append(text)
                    sections.append(section)
                    owner.append(i)
        out: list[list[Entity]] = [[] for _ in reports]
        for i, section, found in zip(owner, sections, self.extractor.extract_batch(texts, sections)):
            for e in found:
                e.section = e.section or section
                out[i].append(e)
        return out

    def check(
        self, entities: list[Entity], findings: str, impression: str, extracted: list[Entity] | None = None
    ) -> Verdict:
        """Verdict for one report; pass `extracted` (from `extract`) to avoid re-reading."""
        empty = [name for name, text in (("findings", findings), ("impression", impression)) if not text.strip()]
        if empty:
            return Verdict(False, "empty_section", f"empty: {', '.join(empty)}")
        if extracted is None:
            extracted = self.extract(findings, impression)
        target = {e.key for e in entities}
        imp = [e for e in extracted if e.section == "impression"]
        fnd = [e for e in extracted if e.section == "findings"]
        checked = imp if self.mode == "impression" else extracted
        got = {e.key for e in checked}
        scores = _prf(target, got)

        missing = sorted(target - got)
        if self.mode == "impression":
            missing += [f"findings:{k}" for k in sorted(target - {e.key for e in fnd})]
        if missing:
            return Verdict(False, "missing_entities", "missing: " + ", ".join(missing), scores)

        extra = sorted(got - target)
        if self.mode == "impression":
            extra += [
                f"findings:{e.key} contradicts {t}"
                for e in _unique(fnd) if e.key not in target
                for t in sorted(target) if self._conflicts.conflict(e.key, t)
            ]
        if extra:
            return Verdict(False, "extra_entities", "extra: " + ", ".join(extra), scores)

        if self.check_attributes:
            mismatch = self._attribute_mismatches(entities, extracted if self.mode == "exact" else fnd + imp)
            if mismatch:
                return Verdict(False, "attribute_mismatch", "; ".join(mismatch), scores)
        return Verdict(True, "ok", "", scores)

    def _attribute_mismatches(self, entities: list[Entity], mentions: list[Entity]) -> list[str]:
        out = []
        for e in entities:
            kinds = self._declared.get(e.name, set())
            want = {k: v for k, v in e.attributes.items() if k in kinds}
            for m in mentions:
                if m.key != e.key:
                    continue
                have = {k: v for k, v in m.attributes.items() if k in kinds}
                if have != want:
                    out.append(f"{e.key} in {m.section or '?'}: expected {want}, read {have}")
        return out


def _unique(entities: list[Entity]) -> list[Entity]:
    seen, out = set(), []
    for e in entities:
        if e.key not in seen:
            seen.add(e.key)
            out.append(e)
    return out


def _prf(target: set[str], got: set[str]) -> dict[str, float]:
    hit = len(target & got)
    return {
        "precision": hit / len(got) if got else float(not target),
        "recall": hit / len(target) if target else 1.0,
    }
