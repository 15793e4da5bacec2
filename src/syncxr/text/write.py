"""The built-in grammar report writer: FINDINGS + IMPRESSION from a sampled entity set.

No model: phrasings are data (grammar/phrases.yaml) and choices come from a seeded RNG, so
`write(entities, seed, attempt)` is a pure function. Reports read like a radiologist's:

- FINDINGS go system by system (lines and tubes, heart and mediastinum, lungs, pleura, bones,
  upper abdomen); within a system the sentence order varies; negations share one sentence
  ("No pleural effusion or pneumothorax."); uncertain entities are hedged; an ANATOMY entity is
  woven into a finding of its system whose side/zone agree ("Consolidation in the right lower
  lobe.") or gets a neutral sentence about the structure.
- With `filler=True`, a system with nothing sampled gets a normal statement and/or a grouped
  negation of concepts of that system, never one that duplicates or contradicts a sampled entity.
- IMPRESSION holds exactly the sampled entities, with their attributes, numbered or not.

Mentions follow the extractor contract: "[severity] [laterality] <synonym>", "<synonym> in the
<anatomy synonym>", "No <synonym>.", "There is no <a>, <b>, or <c>.". From the attempt given by
`safe_after` on, only the preferred synonyms and the first phrasing of each kind are used, so a
late rewrite falls back to the most conservative wording.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from syncxr.errors import UserError
from syncxr.records import ABSENT, UNCERTAIN, Entity
from syncxr.text.base import WRITERS
from syncxr.text.sample import Conflicts, is_negated
from syncxr.vocab import Concept, Ontology, load_ontology

PHRASES_PATH = Path(__file__).with_name("grammar") / "phrases.yaml"
_KINDS = ("present", "uncertain", "normal", "negated", "anatomy")
_CLAUSE = re.compile(r"\b(?:is|are|was|were)\b")
_OF = re.compile(r"\b(?:of|with)\b")
_PARTICIPLE = re.compile(r"\w+ed\b")  # "enlarged heart": no "severe" / "left" in front of it


@lru_cache(maxsize=4)
def load_phrases(path: str | Path = PHRASES_PATH) -> dict[str, Any]:
    """Load and check the phrasing data file (see grammar/phrases.yaml for its fields)."""
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text())
    except FileNotFoundError:
        raise UserError(f"writer phrases file not found: {p}") from None
    need = ("systems", "system_words", "fallback_system", "weave_systems", "filler_systems",
            "severity", "laterality", "zone", "findings", "impression")
    missing = [k for k in need if k not in (data or {})]
    if missing:
        raise UserError(f"{p}: missing keys {missing}; compare with the bundled {PHRASES_PATH.name}")
    for section in ("findings", "impression"):
        absent = [k for k in _KINDS if not data[section].get(k)]
        if absent:
            raise UserError(f"{p}: section {section!r} lacks phrasings for {absent}")
    return data


def _word_pattern(words: list[str]) -> re.Pattern[str]:
    alts = [re.escape(w[:-1]) + r"\w*" if w.endswith("*") else re.escape(w) + "s?" for w in words]
    return re.compile(r"\b(?:" + "|".join(alts) + r")\b")


def join_list(items: list[str]) -> str:
    """['a'] -> 'a'; ['a', 'b'] -> 'a or b'; ['a', 'b', 'c'] -> 'a, b, or c'."""
    if len(items) <= 2:
        return " or ".join(items)
    return ", ".join(items[:-1]) + ", or " + items[-1]


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def _be(phrase: str, plurals: set[str]) -> str:
    """'is' or 'are' for a noun phrase, judged on its head ("markings in the LUL" -> are)."""
    words = phrase.lower().split(" in ")[0].split()
    last = words[-1]
    plural = last in plurals or words[0] == "both" or (last.endswith("s") and not last.endswith(("ss", "is", "us")))
    return "are" if plural else "is"


@dataclass
class _Item:
    """One entity to write: its concept, how it is written, and an anatomy woven into it."""

    entity: Entity
    concept: Concept
    kind: str  # one of _KINDS
    system: str
    woven: Concept | None = None
    woven_into: list["_Item"] = field(default_factory=list)  # for anatomy: findings carrying it


@WRITERS.register("grammar")
class GrammarWriter:
    """Grammar-based report writer (module docstring); `write` is deterministic in (seed, attempt)."""

    backend_id = "grammar-v1"

    def __init__(
        self,
        ontology: Ontology | str | Path | None = None,
        filler: bool = True,
        phrases: str | Path | None = None,
        safe_after: int = 2,
    ) -> None:
        self.ontology = ontology if isinstance(ontology, Ontology) else load_ontology(ontology)
        self.filler = filler
        self.safe_after = safe_after
        self.p = load_phrases(phrases or PHRASES_PATH)
        self._index()

    def _index(self) -> None:
        """Per-concept system, conflict sets and the word patterns the phrasing rules need."""
        self._by_name = self.ontology.by_name
        patterns = [(s, _word_pattern(w)) for s, w in self.p["system_words"].items()]
        placed = {c.name: _system_of(c, patterns) for c in self.ontology.concepts}
        self.system = {name: system or self.p["fallback_system"] for name, system in placed.items()}
        self._placed = {name for name, system in placed.items() if system}  # not by the fallback
        self._by_system: dict[str, list[Concept]] = {}
        for c in self.ontology.concepts:
            self._by_system.setdefault(self.system[c.name], []).append(c)
        self._conflicts = _conflict_sets(self.ontology)
        self._plurals = set(self.p.get("plurals", []))
        self._no_article = set(self.p.get("no_article", []))
        self._acronym = _alternation(self.p.get("acronyms", []))
        anatomy = [s for c in self.ontology.concepts if c.type == "ANATOMY" for s in c.synonyms]
        self._anatomy_re = _alternation(anatomy)

    # ---- public -----------------------------------------------------------------------------

    def write(self, entities: list[Entity], seed: int, attempt: int = 0) -> tuple[str, str]:
        """(findings, impression) for `entities`; a different `attempt` gives another phrasing."""
        rng = random.Random(f"{seed}:{attempt}")  # string seeds hash stably across processes
        safe = attempt >= self.safe_after
        items = [self._item(e) for e in entities]
        self._weave(items, rng)
        findings = self._findings(items, entities, rng, safe)
        impression = self._impression(items, rng, safe)
        return findings, impression

    # ---- planning ---------------------------------------------------------------------------

    def _item(self, e: Entity) -> _Item:
        try:
            c = self._by_name[e.name]
        except KeyError:
            raise UserError(f"writer: entity {e.key!r} is not an ontology concept") from None
        if e.type == "ANATOMY":
            kind = "anatomy"
        elif is_negated(c, e.type):
            kind = "negated"
        elif e.assertion == UNCERTAIN:
            kind = "uncertain"
        elif c.type.startswith("NON-"):
            kind = "normal"
        else:
            kind = "present"
        return _Item(e, c, kind, self.system[c.name])

    def _weave(self, items: list[_Item], rng: random.Random) -> None:
        """Attach each anatomy to a compatible finding of its system, when there is one."""
        findings = [i for i in items if i.kind in ("present", "uncertain") and i.system in self.p["weave_systems"]]
        for a in (i for i in items if i.kind == "anatomy"):
            if a.concept.name not in self._placed:
                continue
            fits = [f for f in findings if f.woven is None and f.system == a.system and _fits(f, a.concept)]
            if fits:
                f = rng.choice(fits)
                f.woven = a.concept
                a.woven_into.append(f)

    # ---- mentions ---------------------------------------------------------------------------

    def _synonym(
        self, c: Concept, rng: random.Random, safe: bool, clause_ok: bool, bare: bool = False, prefix: str = ""
    ) -> str:
        """A synonym of `c`: the preferred one with probability preferred_synonym_p (always when
        `safe`). Clauses ("heart size is normal") only where `clause_ok`; with `bare`, only a
        synonym that takes adjectives ("large effusion", not "large blunting of the ..."); never
        one that `prefix` turns into an anatomy phrase ("right" + "lung mass" reads "right lung")."""
        syns = [
            s for s in c.synonyms
            if (clause_ok or not _CLAUSE.search(s)) and not (bare and (_OF.search(s) or _PARTICIPLE.match(s)))
            and not (prefix and self._makes_anatomy(prefix, s))
        ]
        syns = syns or list(c.synonyms)
        if safe or len(syns) == 1 or rng.random() < self.p.get("preferred_synonym_p", 0.5):
            return self._case(syns[0])
        return self._case(rng.choice(syns[1:]))

    def _makes_anatomy(self, prefix: str, syn: str) -> bool:
        if self._anatomy_re is None:
            return False
        # An anatomy phrase that starts inside the prefix spans prefix + synonym.
        return any(m.start() <= len(prefix) for m in self._anatomy_re.finditer(f"{prefix} {syn}"))

    def _case(self, phrase: str) -> str:
        return self._acronym.sub(lambda m: m.group(0).upper(), phrase) if self._acronym else phrase

    def _np(self, phrase: str) -> str:
        """'right lower lobe' -> 'the right lower lobe'; 'both hila' stays as is."""
        return phrase if phrase.split()[0].lower() in self._no_article else "the " + phrase

    def _pick(self, options: list[str], rng: random.Random, safe: bool) -> str:
        return options[0] if safe else rng.choice(options)

    def mention(self, item: _Item, rng: random.Random, safe: bool = False) -> str:
        """The noun phrase for one entity: attributes, synonym, woven anatomy or zone phrase."""
        c, attrs = item.concept, item.entity.attributes
        if item.kind == "normal":
            return self._synonym(c, rng, safe, clause_ok=True)
        if item.kind in ("negated", "anatomy"):
            return self._synonym(c, rng, safe, clause_ok=False)
        words = []
        if "severity" in attrs and "severity" in c.attributes:
            table = self.p["severity"]["size" if c.size_words else "default"]
            words.append(self._pick(table[attrs["severity"]], rng, safe))
        side_given = item.woven is not None and item.woven.anatomy_side is not None
        if "laterality" in attrs and "laterality" in c.attributes and not side_given:
            words.append(self._pick(self.p["laterality"][attrs["laterality"]], rng, safe))
        has_zone = "zone" in attrs and "zone" in c.attributes
        bare = bool(words) or item.woven is not None or has_zone
        words.append(self._synonym(c, rng, safe, clause_ok=False, bare=bare, prefix=" ".join(words)))
        if item.woven is not None:
            words.append("in " + self._np(self._synonym(item.woven, rng, safe, clause_ok=False)))
        elif has_zone:
            words.append(self._pick(self.p["zone"][attrs["zone"]], rng, safe))
        return " ".join(words)

    # ---- sentences --------------------------------------------------------------------------

    def _sentences(self, items: list[_Item], section: str, rng: random.Random, safe: bool) -> list[str]:
        """Sentences for the items of one block: one per finding, negations grouped (<= 3 each)."""
        tpl = self.p[section]
        out = []
        for it in items:
            if it.kind in ("present", "uncertain", "normal"):
                m = self.mention(it, rng, safe)
                options = tpl.get("by_system", {}).get(it.system, {}).get(it.kind) or tpl[it.kind]
                out.append(self._pick(options, rng, safe).format(m=m, M=_cap(m), be=_be(m, self._plurals)))
            elif it.kind == "anatomy" and not it.woven_into:
                a = self._synonym(it.concept, rng, safe, clause_ok=False)
                np_ = self._np(a)
                out.append(self._pick(tpl["anatomy"], rng, safe).format(a=np_, A=_cap(np_), be=_be(a, self._plurals)))
        negated = [it for it in items if it.kind == "negated"]
        for start in range(0, len(negated), 3):
            mentions = [self.mention(it, rng, safe) for it in negated[start:start + 3]]
            be = _be(mentions[0], self._plurals)  # "There are no sternotomy wires or ..."
            out.append(self._pick(tpl["negated"], rng, safe).format(list=join_list(mentions), be=be))
        return out

    def _findings(self, items: list[_Item], entities: list[Entity], rng: random.Random, safe: bool) -> str:
        blocks: dict[str, list[_Item]] = {s: [] for s in self.p["systems"]}
        for it in items:
            blocks.setdefault(it.system, []).append(it)
        if self.filler:
            self._add_fillers(blocks, entities, rng)
        paragraph = []
        for system_items in blocks.values():
            sentences = self._sentences(system_items, "findings", rng, safe)
            rng.shuffle(sentences)
            paragraph.extend(sentences)
        return " ".join(paragraph)

    def _impression(self, items: list[_Item], rng: random.Random, safe: bool) -> str:
        order = {"present": 0, "uncertain": 1, "normal": 2, "negated": 3, "anatomy": 4}
        ranked = sorted(items, key=lambda it: order[it.kind])  # stable: keeps system order
        sentences = self._sentences(ranked, "impression", rng, safe)
        if len(sentences) > 1 and rng.random() < self.p.get("numbered_p", 0.5):
            return "\n".join(f"{i}. {s}" for i, s in enumerate(sentences, 1))
        return " ".join(sentences)

    # ---- fillers ----------------------------------------------------------------------------

    def _add_fillers(self, blocks: dict[str, list[_Item]], entities: list[Entity], rng: random.Random) -> None:
        """Normal statements / negations for filler systems with nothing sampled."""
        sampled_names = {e.name for e in entities}
        sampled_keys = {e.key for e in entities}

        def allowed(c: Concept, typ: str) -> bool:
            key = f"{c.name}|{typ}"
            return c.name not in sampled_names and not (self._conflicts.get(key, frozenset()) & sampled_keys)

        for system in self.p["filler_systems"]:
            if blocks.get(system):
                continue
            concepts = self._by_system.get(system, [])
            normals = [c for c in concepts if c.type.startswith("NON-") and allowed(c, c.type)]
            negatable = [c for c in concepts if c.negatable and allowed(c, "NON-" + c.type)]
            chosen: list[Entity] = []
            if normals and (not negatable or rng.random() < 0.7):
                c = rng.choice(normals)
                chosen.append(Entity(c.name, c.type))
            if negatable and (not chosen or rng.random() < 0.5):
                n = rng.randint(1, min(len(negatable), self.p.get("filler_max_negations", 2)))
                chosen += [Entity(c.name, "NON-" + c.type, ABSENT) for c in rng.sample(negatable, n)]
            # Fillers must also agree with each other ("heart size is normal" vs "no cardiomegaly" ok).
            kept: list[Entity] = []
            for e in chosen:
                if not any(k.key in self._conflicts.get(e.key, ()) for k in kept):
                    kept.append(e)
            blocks[system] = [self._item(e) for e in kept]


def _alternation(phrases: list[str]) -> re.Pattern[str] | None:
    """A whole-word regex matching any of `phrases`, longest first (so "right lung" beats "lung")."""
    if not phrases:
        return None
    ordered = sorted(set(phrases), key=len, reverse=True)
    return re.compile(r"\b(?:" + "|".join(map(re.escape, ordered)) + r")\b")


def _system_of(concept: Concept, patterns: list[tuple[str, re.Pattern[str]]]) -> str | None:
    """The first system whose words occur in the concept's synonyms, or None."""
    text = " ; ".join(concept.synonyms)
    return next((system for system, pat in patterns if pat.search(text)), None)


def _conflict_sets(ontology: Ontology) -> dict[str, frozenset[str]]:
    """Entity key -> the keys it may not share a report with (sample.Conflicts)."""
    keys = ontology.all_keys()
    return {k: frozenset(keys[j] for j in js) for k, js in zip(keys, Conflicts(ontology).table(keys))}


def _fits(finding: _Item, anatomy: Concept) -> bool:
    """True when writing `finding` "in the <anatomy>" keeps its attributes as sampled: the side
    and zone the anatomy fixes equal the finding's (for the kinds the concept declares), and a
    zone of the finding is not left unwritten by an anatomy that fixes none."""
    attrs, declared = finding.entity.attributes, finding.concept.attributes
    if anatomy.anatomy_side and "laterality" in declared and attrs.get("laterality") != anatomy.anatomy_side:
        return False
    if anatomy.anatomy_zone and "zone" in declared and attrs.get("zone") != anatomy.anatomy_zone:
        return False
    if "zone" in attrs and "zone" in declared and not anatomy.anatomy_zone:
        return False
    return True
