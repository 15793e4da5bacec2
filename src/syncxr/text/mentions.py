"""Wording of one entity: synonym choice, count/severity/side/zone words, casing and articles.

`Wording.mention` turns an entity to write (concept, attributes, an anatomy woven into it) into a
noun phrase that the built-in extractor reads back as that entity (the contract in lexicon_extractor.py);
the grammar writer (grammar_writer.py) assembles those phrases into sentences and sections.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from typing import Any

from syncxr.records import Entity
from syncxr.text.lexicon import ATTRIBUTE_WORDS
from syncxr.text.negation import AFFIRMATIVE
from syncxr.text.phrasing import Mention, Nouns, alternation, shares_stem, squash
from syncxr.vocab import Concept, Ontology

_CLAUSE = re.compile(r"\b(?:is|are|was|were)\b")
_OF = re.compile(r"\b(?:of|with|in|under)\b")
# count value -> number words, unless the phrases file has `count` (all read back by the extractor)
_COUNT_WORDS = {"single": ["single", "solitary"], "two": ["two"], "multiple": ["multiple", "several", "numerous"]}
_PARTICIPLE = re.compile(r"\w+ed\b")  # "enlarged heart": takes "mildly", not "mild" / "left"


@dataclass
class Item:
    """One entity to write: its concept, how it is written, and an anatomy woven into it."""

    entity: Entity
    concept: Concept
    kind: str  # "present" | "uncertain" | "normal" | "negated" | "anatomy"
    system: str
    group: dict[str, Any]
    woven: Concept | None = None  # anatomy written as this finding's place
    rule: dict[str, Any] | None = None  # the `locations` rule that wove it
    woven_into: list["Item"] = field(default_factory=list)  # for anatomy: findings carrying it


class Wording:
    """Phrase-level choices, driven by the phrasing data file (grammar/phrases.yaml)."""

    def __init__(self, phrases: dict[str, Any], nouns: Nouns, ontology: Ontology) -> None:
        self.p, self.nouns = phrases, nouns
        self._avoid = set(phrases.get("avoid_synonyms", []))
        self._acronym = alternation(phrases.get("acronyms", []))
        self._case_words = {k.lower(): v for k, v in (phrases.get("case_words") or {}).items()}
        self._cased = alternation(list(self._case_words))
        self._no_article = set(phrases.get("no_article", []))
        anatomy = [s for c in ontology.concepts if c.type == "ANATOMY" for s in c.synonyms]
        self._anatomy_re = alternation(anatomy)

    def synonym(self, c: Concept, rng: random.Random, safe: bool, allowed: list[str] | None = None, ok=None) -> str:
        """A synonym of `c` (from `allowed` when given) passing `ok`: the preferred one with
        probability preferred_synonym_p (always when `safe`); never an avoided one if avoidable."""
        pool = [s for s in allowed or () if s.lower() in c.synonyms] or list(c.synonyms)
        cands = [s for s in pool if s not in self._avoid and (ok is None or ok(s))]
        cands = cands or [s for s in pool if ok is None or ok(s)] or [s for s in c.synonyms if s not in self._avoid] or list(c.synonyms)
        if safe or len(cands) == 1 or rng.random() < self.p.get("preferred_synonym_p", 0.5):
            return self.case(cands[0])
        return self.case(rng.choice(cands[1:]))

    def case(self, phrase: str) -> str:
        if self._acronym is not None:
            phrase = self._acronym.sub(lambda m: m.group(0).upper(), phrase)
        if self._cased is not None:
            phrase = self._cased.sub(lambda m: self._case_words[m.group(0).lower()], phrase)
        return phrase

    def makes_anatomy(self, prefix: str, syn: str) -> bool:
        if self._anatomy_re is None or not prefix:
            return False
        # An anatomy phrase that starts inside the prefix spans prefix + synonym.
        return any(m.start() <= len(prefix) for m in self._anatomy_re.finditer(f"{prefix} {syn}".lower()))

    def np(self, phrase: str, side: str = "") -> str:
        """'right lower lobe' -> 'the right lower lobe'; 'both hila' stays; with `side`, the side
        goes inside ('the left posterior ribs')."""
        if phrase.split()[0].lower() in self._no_article:
            return phrase
        return squash(f"the {side} {phrase}")

    def pick(self, options: list[str], rng: random.Random, safe: bool) -> str:
        return options[0] if safe else rng.choice(options)

    def anatomy_synonym(self, c: Concept, table: dict[str, list[str]] | None, rng: random.Random, safe: bool) -> str:
        return self.synonym(c, rng, safe, (table or {}).get(c.name), ok=lambda s: not _CLAUSE.search(s))

    def mention(self, item: Item, rng: random.Random, safe: bool = False) -> Mention:
        """The noun phrase for one entity: severity, place, synonym and woven anatomy."""
        c, attrs, g = item.concept, item.entity.attributes, item.group
        if item.kind in ("normal", "negated"):
            # a negated list member must not start with a word that ends a negation's scope
            # ("no edema, large lung volumes, ..." reads the volumes as present)
            neg_ok = lambda s: not _CLAUSE.search(s) and s.split()[0] not in AFFIRMATIVE  # noqa: E731
            syn = self.synonym(c, rng, safe, ok=None if item.kind == "normal" else neg_ok)
            return self.nouns.mention(syn, syn)
        sev, side, zone = (attrs.get(k) if k in c.attributes else None for k in ("severity", "laterality", "zone"))
        woven, rule = item.woven, item.rule or {}
        inside = side if rule.get("side_inside") and side != "bilateral" else None  # "of the left ribs"
        if woven is not None:  # what the anatomy states needs no words
            side = None if inside or side == woven.anatomy_side else side
            zone = None if zone == woven.anatomy_zone else zone
        count = attrs.get("count") if "count" in c.attributes else None
        plural = count in ("two", "multiple") or (count != "single" and "bilateral" in (side, woven.anatomy_side if woven else None))
        pre, post = self.place(g, side, zone, rng, safe)
        anatomy = self.anatomy_synonym(woven, rule.get("anatomy_synonyms"), rng, safe) if woven else ""
        allowed = (rule.get("host_synonyms") or {}).get(c.name)
        if allowed is None and side and not g.get("location") and not g.get("side_after"):
            allowed = (self.p.get("side_synonyms") or {}).get(c.name)
        prefix = " ".join(pre)

        def ok(s: str) -> bool:
            words = s.split()
            if count and not self.countable(s, plural):
                return False  # "two metastatic diseases", "a single pulmonary nodules"
            if (pre or sev or post or woven or count) and (_OF.search(s) or words[0] in ATTRIBUTE_WORDS):
                return False  # "large blunting of the ...", "left apical apical cap"
            adverb = words[0] in self.p.get("adverb_heads", [])
            if (pre or post) and (_PARTICIPLE.match(s) or adverb):
                return False  # "left enlarged hila"
            if sev and ((_PARTICIPLE.match(s) and not adverb) or s in self.p.get("no_severity", [])):
                return False  # "markedly loculated effusion", "large pleural fluid"
            if (zone or woven) and s in self.p.get("placed_synonyms", []):
                return False  # "hilar mass in the right lung base"
            if prefix and any(f" {prefix} {s}".endswith(f" {t}") for t in c.synonyms if len(t) > len(s)):
                return False  # "apical" + "pleural thickening" is another synonym: its zone is lost
            return not _CLAUSE.search(s) and not self.makes_anatomy(prefix, s) and not shares_stem(s, anatomy)

        syn = self.synonym(c, rng, safe, allowed, ok)
        noun, plural = self.nouns.pluralize(syn) if plural else (syn, self.nouns.number(syn))
        words = [self.pick(self.p.get("count", _COUNT_WORDS)[count], rng, safe)] if count else []
        words += [self.severity(c, syn, sev, rng, safe)] if sev else []
        text = squash(" ".join([*words, *pre, noun, *post]))
        if woven is not None:
            join = self.pick(rule["join"], rng, safe)
            np_ = self.np(anatomy, self.side_word(inside, rng, safe))
            text = join.format(m=text, a=np_, a0=anatomy, cm=rng.randint(3, 6))
        return Mention(text, syn, plural, self.nouns.article(text, plural, noun))

    def countable(self, syn: str, plural: bool) -> bool:
        """True when `syn` can take a number word: a count noun, singular unless `plural`."""
        words = syn.split()
        head = words[self.nouns.head_index(words)].lower()
        if self.nouns.is_mass(head) or head in self.nouns.no_plural:
            return False
        return plural or not self.nouns.number(syn)

    def severity(self, c: Concept, syn: str, sev: str, rng: random.Random, safe: bool) -> str:
        """Severity word fitting the concept: size for effusions, extent for opacities, an adverb
        before a participle ("mildly enlarged"), degree otherwise."""
        t = self.p["severity"]
        if syn.split()[0].lower() in self.p.get("adverb_heads", []):
            table = t["adverb"]
        elif c.size_words or c.name in self.p.get("severity_size", []):
            table = t["size"]
        elif c.name in self.p.get("severity_extent", []):
            table = t["extent"]
        else:
            table = t["degree"]
        return self.pick(table[sev], rng, safe)

    def side_word(self, side: str | None, rng: random.Random, safe: bool) -> str:
        return self.pick(self.p["laterality"][side], rng, safe) if side else ""

    def place(self, g: dict[str, Any], side: str | None, zone: str | None, rng: random.Random, safe: bool) -> tuple[list[str], list[str]]:
        """(words before, words after) the noun that state side and zone."""
        if not side and not zone:
            return [], []
        p = self.p
        if g.get("location"):
            if zone:
                bi = side == "bilateral"
                adjectives = {**p["zone_adjective"], **g.get("zone_adjective", {})}
                pre = {**p["zone_adjective_bilateral"], **g.get("zone_adjective_bilateral", {})}[zone] if bi else [
                    t.format(side=side or "") for t in adjectives[zone]
                ]
                post = p["zone_phrase_bilateral"][zone] if bi else [t.format(side=side or "") for t in p["zone_phrase"][zone]]
            elif side == "bilateral":
                pre, post = ["bilateral"], ["bilaterally"]
            else:
                pre = [t.format(side=side) for t in g.get("side_pre", ["{side}-sided"])]
                post = [f"on the {side}"]
            if safe or rng.random() < 0.5:
                return [squash(self.pick(pre, rng, safe))], []
            return [], [squash(rng.choice(post))]
        pre, post = [], []
        if side and g.get("side_after") and side != "bilateral":
            post.append(self.pick(g["side_after"], rng, safe).format(side=side))
        elif side:
            pre.append(self.side_word(side, rng, safe))
        if zone:
            post.append(self.pick(p["zone_phrase"][zone], rng, safe).format(side=""))
        return pre, [squash(w) for w in post]
