"""Image-report consistency of a built-in dataset: the "Done when" figures of issue 10.

    syncxr generate --config configs/generate/quick.yaml --out /tmp/world-run --n 1000
    .venv/bin/python benchmarks/world_consistency.py /tmp/world-run --reports 10000

Reads a dataset folder and prints one table:

- mask coverage: share of the asserted (present or hedged) ABNORMALITY/DISEASE entities of the
  sampled set that have a linked, non-empty mask (linked = the mask is named after the concept;
  datasets written before masks carried concept names are linked through the concept's `render`);
- ring contrast: share of linked masks whose mean grey level differs from a ring around them by
  at least the ring's standard deviation or by 6 grey levels;
- side correctness: share of linked masks of sided entities drawn on the stated side (most mask
  pixels in that image half; patient right = image left) or, for "bilateral", with at least 15%
  of the mask in each half (sides a concept does not allow, e.g. a "bilateral" mediastinal
  shift, are counted apart: the sampler should not draw them);
- labels: abnormal reports (a present/hedged finding other than a support device) labelled
  no_finding = 1;
- contradictions: reports whose extracted entities (both sections, built-in extractor) hold a
  conflicting pair (`text.sample.Conflicts`: one concept both present and absent, a declared
  `contradicts` pair, a "No Finding" statement with a finding), over the dataset and over
  `--reports` extra reports written by the grammar writer from balanced samples; "implied
  contradictions" count a finding stated with a concept it `implies_present` stated absent;
- text: "well seen/demonstrated" rate, IMPRESSION median words, standard negative summary rate.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pyarrow.parquet as pq

from syncxr.records import ABSENT, Entity
from syncxr.report.consistency import FINDING_TYPES, decode, midline_of, on_side, visible
from syncxr.text.lexicon_extractor import LexiconExtractor
from syncxr.text.sample import BalancedSampler, Conflicts
from syncxr.vocab import Ontology, load_ontology

WELL_SEEN = re.compile(r"\bwell (?:seen|demonstrated)\b|\bclearly demonstrated\b", re.I)
COMPARISON = re.compile(r"\b(?:unchanged|stable|new|increased|decreased|improved|resolved|again)\b", re.I)
HEDGE = re.compile(r"\b(?:possible|may represent|cannot be excluded|likely|suggestive of|versus|probable)\b", re.I)
NEGATIVE_SUMMARY = re.compile(r"\bno acute (?:cardiopulmonary|intrathoracic)\b", re.I)


def _png(data: bytes) -> np.ndarray:
    return decode(data)


def asserted_abnormal(entities: Iterable[Entity], ontology: Ontology) -> list[Entity]:
    by = ontology.by_name
    return [e for e in entities if e.assertion != ABSENT and e.name in by and by[e.name].type in FINDING_TYPES]


def _entities(js: str) -> list[Entity]:
    return [Entity(**{k: v for k, v in d.items() if k in Entity.__dataclass_fields__}) for d in json.loads(js)]


def contradictory(keys: set[str], conflicts: Conflicts) -> list[tuple[str, str]]:
    ks = sorted(keys)
    return [(a, b) for i, a in enumerate(ks) for b in ks[i + 1:] if conflicts.conflict(a, b)]


def implied_contradictions(keys: set[str], ontology: Ontology) -> list[tuple[str, str]]:
    """A present/hedged concept whose `implies_present` concept is stated absent ("hydro-
    pneumothorax ... no pleural effusion"): not a declared pair, but still a contradiction."""
    by = ontology.by_name
    absent = {k.split("|")[0] for k in keys if k.split("|")[1].startswith("NON-")}
    out = []
    for k in keys:
        name, typ = k.split("|")
        if typ in FINDING_TYPES and name in by:
            out += [(k, f"{b}|absent") for b in by[name].implies_present if b in absent]
    return out


def same_terms(extractor: LexiconExtractor, findings: str, impression: str) -> bool:
    """Every finding named in the IMPRESSION is named with a wording FINDINGS uses too."""
    words: dict[str, set[str]] = {}
    for e in extractor.extract(findings, "findings"):
        words.setdefault(e.key, set()).add(e.text.lower())
    return all(e.text.lower() in words.get(e.key, {e.text.lower()})
               for e in extractor.extract(impression, "impression") if not e.key.endswith("|ANATOMY"))


def extracted_keys(extractor: LexiconExtractor, findings: str, impression: str) -> set[str]:
    keys = set()
    for section, text in (("findings", findings), ("impression", impression)):
        keys |= {e.key for e in extractor.extract(text, section)}
    return keys


class Tally:
    def __init__(self) -> None:
        self.n: dict[str, int] = {}
        self.ok: dict[str, int] = {}
        self.examples: dict[str, list[str]] = {}

    def add(self, what: str, ok: bool, example: str = "") -> None:
        self.n[what] = self.n.get(what, 0) + 1
        self.ok[what] = self.ok.get(what, 0) + int(ok)
        if not ok and example and len(self.examples.setdefault(what, [])) < 8:
            self.examples[what].append(example)

    def rate(self, what: str) -> str:
        n = self.n.get(what, 0)
        return f"{self.ok.get(what, 0)}/{n} = {100 * self.ok.get(what, 0) / n:.1f}%" if n else "n/a"


def measure_dataset(folder: Path, ontology: Ontology, extractor: LexiconExtractor, t: Tally) -> dict[str, Any]:
    by = ontology.by_name
    conflicts = Conflicts(ontology)
    cols = ["entities", "masks", "image_png", "findings", "impression", "no_finding", "qc"]
    table = pq.read_table(sorted((folder / "shards").glob("*.parquet")), columns=cols).to_pydict()
    imp_words, missing_by_concept = [], {}
    for ents_js, masks, png, fnd, imp, nf, qc in zip(*(table[c] for c in cols)):
        ents = _entities(ents_js)
        image = _png(png)
        named = {m["name"]: m["png"] for m in masks}
        abnormal = asserted_abnormal(ents, ontology)
        for e in abnormal:
            c = by[e.name]
            data = named.get(e.name) or (named.get(c.render) if c.render else None)
            mask = _png(data) if data else None
            linked = mask is not None and bool(mask.any())
            t.add("mask coverage", linked, e.name)
            if c.render or c.type not in FINDING_TYPES:  # leaves out concepts declared invisible (kyphosis)
                t.add("mask coverage, drawable concepts", linked, e.name)
            if not linked:
                missing_by_concept[e.name] = missing_by_concept.get(e.name, 0) + 1
                continue
            t.add("ring contrast", visible(image, mask), e.name)
            side = e.attributes.get("laterality") if "laterality" in c.attributes else None
            allowed = c.allowed("laterality") if hasattr(c, "allowed") else ("left", "right", "bilateral")
            if side and side in allowed:
                t.add("side correct", on_side(mask, side, midline_of(qc)), f"{e.name}:{side}")
            elif side:  # sampled against the concept's allowed values ("bilateral mediastinal shift")
                t.add("plausible laterality sampled", False, f"{e.name}:{side}")
        real = [e for e in abnormal if by[e.name].chexpert != "Support Devices"]
        if real:
            t.add("abnormal not no_finding", nf != 1.0, ",".join(e.name for e in real))
        if abnormal:
            t.add("abnormal (incl. devices) not no_finding", nf != 1.0, ",".join(e.name for e in abnormal))
        keys = extracted_keys(extractor, fnd, imp)
        pairs = contradictory(keys, conflicts)
        t.add("dataset reports without contradiction", not pairs, f"{pairs}")
        implied = implied_contradictions(keys, ontology)
        t.add("dataset reports without implied contradiction", not implied, f"{implied} <- {fnd} || {imp}")
        t.add("no 'well seen' filler", not WELL_SEEN.search(f"{fnd} {imp}"))
        t.add("one term per concept across sections", same_terms(extractor, fnd, imp), f"{fnd} || {imp}")
        t.add("comparison wording (real ~24%)", bool(COMPARISON.search(f"{fnd} {imp}")))
        t.add("hedging (real ~8%)", bool(HEDGE.search(f"{fnd} {imp}")))
        t.add("impression has negative summary", bool(NEGATIVE_SUMMARY.search(imp)))
        imp_words.append(len(imp.split()))
    return {"impression_median_words": statistics.median(imp_words) if imp_words else 0,
            "missing_by_concept": dict(sorted(missing_by_concept.items(), key=lambda kv: -kv[1]))}


def measure_written(n: int, ontology: Ontology, extractor: LexiconExtractor, t: Tally, seed: int,
                    writer_options: dict[str, Any]) -> None:
    from syncxr.text.grammar_writer import GrammarWriter

    writer = GrammarWriter(ontology=ontology, **writer_options)
    conflicts = Conflicts(ontology)
    sampler = BalancedSampler(ontology, seed=seed)
    for i, ents in enumerate(sampler.sample(n)):
        fnd, imp = writer.write(ents, seed=seed * 1_000_003 + i)
        keys = extracted_keys(extractor, fnd, imp)
        pairs = contradictory(keys, conflicts)
        t.add("written reports without contradiction", not pairs, f"{pairs} <- {fnd} || {imp}")
        implied = implied_contradictions(keys, ontology)
        t.add("written reports without implied contradiction", not implied, f"{implied} <- {fnd} || {imp}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dataset", type=Path, help="a dataset folder written by `syncxr generate`")
    ap.add_argument("--reports", type=int, default=0, help="extra grammar-written reports to check for contradictions")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--writer-option", action="append", default=[], metavar="KEY=JSON",
                    help="GrammarWriter option for --reports, e.g. negative_summary=true")
    ap.add_argument("--examples", action="store_true", help="print failing examples")
    args = ap.parse_args()
    ontology = load_ontology()
    extractor = LexiconExtractor(ontology=ontology)
    t = Tally()
    extra = measure_dataset(args.dataset, ontology, extractor, t)
    if args.reports:
        opts = {k: json.loads(v) for k, v in (o.split("=", 1) for o in args.writer_option)}
        measure_written(args.reports, ontology, extractor, t, args.seed, opts)
    print(f"{'measure':45s} value")
    for what in t.n:
        print(f"{what:45s} {t.rate(what)}")
    print(f"{'impression median words':45s} {extra['impression_median_words']}")
    print(f"{'entities without a mask (by concept)':45s} {extra['missing_by_concept']}")
    if args.examples:
        for what, ex in t.examples.items():
            print(f"\n{what}:")
            for x in ex:
                print("   ", x[:400])


if __name__ == "__main__":
    main()
