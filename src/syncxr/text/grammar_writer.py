"""The built-in grammar report writer: FINDINGS + IMPRESSION from a sampled entity set.

No model: phrasings are data (grammar/phrases.yaml) and choices come from a seeded RNG, so
`write(entities, seed, attempt)` is a pure function. Reports read like a radiologist's:

- FINDINGS go system by system (lines and tubes, heart and mediastinum, lungs, pleura, bones,
  upper abdomen); within a system the sentence order varies; negations share one sentence
  ("No pleural effusion or pneumothorax."); uncertain entities are hedged.
- Each concept group has its own wording: devices are "in place", diagnoses are "consistent
  with", post-surgical changes are "status post"; lung findings are placed ("right basilar
  atelectasis", "nodule in the left upper zone"), severity words fit the concept ("small
  effusion", "mild cardiomegaly", "minimal atelectasis", "markedly widened mediastinum"),
  bilateral count nouns are plural and singular count nouns take "a"/"an"; a sampled count is
  a number word ("a single nodule", "two nodules", "multiple bilateral nodules").
- An ANATOMY entity is woven into a finding that lies there ("consolidation in the right lower
  lobe", "PICC line with tip in the superior vena cava", "degenerative change of the thoracic
  spine"; rules in phrases.yaml `locations`), or else gets the standard statement radiologists
  make about it, worded so it reads back as the anatomy only ("The aorta is unremarkable.",
  "Stable cardiomediastinal silhouette.", "The lungs are otherwise unremarkable." beside a lung
  finding); never "X is well seen". Both sections use the same wording for an entity.
- `negative_summary=True` (off by default: the current verifier in "impression" mode wants every
  sampled key in the IMPRESSION and no other) writes a clinical IMPRESSION: the positive findings,
  then "No acute cardiopulmonary process." when every finding is incidental or chronic
  (the ontology's `chronic` flag); negations, normal statements and anatomy stay in FINDINGS,
  and a sampled whole-study normal ("No acute cardiopulmonary process") is said in the IMPRESSION
  only, where real reports put it (43% of IU IMPRESSIONs, 2% of FINDINGS).
- `error_rate` > 0 makes the writer slip like an LLM (writer_errors.py: drop, add or flip one
  entity) so that verification has something to catch.
- With `filler=True`, a system with nothing sampled gets a normal statement and/or a grouped
  negation of concepts of that system, never one that duplicates or contradicts a sampled entity.
- IMPRESSION holds exactly the sampled entities, with their attributes, numbered or not
  (unless `negative_summary`).

Mentions follow the extractor contract (lexicon_extractor.py): "[count] [severity] [laterality] [zone] <synonym>",
"<synonym> on the left / in the right lower zone", "<synonym> in the <anatomy synonym>",
"No <synonym>.", "There is no <a>, <b>, or <c>.". From the attempt given by `safe_after` on, only
the preferred synonyms and the first phrasing of each kind are used, so a late rewrite falls back
to the most conservative wording.
"""

from __future__ import annotations

import copy
import random
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from syncxr.errors import UserError
from syncxr.records import ABSENT, UNCERTAIN, Entity
from syncxr.text.base import WriteOneByOne
from syncxr.text.mentions import Item, Wording
from syncxr.text.phrasing import (
    Mention, Nouns, cap, join_list, render, templates_for, word_pattern,
)
from syncxr.text.writer_errors import WriterErrors
from syncxr.vocab.conflicts import Conflicts, is_negated
from syncxr.vocab import Concept, Ontology, load_ontology

__all__ = ["GrammarWriter", "join_list", "load_phrases"]

PHRASES_PATH = Path(__file__).with_name("grammar") / "phrases.yaml"
_KINDS = ("present", "uncertain", "normal", "negated")
_DEFAULT_RULE: dict[str, Any] = {"join": ["{m} in {a}"]}


def load_phrases(path: str | Path = PHRASES_PATH) -> dict[str, Any]:
    """The phrasing data file, checked (see grammar/phrases.yaml for its fields): a private copy
    for each caller, so no writer can change another's phrases."""
    return copy.deepcopy(_load_phrases(str(path)))


@lru_cache(maxsize=4)
def _load_phrases(path: str) -> dict[str, Any]:
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text())
    except FileNotFoundError:
        raise UserError(f"writer phrases file not found: {p}") from None
    need = ("systems", "system_words", "fallback_system", "filler_systems", "severity", "laterality",
            "zone_adjective", "zone_phrase", "anatomy_sentences", "findings", "impression")
    missing = [k for k in need if k not in (data or {})]
    if missing:
        raise UserError(f"{p}: missing keys {missing}; compare with the bundled {PHRASES_PATH.name}")
    for section in ("findings", "impression"):
        absent = [k for k in _KINDS if not data[section].get(k)]
        if absent:
            raise UserError(f"{p}: section {section!r} lacks phrasings for {absent}")
    if not any(not g.get("anatomy") for g in data["anatomy_sentences"]):
        raise UserError(f"{p}: anatomy_sentences needs a catch-all entry (anatomy: [])")
    return data


class GrammarWriter(WriteOneByOne):
    """Grammar-based report writer (module docstring); `write` is deterministic in (seed, attempt)."""

    backend_id = "grammar-v9"  # bump whenever the wording changes (recorded per sample)
    uses_feedback = False  # a rewrite is a new phrasing (attempt), not a correction

    def __init__(
        self,
        ontology: Ontology | str | Path | None = None,
        filler: bool = True,
        phrases: str | Path | None = None,
        safe_after: int = 2,
        negative_summary: bool = False,
        error_rate: float = 0.0,
    ) -> None:
        self.ontology = ontology if isinstance(ontology, Ontology) else load_ontology(ontology)
        self.filler = filler
        self.safe_after = safe_after
        self.negative_summary = negative_summary
        self.errors = WriterErrors(self.ontology, error_rate)
        self.p = load_phrases(phrases or PHRASES_PATH)
        self.nouns = Nouns(self.p)
        self._index()

    def _index(self) -> None:
        """Per-concept group and system, conflict sets, location rules and word patterns."""
        self._by_name = self.ontology.by_name
        self.group: dict[str, dict[str, Any]] = {}
        for name, g in (self.p.get("groups") or {}).items():
            for c in g.get("concepts", []):
                self.group[c] = {**g, "name": name}
        patterns = [(s, word_pattern(w)) for s, w in self.p["system_words"].items()]
        by_region = self.p.get("region_systems") or {}
        placed = {c.name: self.group.get(c.name, {}).get("system") or by_region.get(c.region) or _system_of(c, patterns)
                  for c in self.ontology.concepts}
        self.system = {name: system or self.p["fallback_system"] for name, system in placed.items()}
        self._placed = {name for name, system in placed.items() if system}  # not by the fallback
        self._by_system: dict[str, list[Concept]] = {}
        for c in self.ontology.concepts:
            self._by_system.setdefault(self.system[c.name], []).append(c)
        self._conflicts = _conflict_sets(self.ontology)
        self._rules = self.p.get("locations") or []
        # anatomy the data knows: woven by `locations` rules only, else a technique sentence
        self._ruled = {n for r in self._rules for n in r["anatomy"]}
        self._ruled |= {n for g in self.p["anatomy_sentences"] for n in g.get("anatomy", [])}
        self.words = Wording(self.p, self.nouns, self.ontology)

    # ---- public -----------------------------------------------------------------------------

    @property
    def adds_filler(self) -> bool:
        return self.filler

    def write(self, entities: list[Entity], seed: int, attempt: int = 0, feedback: str = "") -> tuple[str, str]:
        """(findings, impression) for `entities`; a different `attempt` gives another phrasing."""
        rng = random.Random(f"{seed}:{attempt}")  # string seeds hash stably across processes
        safe = attempt >= self.safe_after
        entities = self.errors.apply(entities, f"{seed}:{attempt}")  # a simulated slip, at error_rate
        items = [self._item(e) for e in entities]
        self._weave(items, rng)
        # One wording per entity for the whole report: both sections use the same mention.
        memo: dict[Any, Any] = {}
        findings = self._findings(items, entities, rng, safe, memo)
        impression = self._impression(items, rng, safe, memo)
        return findings, impression

    # ---- planning ---------------------------------------------------------------------------

    def _item(self, e: Entity) -> Item:
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
        return Item(e, c, kind, self.system[c.name], self.group.get(c.name, {}))

    def _rule(self, host: Concept, anatomy: Concept) -> dict[str, Any] | None:
        """The location rule that lets `anatomy` place `host`; for anatomy the data does not
        know (custom ontologies) a plain "in the <anatomy>" within one lung/pleura system."""
        for r in self._rules:
            if host.name in r["hosts"] and anatomy.name in r["anatomy"]:
                return r
        if anatomy.name in self._ruled:  # the rules say where this anatomy goes
            return None
        same = self.system[host.name] == self.system[anatomy.name] in self.p.get("weave_systems", [])
        return _DEFAULT_RULE if same and anatomy.name in self._placed else None

    def _weave(self, items: list[Item], rng: random.Random) -> None:
        """Attach each anatomy to a finding it can place, when there is one."""
        findings = [i for i in items if i.kind in ("present", "uncertain")]
        for a in (i for i in items if i.kind == "anatomy"):
            fits = []
            for f in findings:
                rule = self._rule(f.concept, a.concept) if f.woven is None else None
                if rule is not None and _fits(f, a.concept, rule):
                    fits.append((f, rule))
            if fits:
                f, rule = rng.choice(fits)
                f.woven, f.rule = a.concept, rule
                a.woven_into.append(f)

    def mention(self, item: Item, rng: random.Random, safe: bool = False) -> Mention:
        """The noun phrase for one entity (see `Wording.mention`)."""
        return self.words.mention(item, rng, safe)

    # ---- sentences --------------------------------------------------------------------------

    def _templates(self, item: Item, section: str, m: Mention) -> list[str]:
        own = item.group.get(section) or {}
        kind = "located" if item.kind == "present" and item.woven is not None and own.get("located") else item.kind
        options = templates_for(own.get(kind) or [], m.synonym)
        return options or templates_for(self.p[section][item.kind], m.synonym)

    def _mention(self, item: Item, rng: random.Random, safe: bool, memo: dict[Any, Any]) -> Mention:
        if id(item) not in memo:
            memo[id(item)] = self.words.mention(item, rng, safe)
        return memo[id(item)]

    def _anatomy_sentence(self, item: Item, section: str, rng: random.Random, safe: bool, memo: dict[Any, Any]) -> str:
        """A standard statement about an anatomy no finding carries ("The aorta is unremarkable.");
        its `otherwise` form when the report has a finding in the same system."""
        entries = self.p["anatomy_sentences"]
        g = next((e for e in entries if item.concept.name in e.get("anatomy", [])), None)
        g = g or next(e for e in entries if not e.get("anatomy"))
        said = memo.get(("anatomy", id(item)))
        if said is not None:  # the IMPRESSION repeats the FINDINGS statement word for word
            return said
        a = self.words.anatomy_synonym(item.concept, g.get("anatomy_synonyms"), rng, safe)
        np_ = self.words.np(a)
        busy = memo.get("busy_systems", set())
        near = next((set(grp) for grp in self.p.get("otherwise_groups", []) if item.system in grp), {item.system})
        options = g.get(f"{section}_otherwise") if busy & near else None
        if memo.get("diffuse"):  # "ARDS ... the right middle lobe is otherwise clear" would contradict
            options = g.get(f"{section}_diffuse") or options
        tpl = self.words.pick(options or g[section], rng, safe)
        said = tpl.format(a=np_, A=cap(np_), a0=a, be="are" if self.nouns.number(a) else "is")
        memo[("anatomy", id(item))] = said
        return said

    def _sentences(self, items: list[Item], section: str, rng: random.Random, safe: bool, memo: dict[Any, Any]) -> list[str]:
        """Sentences for the items of one block: one per finding, negations grouped (<= 3 each)."""
        out = []
        for it in items:
            if it.kind in ("present", "uncertain", "normal"):
                m = self._mention(it, rng, safe, memo)
                out.append(render(self.words.pick(self._templates(it, section, m), rng, safe), m))
            elif it.kind == "anatomy" and not it.woven_into:
                out.append(self._anatomy_sentence(it, section, rng, safe, memo))
        negated = [it for it in items if it.kind == "negated"]
        for start in range(0, len(negated), 3):
            mentions = [self._mention(it, rng, safe, memo) for it in negated[start:start + 3]]
            tpl = self.words.pick(self.p[section]["negated"], rng, safe)
            out.append(tpl.format(list=join_list([m.text for m in mentions]), be=mentions[0].be))
        return out

    def _findings(self, items: list[Item], entities: list[Entity], rng: random.Random, safe: bool,
                  memo: dict[Any, Any]) -> str:
        memo["busy_systems"] = {it.system for it in items if it.kind in ("present", "uncertain")}
        diffuse = set(self.p.get("diffuse_findings", []))
        memo["diffuse"] = any(it.kind in ("present", "uncertain") and it.concept.name in diffuse
                              and not it.entity.attributes.get("zone")
                              and it.entity.attributes.get("laterality") in (None, "bilateral") for it in items)
        blocks: dict[str, list[Item]] = {s: [] for s in self.p["systems"]}
        for it in items:
            if self.negative_summary and self._global_normal(it):
                continue  # "No acute cardiopulmonary process" is an IMPRESSION statement (2% of real FINDINGS)
            blocks.setdefault(it.system, []).append(it)
        if self.filler:
            self._add_fillers(blocks, entities, rng)
        paragraph = []
        for system_items in blocks.values():
            sentences = self._sentences(system_items, "findings", rng, safe, memo)
            rng.shuffle(sentences)
            paragraph.extend(sentences)
        return " ".join(paragraph)

    def _impression(self, items: list[Item], rng: random.Random, safe: bool, memo: dict[Any, Any]) -> str:
        order = {"present": 0, "uncertain": 1, "normal": 2, "negated": 3, "anatomy": 4}
        ranked = sorted(items, key=lambda it: order[it.kind])  # stable: keeps system order
        if self.negative_summary:
            ranked = self._clinical(ranked)
        sentences = self._sentences(ranked, "impression", rng, safe, memo)
        if self.negative_summary and self._summary_fits(items):
            sentences.append(self.words.pick(self.p["negative_summary"], rng, safe))
        if len(sentences) > 1 and rng.random() < self.p.get("numbered_p", 0.5):
            return "\n".join(f"{i}. {s}" for i, s in enumerate(sentences, 1))
        return " ".join(sentences)

    @staticmethod
    def _global_normal(it: Item) -> bool:
        """A whole-study normal statement ("No acute cardiopulmonary process", "Normal chest")."""
        return it.kind == "normal" and it.concept.chexpert == "No Finding"

    def _clinical(self, ranked: list[Item]) -> list[Item]:
        """A clinical IMPRESSION's items: the positive findings (with the anatomy woven into them)
        and sampled global normal statements; the rest is said in FINDINGS only."""
        return [it for it in ranked if it.kind in ("present", "uncertain") or self._global_normal(it)]

    def _summary_fits(self, items: list[Item]) -> bool:
        """A standard negative summary ("No acute cardiopulmonary process.") closes the IMPRESSION
        when no sampled entity conflicts with it (the ontology's `excludes: [acute]`: any finding
        neither `chronic` nor a device) and none already says it."""
        name = self.p.get("negative_summary_concept", "no_acute_process")
        summary = self._by_name.get(name)
        if summary is None:
            return False
        clashes = self._conflicts.get(summary.keys()[0], frozenset())
        for it in items:
            if self._global_normal(it):
                return False
            if it.kind in ("present", "uncertain") and it.entity.key in clashes:
                return False
        return True

    # ---- fillers ----------------------------------------------------------------------------

    def _add_fillers(self, blocks: dict[str, list[Item]], entities: list[Entity], rng: random.Random) -> None:
        """Normal statements / negations for filler systems with nothing sampled."""
        sampled_names = {e.name for e in entities}
        sampled_keys = {e.key for e in entities}

        def allowed(c: Concept, typ: str) -> bool:
            key = f"{c.name}|{typ}"
            if self.negative_summary and c.chexpert == "No Finding":
                return False  # the IMPRESSION's summary says it; real FINDINGS rarely do (2%)
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


def _system_of(concept: Concept, patterns: list[tuple[str, re.Pattern[str]]]) -> str | None:
    """The first system whose words occur in the concept's synonyms, or None."""
    text = " ; ".join(concept.synonyms)
    return next((system for system, pat in patterns if pat.search(text)), None)


def _conflict_sets(ontology: Ontology) -> dict[str, frozenset[str]]:
    """Entity key -> the keys it may not share a report with (sample.Conflicts), plus, for the
    writer's own fillers, the negation of what a finding implies ("hydropneumothorax" and
    "no pleural effusion")."""
    keys = ontology.all_keys()
    out = {k: set(keys[j] for j in js) for k, js in zip(keys, Conflicts(ontology).table(keys))}
    by = ontology.by_name
    for c in ontology.concepts:
        for other in c.implies_present:
            pos, neg = c.keys()[0], f"{other}|NON-{by[other].type}"
            if neg in out and pos in out:
                out[pos].add(neg)
                out[neg].add(pos)
    return {k: frozenset(v) for k, v in out.items()}


def _fits(finding: Item, anatomy: Concept, rule: dict[str, Any]) -> bool:
    """True when writing `finding` at `anatomy` keeps its attributes as sampled: the side and zone
    the anatomy fixes equal the finding's (for the kinds the concept declares); a zone of the
    finding is not left unwritten by an anatomy that fixes none; with `strict`, the same for side."""
    attrs, declared = finding.entity.attributes, finding.concept.attributes
    side, zone = attrs.get("laterality"), attrs.get("zone")
    if "laterality" in declared:
        if anatomy.anatomy_side and side != anatomy.anatomy_side:
            return False
        if rule.get("strict") and side and not anatomy.anatomy_side:
            return False
        if rule.get("side_inside") and side == "bilateral":
            return False
    if "zone" in declared and (zone != anatomy.anatomy_zone if anatomy.anatomy_zone else zone):
        return False
    return True
