"""Verification (SynCXR step 4): re-read a written report and compare with the sampled entities.

Entities are compared after normalising both sides onto the ontology: a mention is its concept
and its polarity (present, absent, uncertain), never its entity type. A real NER model that calls
a finding DISEASE where the ontology says ABNORMALITY, or "NON-DISEASE" where the plan says
"NON-ABNORMALITY", reads the same thing the plan asked for.

Modes:
- "impression" (the paper's, default): the IMPRESSION states the sampled entities and nothing
  else, and FINDINGS states every sampled entity and nothing that contradicts one (FINDINGS may
  hold normal statements about other anatomy). Which sampled entities the IMPRESSION must state
  is `impression`: "all" (the paper's), or "positives": the present or uncertain findings and the
  "No Finding" statements, as a real IMPRESSION does ("Right effusion. No acute process."); the
  sampled negations, other normal statements and anatomy may then be in FINDINGS only, and the
  "No Finding" statements in the IMPRESSION only.
- "exact": the whole report states the sampled entities and nothing else, no exceptions.

In impression mode, "nothing else" has stated exceptions (`allow_extra`), because real reports carry them:
- "summaries": a normal statement ("No acute cardiopulmonary process.", "Heart size is
  normal.") that contradicts no sampled entity; a "No Finding" summary qualified by "otherwise"
  or "no other" in its sentence never contradicts;
- "negations": a negated finding the plan did not ask for ("No pneumothorax.");
- "anatomy": an ANATOMY mention beyond the sampled ones ("in the right lower lobe").
Phrases the extractor reads that map to no ontology concept follow `unknown`: "reject" (unless
the phrase is on the `boilerplate` list) or "ignore".

With `check_attributes`, each mention of a sampled entity carries the sampled laterality /
severity / zone / count, compared only over the kinds its concept declares; a count read where
the plan set none is not a mismatch (an unspecified number may be written as a plural).

Reasons, first failing wins: "empty_section", "missing_entities", "extra_entities" (extras or a
contradiction), "unknown_entities", "attribute_mismatch"; otherwise "ok". `detail` lists them;
`scores` holds precision / recall of the checked text over normalised entities.
"""

from __future__ import annotations

import re
from typing import Iterable, Sequence

from syncxr.errors import UserError
from syncxr.records import ABSENT, Entity, Verdict
from syncxr.text.base import Extractor
from syncxr.vocab import Concept, Ontology, load_ontology
from syncxr.vocab.conflicts import Conflicts

MODES = ("impression", "exact")
EXTRA_KINDS = ("summaries", "negations", "anatomy")
UNKNOWN_POLICIES = ("reject", "ignore")
IMPRESSION_RULES = ("all", "positives")
# Phrases a NER model may tag that are not findings (technique, comparison, hedges).
DEFAULT_BOILERPLATE = (
    "comparison", "prior", "prior study", "interval", "stable", "unchanged", "portable", "ap", "pa",
    "frontal", "lateral", "view", "views", "chest", "radiograph", "study", "exam", "examination",
    "acute", "process", "findings", "otherwise",
)
_QUALIFIED = re.compile(r"\b(otherwise|no other|no additional|elsewhere|else)\b", re.IGNORECASE)

Item = tuple[str, str]  # (concept name, polarity)


class Verifier:
    def __init__(
        self,
        extractor: Extractor,
        mode: str = "impression",
        check_attributes: bool = True,
        ontology: Ontology | None = None,
        allow_extra: Sequence[str] = ("summaries",),
        unknown: str = "reject",
        boilerplate: Iterable[str] = DEFAULT_BOILERPLATE,
        impression: str = "all",
    ) -> None:
        if mode not in MODES:
            raise UserError(f"verifier mode {mode!r} is not one of {list(MODES)}")
        bad = [k for k in allow_extra if k not in EXTRA_KINDS]
        if bad:
            raise UserError(f"verify.allow_extra: {bad} not among {list(EXTRA_KINDS)}")
        if impression not in IMPRESSION_RULES:
            raise UserError(f"verify.impression {impression!r} is not one of {list(IMPRESSION_RULES)}")
        self.impression = impression
        if unknown not in UNKNOWN_POLICIES:
            raise UserError(f"verify.unknown {unknown!r} is not one of {list(UNKNOWN_POLICIES)}")
        self.extractor = extractor
        self.mode = mode
        self.check_attributes = check_attributes
        self.allow_extra = frozenset(allow_extra)
        self.unknown = unknown
        self.boilerplate = {_norm(b) for b in boilerplate}
        # The extractor's own ontology when it has one: the names it reads must be the ones compared.
        onto = ontology or getattr(extractor, "ontology", None)
        self.ontology = onto if isinstance(onto, Ontology) else load_ontology()
        self._by_name = self.ontology.by_name
        self._conflicts = Conflicts(self.ontology)
        self._declared = {c.name: set(c.attributes) for c in self.ontology.concepts}

    # --- reading ------------------------------------------------------------------------------

    def extract(self, findings: str, impression: str) -> list[Entity]:
        """Entities of both sections, each tagged with its section."""
        return self.extract_batch([(findings, impression)])[0]

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

    # --- normalising --------------------------------------------------------------------------

    def item(self, e: Entity) -> Item:
        """(concept, polarity): the entity type is not compared, only what is asserted."""
        concept = self._by_name.get(e.name)
        # A NON- type negates only a negatable concept: "NON-ABNORMALITY" is also the type of the
        # positive normal statements ("heart size is normal"). Any other type difference is ignored.
        negated = e.assertion == ABSENT or (e.type.startswith("NON-") and (concept is None or concept.negatable))
        return e.name, ABSENT if negated else e.assertion

    def key_of(self, item: Item) -> str | None:
        """The ontology's entity key for a normalised item (None for unknown concepts)."""
        concept = self._by_name.get(item[0])
        if concept is None:
            return None
        keys = concept.keys()
        return keys[1] if item[1] == ABSENT and len(keys) > 1 else keys[0]

    def show(self, item: Item) -> str:
        """How an item is named in a verdict: its ontology key, plus "(uncertain)" when hedged."""
        name, polarity = item
        key = self.key_of(item) or f"{name}|?"
        return key if polarity != "uncertain" else f"{key} (uncertain)"

    # --- checking -----------------------------------------------------------------------------

    def check(
        self, entities: list[Entity], findings: str, impression: str, extracted: list[Entity] | None = None
    ) -> Verdict:
        """Verdict for one report; pass `extracted` (from `extract`) to avoid re-reading."""
        empty = [name for name, text in (("findings", findings), ("impression", impression)) if not text.strip()]
        if empty:
            return Verdict(False, "empty_section", f"empty: {', '.join(empty)}")
        if extracted is None:
            extracted = self.extract(findings, impression)
        texts = {"findings": findings, "impression": impression}
        target = {self.item(e) for e in entities}
        imp = [e for e in extracted if e.section == "impression"]
        fnd = [e for e in extracted if e.section == "findings"]
        checked = imp if self.mode == "impression" else extracted
        got = {self.item(e) for e in checked}
        scores = _prf(target, got)

        required = target if self.mode == "exact" else {t for t in target if self._required_in_impression(t)}
        missing = [self.show(t) for t in sorted(required - got)]
        if self.mode == "impression":
            in_findings = {t for t in target if self._required_in_findings(t)}
            missing += [f"findings:{self.show(t)}" for t in sorted(in_findings - {self.item(e) for e in fnd})]
        if missing:
            return Verdict(False, "missing_entities", "missing: " + ", ".join(missing), scores)

        extra = [f"{self.show(self.item(e))} ({e.text or '?'})" for e in _unique(checked, self.item)
                 if self._is_extra(e, target, texts)]
        if self.mode == "impression":
            extra += [f"findings:{self.show(self.item(e))} contradicts {c}" for e in _unique(fnd, self.item)
                      for c in self._contradicted(e, target, texts) if self.item(e) not in target]
        if extra:
            return Verdict(False, "extra_entities", "extra: " + ", ".join(extra), scores)

        unknown = sorted({e.text or e.name for e in checked if self._is_unknown_extra(e)})
        if unknown:
            return Verdict(False, "unknown_entities", "not in the ontology: " + ", ".join(unknown), scores)

        if self.check_attributes:
            mismatch = self._attribute_mismatches(entities, extracted if self.mode == "exact" else fnd + imp)
            if mismatch:
                return Verdict(False, "attribute_mismatch", "; ".join(mismatch), scores)
        return Verdict(True, "ok", "", scores)

    def _required_in_findings(self, item: Item) -> bool:
        """Every sampled entity, except under "positives" a whole-study normal statement ("No acute
        cardiopulmonary process"): real reports give it in the IMPRESSION (43% of IU IMPRESSIONs, 2%
        of FINDINGS), so FINDINGS need not repeat it."""
        if self.impression != "positives":
            return True
        concept = self._by_name.get(item[0])
        return concept is None or item[1] == ABSENT or concept.chexpert != "No Finding"

    def _required_in_impression(self, item: Item) -> bool:
        if self.impression == "all":
            return True
        concept = self._by_name.get(item[0])
        if concept is None or item[1] == ABSENT:
            return False
        return concept.type in ("ABNORMALITY", "DISEASE") or concept.chexpert == "No Finding"

    def _is_extra(self, e: Entity, target: set[Item], texts: dict[str, str]) -> bool:
        """A known concept in the checked text that the plan did not ask for and no stated
        exception covers (unknown concepts are judged by `unknown`)."""
        item = self.item(e)
        concept = self._by_name.get(e.name)
        if item in target or concept is None:
            return False
        if self.mode == "exact" or self._contradicted(e, target, texts):
            return True
        if concept.type == "ANATOMY":
            return "anatomy" not in self.allow_extra
        if _is_normal_statement(concept) and item[1] != ABSENT:
            return "summaries" not in self.allow_extra
        if item[1] == ABSENT:
            return "negations" not in self.allow_extra
        return True

    def _contradicted(self, e: Entity, target: set[Item], texts: dict[str, str]) -> list[str]:
        """Sampled entities this mention contradicts (a "No Finding" summary qualified by
        "otherwise" / "no other" in its sentence contradicts nothing)."""
        key = self.key_of(self.item(e))
        if key is None:
            return []
        concept = self._by_name[e.name]
        if concept.chexpert == "No Finding" and _qualified(e, texts.get(e.section, "")):
            return []
        out = []
        for t in sorted(target):
            tkey = self.key_of(t)
            if tkey is not None and tkey != key and self._conflicts.conflict(key, tkey):
                out.append(self.show(t))
        return out

    def _is_unknown_extra(self, e: Entity) -> bool:
        if e.name in self._by_name or self.unknown == "ignore":
            return False
        return _norm(e.text or e.name.replace("_", " ")) not in self.boilerplate

    def _attribute_mismatches(self, entities: list[Entity], mentions: list[Entity]) -> list[str]:
        out = []
        for e in entities:
            kinds = self._declared.get(e.name, set())
            want = {k: v for k, v in e.attributes.items() if k in kinds}
            for m in mentions:
                if self.item(m) != self.item(e):
                    continue
                # a count the plan left open may be written any way ("bilateral nodules" reads "multiple")
                have = {k: v for k, v in m.attributes.items() if k in kinds and (k != "count" or "count" in want)}
                if have != want:
                    out.append(f"{e.key} in {m.section or '?'}: expected {want}, read {have}")
        return out


def _is_normal_statement(concept: Concept) -> bool:
    return concept.type in ("NON-ABNORMALITY", "NON-DISEASE")


def _qualified(e: Entity, text: str) -> bool:
    """True when the sentence holding the mention says "otherwise" / "no other"."""
    if e.start < 0 or not text:
        return bool(_QUALIFIED.search(e.text or ""))
    lo = max(text.rfind(".", 0, e.start), text.rfind("\n", 0, e.start)) + 1
    hi = text.find(".", e.end)
    return bool(_QUALIFIED.search(text[lo : hi if hi >= 0 else len(text)]))


def _norm(phrase: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", phrase.lower()))




def _unique(entities: list[Entity], item_of) -> list[Entity]:  # type: ignore[no-untyped-def]
    seen, out = set(), []
    for e in entities:
        item = item_of(e)
        if item not in seen:
            seen.add(item)
            out.append(e)
    return out


def _prf(target: set[Item], got: set[Item]) -> dict[str, float]:
    hit = len(target & got)
    return {
        "precision": hit / len(got) if got else float(not target),
        "recall": hit / len(target) if target else 1.0,
    }
