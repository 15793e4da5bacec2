"""The count attribute ("a single nodule", "two nodules", "multiple masses") through the text
side of the world: sampled, written by the grammar writer, read back by the lexicon extractor
and checked by the verifier, over every concept of the bundled ontology that declares it."""

from __future__ import annotations

import pytest

from syncxr.records import ABSENT, PRESENT, Entity
from syncxr.text.grammar_writer import GrammarWriter
from syncxr.text.lexicon_extractor import LexiconExtractor
from syncxr.text.sample import BalancedSampler
from syncxr.text.verify import Verifier
from syncxr.vocab import COUNT, load_ontology

ONTO = load_ontology()
COUNTED = [c for c in ONTO.concepts if "count" in c.attributes]


@pytest.fixture(scope="module")
def extractor():
    return LexiconExtractor(ONTO)


@pytest.fixture(scope="module")
def writer():
    return GrammarWriter(filler=False)


def _plans(concept):
    sides = [None, *concept.allowed("laterality")] if "laterality" in concept.attributes else [None]
    for count in concept.allowed("count"):
        for side in sides:
            if side == "bilateral" and count == "single":
                continue  # the sampler never makes one lesion on both sides
            yield {"count": count, **({"laterality": side} if side else {})}


def test_the_countable_concepts_are_the_expected_ones():
    assert {"nodule", "mass", "granuloma", "fracture", "metastatic_disease"} <= {c.name for c in COUNTED}


@pytest.mark.parametrize("concept", COUNTED, ids=lambda c: c.name)
def test_every_count_round_trips_writer_extractor_verifier(concept, writer, extractor):
    verifier = Verifier(extractor, mode="exact")
    for attrs in _plans(concept):
        for seed in range(4):
            ents = [Entity(concept.name, concept.type, PRESENT, dict(attrs))]
            findings, impression = writer.write(ents, seed)
            verdict = verifier.check(ents, findings, impression)
            assert verdict.ok, (attrs, findings, impression, verdict.detail)
            read = [e for e in extractor.extract(impression) if e.name == concept.name]
            assert read and read[0].attributes.get("count") == attrs["count"], (attrs, impression)


@pytest.mark.parametrize(
    "text, count",
    [
        ("Two nodules in the right upper lobe.", "two"),
        ("Multiple bilateral pulmonary nodules.", "multiple"),
        ("A single nodule.", "single"),
        ("Solitary pulmonary nodule in the left lung.", "single"),
        ("Several left rib fractures.", "multiple"),
        ("Numerous calcified granulomas.", "multiple"),
        ("Bilateral nodules.", "multiple"),  # a plural without a number
        ("Pulmonary metastases.", "multiple"),
        ("Calcified granulomata.", "multiple"),
        ("A nodule in the left lower lobe.", None),  # a singular without a number states none
        ("Lung mass.", None),
    ],
)
def test_extractor_reads_number_words_and_plurals(extractor, text, count):
    found = [e for e in extractor.extract(text) if e.type in ("ABNORMALITY", "DISEASE")]
    assert len(found) == 1 and found[0].attributes.get("count") == count


def test_negated_and_uncountable_mentions_carry_no_count(extractor):
    (neg,) = extractor.extract("No pulmonary nodules.")
    assert neg.assertion == ABSENT and "count" not in neg.attributes
    cons = [e for e in extractor.extract("Multiple areas of consolidation.") if e.name == "consolidation"]
    assert cons and "count" not in cons[0].attributes  # consolidation declares no count


def test_verifier_rejects_a_wrong_count_and_accepts_an_unstated_one(extractor):
    v = Verifier(extractor, mode="exact")
    two = [Entity("nodule", "ABNORMALITY", PRESENT, {"count": "two"})]
    bad = v.check(two, "A single nodule.", "A single nodule.")
    assert not bad.ok and bad.reason == "attribute_mismatch" and "two" in bad.detail
    assert v.check(two, "Two nodules.", "Two nodules.").ok
    assert not v.check(two, "Pulmonary nodules.", "Pulmonary nodules.").ok  # plural reads "multiple"
    open_ = [Entity("nodule", "ABNORMALITY", PRESENT, {"laterality": "bilateral"})]
    assert v.check(open_, "Bilateral nodules.", "Bilateral nodules.").ok  # no count planned: any number fits


def test_writer_is_deterministic_and_words_the_count(writer):
    ents = [Entity("nodule", "ABNORMALITY", PRESENT, {"count": "two", "laterality": "right"})]
    assert writer.write(ents, 7) == writer.write(ents, 7)
    texts = {writer.write(ents, s)[1].lower() for s in range(6)}
    assert all(t.startswith("two ") and "nodules" in t for t in texts), texts


def test_sampler_draws_counts_and_never_a_single_bilateral_lesion():
    s = BalancedSampler(ONTO, k=(4, 5), m=(1, 2), seed=3, p_attribute=1.0)
    seen = {}
    for report in s.sample(100):
        for e in report:
            if e.assertion == ABSENT or "count" not in ONTO.concept(e.name).attributes:
                assert "count" not in e.attributes
                continue
            assert e.attributes["count"] in ONTO.concept(e.name).allowed("count")
            assert not (e.attributes["count"] == "single" and e.attributes.get("laterality") == "bilateral")
            seen[e.attributes["count"]] = seen.get(e.attributes["count"], 0) + 1
    assert set(seen) == set(COUNT), seen


def test_singular_words_ending_in_s_are_not_plurals(extractor):
    for text in ("Metastasis.", "Lung mass.", "Pulmonary mass."):
        (e,) = extractor.extract(text)
        assert "count" not in e.attributes, text


def test_llm_prompt_lists_the_count():
    from syncxr.text.llm import format_entities

    text = format_entities([Entity("nodule", "ABNORMALITY", PRESENT, {"laterality": "right", "count": "two"})], ONTO)
    assert "nodule [right, two]" in text
