"""Built-in entity extractor: ontology lexicon + ConText-style assertion + attribute binding.

CONTRACT with report writers (the grammar writer verifies its text by re-reading it with this
extractor). For every concept C of the ontology and every phrase S in C.synonyms:

1. "S." (any case, surrounded by any whitespace) reads back as exactly one entity of C,
   assertion present (ANATOMY entities are emitted for anatomy phrases only).
2. "[severity] [laterality] [zone] S" reads back as C with those attributes, for the kinds C
   declares in `attributes` (other kinds are never attached). Words understood, with their value:
   severity  small / mild / minimal / trace / tiny / slight(ly) / mildly -> "mild";
             moderate(ly) -> "moderate"; large / severe(ly) / marked(ly) / extensive / massive -> "severe"
   laterality left / left-sided -> "left"; right / right-sided -> "right"; bilateral / both ->
             "bilateral"; left and right together -> "bilateral"; bibasilar -> bilateral + lower zone
   zone      upper / apical / apex -> "upper"; mid / middle / perihilar -> "middle";
             lower / basilar / basal / base -> "lower"
   count     single / solitary -> "single"; two / pair -> "two"; multiple / several / numerous /
             few / three..six -> "multiple"; a plural S with no number word ("nodules") -> "multiple";
             a present mention only ("No nodules" carries no count)
   The same words after S also count ("S on the left", "S is small", "S in the lower lung zone").
3. "S in the A" (A a synonym of an ANATOMY concept) reads back as C plus the ANATOMY entity of A;
   C takes A's `anatomy_side` / `anatomy_zone` for the kinds C declares and the words of rule 2
   did not already set.
4. "No S." and "There is no S1, S2, or S3." read back absent (type NON-<base type>) for negatable
   concepts; so do "No evidence of ...", "Without ...", "S is not seen.", "S has resolved.".
5. "Possible S.", "S cannot be excluded.", "Findings may represent S." read back uncertain.
6. Avoid, inside one sentence, words that change the reading: hedges ("may", "possible",
   "suggests"), negations ("no", "not", "without"); a hedge or negation also covers findings
   joined to its finding by "or" / "versus" ("may represent A or B": both uncertain), while
   "A or B" alone names both present (negation module docstring). A negated list stays negated only
   over members joined by "or"/"nor" or by bare commas/"and": after a comma, a member that
   starts with a severity/size or change word ("No edema, large lung volumes") or is followed
   by a verb ("..., pneumothorax is seen") is read as present (negation.forward_scope).
7. In all-caps text without periods, a newline ends a sentence unless the line looks wrapped
   (long, or ending in a comma / list word, or cutting a concept phrase).

Per call, entities are unique by key (name|TYPE): the first mention gives span, text and
attributes; later mentions of the same key only fill attributes the first lacked (left and right
mentions merge into "bilateral"). Within one sentence, a key named present (a synonym: "streaky
opacities ..., possibly atelectasis or infiltrate") stays present however it is hedged again; a key
seen only through a sign (a pattern phrasing: "blunting of the costophrenic angle may represent a
small effusion") and hedged is uncertain. Across sentences present wins.
Output is in text order of first mentions and deterministic.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections import OrderedDict
from dataclasses import dataclass, replace
from pathlib import Path

from syncxr.records import ABSENT, PRESENT, UNCERTAIN, Entity, typed
from syncxr.text.base import ExtractOneByOne
from syncxr.text.merge import fill_attributes
from syncxr.text.lexicon import ATTR_ONLY, ATTRIBUTE_WORDS, Lexicon, Match, safe_lower, tokenize
from syncxr.text.cues import TERM
from syncxr.text.negation import Span, Trigger, assert_mentions, find_triggers
from syncxr.text.sentences import split_sentences
from syncxr.vocab import Concept, Ontology, load_ontology

FINDING_TYPES = ("ABNORMALITY", "DISEASE")

# EXPLAINED_NODULE: radiologists describe a density as nodular and, in the same sentence, say what
# it is: "nodular densities consistent with prior granulomatous disease", "nodular opacity, probably
# a calcified granuloma", "nodular density ... secondary to soft tissue overlap", "... may represent
# the nipple". Such a density is not called a nodule: it is read as a density (Lung Opacity). A
# lesion the radiologist calls a nodule stays a nodule ("8 mm nodule, possibly a granuloma").
NODULE, OPACITY = "nodule", "lung_opacity"
_NODULAR = re.compile(r"nodular")
# Anatomy outside the lung (see `_outside_lung`). Ribs, clavicles, the heart and the soft tissues
# are left out: they locate lung opacities too ("opacity overlying the left 5th rib", "retrocardiac
# opacity", "soft tissue density over the left upper chest").
EXTRAPULMONARY = frozenset(("mediastinum", "spine", "sternum", "aorta", "stomach", "shoulders", "trachea"))
PROJECTED = frozenset("over overlying projecting projected projects surrounding overlies".split())
GRANULOMATOUS = frozenset(("granuloma", "tuberculosis"))
PSEUDONODULE_WORDS = frozenset(
    "nipple nipples artifact artifactual telemetry overlap overlapping overlay superimposed superimposition "
    "summation scapular scapula costochondral".split()
)

# Separators between the modifiers of two list members ("left effusion and right pneumothorax").
_SEPARATOR = re.compile(r",|;|/|\b(?:and|or|nor|with|plus|versus|vs|while|as well as)\b")
# Terminators that also end an attribute clause (the rest only end a negation scope).
_SOFT_TERMS = ("there", "with", "and")
PREPOSITIONS = frozenset(
    "in at of within involving on over overlying along throughout near to from into projecting adjacent affecting across".split()
)


_LEXICONS: dict[str, Lexicon] = {}  # by ontology content: equal ontologies share one compiled lexicon


def lexicon_for(ontology: Ontology) -> Lexicon:
    """The compiled lexicon of an ontology, built once per ontology content."""
    key = ontology.content_hash
    if key not in _LEXICONS:
        if len(_LEXICONS) >= 8:
            _LEXICONS.clear()
        _LEXICONS[key] = Lexicon(ontology)
    return _LEXICONS[key]


@dataclass
class _Mention:
    match: Match
    concept: Concept
    assertion: str
    attributes: dict[str, str]
    sentence: int


class LexiconExtractor(ExtractOneByOne):
    """Rule-based extractor over the ontology (module docstring: behaviour and writer contract)."""

    backend_id = "lexicon"

    def __init__(self, ontology: Ontology | str | Path | None = None) -> None:
        if ontology is None or isinstance(ontology, (str, Path)):
            ontology = load_ontology(ontology)
        self.ontology = ontology
        self.lexicon = lexicon_for(ontology)
        # The pipeline reads the same IMPRESSION twice (verification, then the phantom's text
        # conditioning); a small memo of recent texts makes the second read free.
        self._memo: OrderedDict[tuple[str, str], list[Entity]] = OrderedDict()

    MEMO_SIZE = 256

    def extract(self, text: str, section: str = "") -> list[Entity]:
        """Typed, attributed entities of `text` (spans relative to `text`)."""
        key = (text, section)
        hit = self._memo.get(key)
        if hit is None:
            hit = self._extract(text, section)
            self._memo[key] = hit
            if len(self._memo) > self.MEMO_SIZE:
                self._memo.popitem(last=False)
        # Entities are mutable: hand out copies so a caller cannot change the memo.
        return [replace(e, attributes=dict(e.attributes)) for e in hit]

    def _extract(self, text: str, section: str) -> list[Entity]:
        if not text or not text.strip():
            return []
        low = safe_lower(text)
        mentions: list[_Mention] = []
        for si, (s, e) in enumerate(split_sentences(text, self.lexicon)):
            mentions.extend(self._sentence(low, s, e, si))
        return _merge_mentions(mentions, text, section)

    def _sentence(self, low: str, start: int, end: int, index: int) -> list[_Mention]:
        lex = self.lexicon
        toks = tokenize(low, start, end)
        matches = [m for m in lex.find(low, start, end, toks) if m.concept != ATTR_ONLY]
        if not matches:
            return []
        sent = _Sentence(low, toks, matches, lex)
        concepts = [lex.concepts[m.concept] for m in matches]
        triggers = find_triggers(low, start, end, toks)
        spans = [
            Span(m.start, m.end, c.type in FINDING_TYPES and c.negatable, _is_clause(low, m, c))
            for m, c in zip(matches, concepts)
        ]
        assertions = assert_mentions(spans, triggers, lambda a, b: sent.words(a, b, skip_mentions=True), low)
        attrs, bound = _bind_attributes(sent, concepts, _clause_bounds(low, triggers, matches, start, end))
        concepts = self._explained(matches, concepts, assertions, set(sent.norms), low)
        # a negated finding has no count; an explained nodule keeps only the kinds its new concept declares
        attrs = [
            {k: v for k, v in at.items() if k in c.attributes and not (k == "count" and a == ABSENT)}
            for at, a, c in zip(attrs, assertions, concepts)
        ]
        return [
            _Mention(m, c, a if c.type in FINDING_TYPES else PRESENT, at, index)
            for i, (m, c, a, at) in enumerate(zip(matches, concepts, assertions, attrs))
            if not _outside_lung(sent, i, concepts, bound.get(i, []))
        ]

    def _explained(
        self, matches: list[Match], concepts: list[Concept], assertions: list[str], words: set[str], low: str
    ) -> list[Concept]:
        """A nodular density the same sentence explains is a density (`EXPLAINED_NODULE`); negated
        mentions explain nothing and are left as they are."""
        opacity = self.lexicon.concepts.get(OPACITY)
        if opacity is None or not any(c.name == NODULE for c in concepts):
            return concepts
        names = {c.name for c, a in zip(concepts, assertions) if a != ABSENT}
        if not (names & GRANULOMATOUS or words & PSEUDONODULE_WORDS):
            return concepts
        return [
            opacity if c.name == NODULE and a != ABSENT and _NODULAR.search(low, m.start, m.end) else c
            for m, c, a in zip(matches, concepts, assertions)
        ]


_VERB = re.compile(r"\b(?:is|are|was|were|remains|appears|has|have)\b")


def _is_clause(low: str, m: Match, c: Concept) -> bool:
    """A mention that is a statement of its own: a normal statement, or a pattern phrasing with a
    verb ("heart is enlarged"). It ends a negated list ("no pneumothorax and heart is enlarged")."""
    return c.type.startswith("NON-") or (m.pattern and _VERB.search(low, m.start, m.end) is not None)


class _Sentence:
    """One sentence: lower-cased text, its tokens (normalised once) and its concept mentions."""

    def __init__(self, low: str, toks: list[tuple[str, int, int]], matches: list[Match], lex: Lexicon) -> None:
        self.low = low
        self.matches = matches
        self.starts = [s for _, s, _ in toks]
        self.norms = [lex.normalize(t) for t, _, _ in toks]
        inside = [False] * len(toks)
        for m in matches:
            for k in range(bisect_left(self.starts, m.start), bisect_left(self.starts, m.end)):
                inside[k] = True
        self.inside = inside  # token k lies inside a concept mention

    def words(self, a: int, b: int, skip_mentions: bool = False) -> list[str]:
        """Normalised words starting in [a, b), optionally without those inside mentions."""
        lo, hi = bisect_left(self.starts, a), bisect_left(self.starts, b)
        if skip_mentions:
            return [self.norms[k] for k in range(lo, hi) if not self.inside[k]]
        return self.norms[lo:hi]


def _clause_bounds(
    low: str, triggers: list[Trigger], matches: list[Match], start: int, end: int
) -> list[tuple[int, int]]:
    """Clauses of one sentence for attribute binding: split at the hard terminators only."""
    cuts = [t for t in triggers if t.kind == TERM and not low.startswith(_SOFT_TERMS, t.start)]
    cuts = [t for t in cuts if not any(m.start <= t.start < m.end for m in matches)]
    bounds, pos = [], start
    for t in cuts:
        bounds.append((pos, t.start))
        pos = t.end
    bounds.append((pos, end))
    return bounds


def _words_attrs(words: list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for w in words:
        for kind, value in ATTRIBUTE_WORDS.get(w, ()):
            out.setdefault(kind, []).append(value)
    return out


_SEVERITY_RANK = {"mild": 0, "moderate": 1, "severe": 2}


def _resolve(found: dict[str, list[str]]) -> dict[str, str]:
    """One value per kind: left+right -> bilateral; the most severe severity; the first zone."""
    out: dict[str, str] = {}
    lat = set(found.get("laterality", ()))
    if lat:
        out["laterality"] = "bilateral" if "bilateral" in lat or len(lat) > 1 else lat.pop()
    if found.get("severity"):
        out["severity"] = max(found["severity"], key=_SEVERITY_RANK.__getitem__)
    if found.get("zone"):
        out["zone"] = found["zone"][0]
    if found.get("count"):
        out["count"] = found["count"][0]
    return out


_PLURAL_HEAD = re.compile(r"(?:[a-z]*[^isu]s|[a-z]*ata)$")  # "nodules", "metastases", "granulomata"; not "mass", "metastasis"


def _plural_head(low: str, m: Match) -> bool:
    """True when the mention's last word is a plural ("two nodules" and "nodules" alike)."""
    words = low[m.start : m.end].split()
    return bool(words) and _PLURAL_HEAD.fullmatch(words[-1]) is not None


def _outside_lung(sent: _Sentence, i: int, concepts: list[Concept], bound: list[int]) -> bool:
    """EXTRAPULMONARY: a density projected only over structures outside the lung ("density
    overlying the mediastinum", "opacity projecting over the spine") is not a lung finding."""
    if concepts[i].name != OPACITY or not bound:
        return False
    if not all(concepts[k].name in EXTRAPULMONARY for k in bound):
        return False
    m, a = sent.matches[i], sent.matches[bound[0]]
    return a.start > m.end and bool(PROJECTED.intersection(sent.words(m.end, a.start)))


def _bind_attributes(
    sent: _Sentence, concepts: list[Concept], clauses: list[tuple[int, int]]
) -> tuple[list[dict[str, str]], dict[int, list[int]]]:
    """Attributes of each finding from its own modifier words, then from the anatomy bound to it;
    and the anatomy bound to each finding (finding index -> anatomy indices)."""
    matches, low = sent.matches, sent.low
    n = len(matches)
    clause_starts = [s for s, _ in clauses]
    clause_of = [max(bisect_right(clause_starts, m.start) - 1, 0) for m in matches]
    finding = [c.type in FINDING_TYPES for c in concepts]
    bound = _bind_anatomy(sent, finding, [c.type == "ANATOMY" for c in concepts], clause_of)
    out: list[dict[str, str]] = []
    for i in range(n):
        if not finding[i]:
            out.append({})
            continue
        cs, ce = clauses[clause_of[i]]
        prev = [j for j in range(i) if clause_of[j] == clause_of[i]]
        pre_start = matches[prev[-1]].end if prev else cs
        if prev:  # only the modifiers after the last separator belong to this mention
            for sep in _SEPARATOR.finditer(low, pre_start, matches[i].start):
                pre_start = sep.end()
        ws = sent.words(pre_start, matches[i].start)
        if matches[i].pattern:  # regex phrasings carry their own modifiers ("mildly enlarged")
            ws = ws + sent.words(matches[i].start, matches[i].end)
        ws = ws + _post_words(sent, i, finding, clause_of, ce)
        attrs = _resolve(_words_attrs(ws))
        located = [concepts[a] for a in bound.get(i, [])]
        from_anatomy = _resolve(
            {
                "laterality": [c.anatomy_side for c in located if c.anatomy_side],
                "zone": [c.anatomy_zone for c in located if c.anatomy_zone],
            }
        )
        for kind, value in from_anatomy.items():
            attrs.setdefault(kind, value)
        if "count" in concepts[i].attributes and "count" not in attrs and _plural_head(low, matches[i]):
            attrs["count"] = "multiple"
        out.append({k: v for k, v in attrs.items() if k in concepts[i].attributes})
    return out, bound


def _post_words(sent: _Sentence, i: int, finding: list[bool], clause_of: list[int], ce: int) -> list[str]:
    """Words after mention i up to the first separator, or none when the next finding follows with
    no separator (those words are its pre-modifiers). Words inside anatomy mentions are skipped."""
    matches = sent.matches
    nxt = next((j for j in range(i + 1, len(matches)) if clause_of[j] == clause_of[i] and finding[j]), None)
    stop = matches[nxt].start if nxt is not None else ce
    sep = _SEPARATOR.search(sent.low, matches[i].end, stop)
    if sep is None and nxt is not None:
        return []
    if sep is not None:
        stop = sep.start()
    return sent.words(matches[i].end, stop, skip_mentions=True)


def _bind_anatomy(sent: _Sentence, finding: list[bool], anatomy: list[bool], clause_of: list[int]) -> dict[int, list[int]]:
    """finding index -> anatomy indices that locate it ("opacity in the right lower lobe",
    "right lower lobe opacity", "... in the right lower lobe and lingula")."""
    matches, low = sent.matches, sent.low
    bound: dict[int, list[int]] = {}
    owner: dict[int, int] = {}
    for k in range(len(matches)):
        if not anatomy[k]:
            continue
        prev = k - 1 if k > 0 and clause_of[k - 1] == clause_of[k] else None
        nxt = k + 1 if k + 1 < len(matches) and clause_of[k + 1] == clause_of[k] else None
        target = None
        if prev is not None:
            gap_ws = sent.words(matches[prev].end, matches[k].start)
            clean = not _SEPARATOR.search(low, matches[prev].end, matches[k].start)
            if prev in owner and set(gap_ws) <= {"and", "or", "the", "both"}:
                target = owner[prev]  # a list of places for one finding
            elif finding[prev] and clean and len(gap_ws) <= 8:
                if PREPOSITIONS.intersection(gap_ws) or not (nxt is not None and finding[nxt]):
                    target = prev
        if target is None and nxt is not None and finding[nxt]:
            if not _SEPARATOR.search(low, matches[k].end, matches[nxt].start):
                if len(sent.words(matches[k].end, matches[nxt].start)) <= 4:
                    target = nxt
        if target is not None:
            owner[k] = target
            bound.setdefault(target, []).append(k)
    return bound


def _merge_mentions(mentions: list[_Mention], text: str, section: str) -> list[Entity]:
    """One entity per key (module docstring: merge rule)."""
    entities: dict[str, Entity] = {}
    per_sentence: dict[str, dict[int, set[tuple[str, bool]]]] = {}
    for m in mentions:
        typ = typed(m.concept.type, m.assertion)
        key = f"{m.concept.name}|{typ}"
        ent = entities.get(key)
        if ent is None:
            entities[key] = Entity(
                m.concept.name, typ, m.assertion, dict(m.attributes), text[m.match.start : m.match.end],
                section, m.match.start, m.match.end,
            )
        else:
            fill_attributes(ent.attributes, m.attributes)
        per_sentence.setdefault(key, {}).setdefault(m.sentence, set()).add((m.assertion, m.match.pattern))
    for key, ent in entities.items():
        if ent.assertion == ABSENT:
            continue
        sentence_level = [_sentence_assertion(s) for s in per_sentence[key].values()]
        ent.assertion = PRESENT if PRESENT in sentence_level else UNCERTAIN
    return list(entities.values())


def _sentence_assertion(seen: set[tuple[str, bool]]) -> str:
    """One key's assertion in one sentence from its (assertion, read-from-a-pattern) mentions."""
    if (PRESENT, False) in seen:
        return PRESENT
    return UNCERTAIN if any(a == UNCERTAIN for a, _ in seen) else PRESENT
