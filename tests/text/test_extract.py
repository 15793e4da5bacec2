"""The built-in lexicon extractor: assertion, attributes, spans, robustness and the writer contract."""

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syncxr.records import ABSENT, PRESENT, UNCERTAIN, Entity
from syncxr.text.base import EXTRACTORS, Extractor
from syncxr.text.lexicon_extractor import LexiconExtractor, split_sentences
from syncxr.text.merge import extract_report, merge_entities
from syncxr.vocab import load_ontology


@pytest.fixture(scope="module")
def ontology():
    return load_ontology()


@pytest.fixture(scope="module")
def x(ontology):
    return LexiconExtractor(ontology)


def read(x, text):
    """{concept: (assertion, attributes)} of the non-anatomy entities."""
    return {e.name: (e.assertion, e.attributes) for e in x.extract(text) if e.type != "ANATOMY"}


# (sentence, expected {concept: assertion}) from real-style report phrasings
ASSERTION_CASES = [
    ("The lungs are clear.", {"clear_lungs": PRESENT}),
    ("No acute cardiopulmonary process.", {"no_acute_process": PRESENT}),
    ("Heart size is mildly enlarged.", {"cardiomegaly": PRESENT}),
    ("Blunting of the left costophrenic angle may represent a small effusion.", {"pleural_effusion": UNCERTAIN}),
    ("Pneumothorax cannot be excluded.", {"pneumothorax": UNCERTAIN}),
    ("No pleural effusion or pneumothorax.", {"pleural_effusion": ABSENT, "pneumothorax": ABSENT}),
    ("Interval resolution of the right pleural effusion.", {"pleural_effusion": ABSENT}),
    ("XXXX opacity in the right lower lobe", {"lung_opacity": PRESENT}),
    ("There is no effusion, pneumothorax, or consolidation.",
     {"pleural_effusion": ABSENT, "pneumothorax": ABSENT, "consolidation": ABSENT}),
    ("No evidence of pneumonia.", {"pneumonia": ABSENT}),
    ("Lungs are clear without focal consolidation.", {"clear_lungs": PRESENT, "consolidation": ABSENT}),
    ("The lungs are clear of consolidation.", {"clear_lungs": PRESENT, "consolidation": ABSENT}),
    ("Free of pneumothorax.", {"pneumothorax": ABSENT}),
    ("Negative for pneumothorax.", {"pneumothorax": ABSENT}),
    ("Pneumothorax is not seen.", {"pneumothorax": ABSENT}),
    ("The previously seen right pneumothorax has resolved.", {"pneumothorax": ABSENT}),
    ("The endotracheal tube has been removed.", {"et_tube": ABSENT}),
    ("Possible small left pleural effusion.", {"pleural_effusion": UNCERTAIN}),
    ("Opacity at the right base may represent atelectasis.", {"lung_opacity": PRESENT, "atelectasis": UNCERTAIN}),
    ("Bibasilar opacities, likely atelectasis.", {"lung_opacity": PRESENT, "atelectasis": PRESENT}),  # the favoured reading
    ("Atelectasis or pneumonia in the left lower lobe.", {"atelectasis": PRESENT, "pneumonia": PRESENT}),  # a named differential
    ("Atelectasis versus pneumonia.", {"atelectasis": PRESENT, "pneumonia": PRESENT}),
    ("Opacity may represent atelectasis versus pneumonia.",
     {"lung_opacity": PRESENT, "atelectasis": UNCERTAIN, "pneumonia": UNCERTAIN}),
    ("Findings are suspicious for pneumonia.", {"pneumonia": UNCERTAIN}),
    ("Cannot exclude early pneumonia.", {"pneumonia": UNCERTAIN}),
    ("No focal consolidation, but there is a small left effusion.",
     {"consolidation": ABSENT, "pleural_effusion": PRESENT}),
    ("No pneumothorax; moderate right pleural effusion.", {"pneumothorax": ABSENT, "pleural_effusion": PRESENT}),
    ("No significant interval change in the small left pleural effusion.", {"pleural_effusion": PRESENT}),
    ("Unchanged moderate cardiomegaly.", {"cardiomegaly": PRESENT}),
    ("Heart size is normal.", {"normal_heart_size": PRESENT}),
    ("The cardiomediastinal silhouette is within normal limits.", {"normal_mediastinum": PRESENT}),
    ("Costophrenic angles are sharp.", {"sharp_costophrenic_angles": PRESENT}),
    ("Left pleural effusion is unlikely, though pneumonia is possible.",
     {"pleural_effusion": ABSENT, "pneumonia": UNCERTAIN}),
    ("Opacity is unlikely to represent pneumonia.", {"lung_opacity": PRESENT, "pneumonia": ABSENT}),
    ("? pneumonia", {"pneumonia": UNCERTAIN}),
    ("No pnuemothorax.", {"pneumothorax": ABSENT}),
    ("Small left pleural effusoin.", {"pleural_effusion": PRESENT}),
    ("Cardiomegally.", {"cardiomegaly": PRESENT}),
    ("NO   PLEURAL\n EFFUSION", {"pleural_effusion": ABSENT}),
    ("No PTX.", {"pneumothorax": ABSENT}),
    ("ETT tip 4 cm above the carina. NGT in the stomach.", {"et_tube": PRESENT, "ng_tube": PRESENT}),
    # a history is not a finding on this film: CheXpert's labeler negates "history of" too
    ("History of CHF. No edema.", {"heart_failure": ABSENT, "pulmonary_edema": ABSENT}),
]


@pytest.mark.parametrize("text,expected", ASSERTION_CASES, ids=[c[0][:40] for c in ASSERTION_CASES])
def test_assertion_cases(x, text, expected):
    got = {name: a for name, (a, _) in read(x, text).items()}
    assert got == expected


# Negation / hedge scope over lists (negation.forward_scope): continues over list members joined
# by "or"/"nor" or by bare commas/"and"; ends at an item with its own affirmative modifier, at a
# verb, at a clause mention, at juxtaposed items and at terminators.
SCOPE_CASES = [
    # scope continues
    ("No pleural effusion, pneumothorax, or focal consolidation.",
     {"pleural_effusion": ABSENT, "pneumothorax": ABSENT, "consolidation": ABSENT}),
    ("No pneumothorax or large pleural effusion.", {"pneumothorax": ABSENT, "pleural_effusion": ABSENT}),
    ("No effusion nor pneumothorax.", {"pleural_effusion": ABSENT, "pneumothorax": ABSENT}),
    ("No effusion or new consolidation.", {"pleural_effusion": ABSENT, "consolidation": ABSENT}),
    ("No consolidation in the right lower lobe or effusion.", {"consolidation": ABSENT, "pleural_effusion": ABSENT}),
    ("No pleural effusion, pneumothorax, or consolidation is seen.",
     {"pleural_effusion": ABSENT, "pneumothorax": ABSENT, "consolidation": ABSENT}),
    ("No acute fracture, pneumothorax, or effusion.",
     {"fracture": ABSENT, "pneumothorax": ABSENT, "pleural_effusion": ABSENT}),
    ("No right pneumothorax, left effusion, or consolidation.",
     {"pneumothorax": ABSENT, "pleural_effusion": ABSENT, "consolidation": ABSENT}),
    ("Without effusion and pneumothorax.", {"pleural_effusion": ABSENT, "pneumothorax": ABSENT}),
    ("NO EFFUSION, PNEUMOTHORAX, OR\nCONSOLIDATION",
     {"pleural_effusion": ABSENT, "pneumothorax": ABSENT, "consolidation": ABSENT}),
    ("Possible atelectasis or pneumonia.", {"atelectasis": UNCERTAIN, "pneumonia": UNCERTAIN}),
    # scope ends
    ("No pneumothorax, mild cardiomegaly.", {"pneumothorax": ABSENT, "cardiomegaly": PRESENT}),
    ("No focal consolidation. Small left effusion.", {"consolidation": ABSENT, "pleural_effusion": PRESENT}),
    ("No evidence of pneumonia, but there is a small right effusion.", {"pneumonia": ABSENT, "pleural_effusion": PRESENT}),
    ("Without pneumothorax; moderate edema.", {"pneumothorax": ABSENT, "pulmonary_edema": PRESENT}),
    ("There is no pneumothorax and the heart is enlarged.", {"pneumothorax": ABSENT, "cardiomegaly": PRESENT}),
    ("No pneumothorax and heart is enlarged.", {"pneumothorax": ABSENT, "cardiomegaly": PRESENT}),
    ("No effusion, new right lower lobe consolidation.", {"pleural_effusion": ABSENT, "consolidation": PRESENT}),
    ("No pneumothorax, persistent left basilar atelectasis.", {"pneumothorax": ABSENT, "atelectasis": PRESENT}),
    ("No pneumothorax, increased interstitial markings.", {"pneumothorax": ABSENT, "interstitial_markings": PRESENT}),
    ("No pneumothorax, improving right upper lobe pneumonia.", {"pneumothorax": ABSENT, "pneumonia": PRESENT}),
    ("No effusion, pneumothorax is present.", {"pleural_effusion": ABSENT, "pneumothorax": PRESENT}),
    ("No effusion, and pneumothorax is seen.", {"pleural_effusion": ABSENT, "pneumothorax": PRESENT}),
    ("No pneumothorax, left effusion.", {"pneumothorax": ABSENT, "pleural_effusion": PRESENT}),
    ("No pneumothorax with moderate cardiomegaly.", {"pneumothorax": ABSENT, "cardiomegaly": PRESENT}),
    ("No pneumothorax, which was seen previously, and small effusion.", {"pneumothorax": ABSENT, "pleural_effusion": PRESENT}),
    ("Possible pneumonia, small left effusion.", {"pneumonia": UNCERTAIN, "pleural_effusion": PRESENT}),
    ("NO PNEUMOTHORAX\nCARDIOMEGALY", {"pneumothorax": ABSENT, "cardiomegaly": PRESENT}),
    ("NO PLEURAL EFFUSION OR PNEUMOTHORAX\nMILD CARDIOMEGALY",
     {"pleural_effusion": ABSENT, "pneumothorax": ABSENT, "cardiomegaly": PRESENT}),
    ("No pneumothorax\nCardiomegaly", {"pneumothorax": ABSENT, "cardiomegaly": PRESENT}),
]


@pytest.mark.parametrize("text,expected", SCOPE_CASES, ids=[c[0][:45] for c in SCOPE_CASES])
def test_negation_scope_over_lists(x, text, expected):
    got = {name: a for name, (a, _) in read(x, text).items()}
    assert got == expected


def test_all_caps_lines_split_where_not_wrapped(x):
    def sents(t):
        return [t[s:e] for s, e in split_sentences(t, x.lexicon)]

    assert sents("NO PNEUMOTHORAX\nMILD CARDIOMEGALY\nLUNGS ARE CLEAR") == ["NO PNEUMOTHORAX", "MILD CARDIOMEGALY", "LUNGS ARE CLEAR"]
    # a line ending in a list word or comma continues; so does a phrase cut by the wrap
    assert sents("NO EFFUSION, PNEUMOTHORAX, OR\nCONSOLIDATION") == ["NO EFFUSION, PNEUMOTHORAX, OR\nCONSOLIDATION"]
    assert sents("NO   PLEURAL\n EFFUSION") == ["NO   PLEURAL\n EFFUSION"]
    # fixed-width wrapped paragraphs keep their long lines together
    wrapped = ("THE LUNGS ARE CLEAR WITHOUT FOCAL CONSOLIDATION. THERE IS NO PLEURAL\n"
               "EFFUSION OR PNEUMOTHORAX. THE HEART SIZE IS NORMAL AND THE MEDIASTINUM\nIS UNREMARKABLE.")
    assert sents(wrapped)[1:] == ["THERE IS NO PLEURAL\nEFFUSION OR PNEUMOTHORAX.",
                                  "THE HEART SIZE IS NORMAL AND THE MEDIASTINUM\nIS UNREMARKABLE."]
    got = read(x, "IMPRESSION:\nNO PNEUMOTHORAX\nSMALL LEFT PLEURAL EFFUSION\nCARDIOMEGALY")
    assert {k: a for k, (a, _) in got.items()} == {"pneumothorax": ABSENT, "pleural_effusion": PRESENT, "cardiomegaly": PRESENT}


ATTRIBUTE_CASES = [
    ("Heart size is mildly enlarged.", "cardiomegaly", {"severity": "mild"}),
    ("Small left-sided pleural effusion.", "pleural_effusion", {"laterality": "left", "severity": "mild"}),
    ("Large right pneumothorax.", "pneumothorax", {"laterality": "right", "severity": "severe"}),
    ("Moderate bilateral pleural effusions.", "pleural_effusion", {"laterality": "bilateral", "severity": "moderate"}),
    ("Left and right pleural effusions.", "pleural_effusion", {"laterality": "bilateral"}),
    ("Bibasilar atelectasis.", "atelectasis", {"laterality": "bilateral", "zone": "lower"}),
    ("Opacity in the right lower lobe.", "lung_opacity", {"laterality": "right", "zone": "lower"}),
    ("Right upper lobe consolidation.", "consolidation", {"laterality": "right", "zone": "upper"}),
    ("Small apical pneumothorax on the left.", "pneumothorax", {"laterality": "left", "severity": "mild", "zone": "upper"}),
    ("Effusion is small.", "pleural_effusion", {"severity": "mild"}),
    ("Retrocardiac opacity.", "lung_opacity", {"laterality": "left", "zone": "lower"}),
    ("Patchy opacities in both lung bases.", "lung_opacity", {"laterality": "bilateral", "zone": "lower"}),
    ("Consolidation in the right middle lobe and lingula.", "consolidation", {"laterality": "bilateral", "zone": "middle"}),
    ("Blunting of the left costophrenic angle.", "pleural_effusion", {"laterality": "left"}),
    ("Opacity in the lower lung zone.", "lung_opacity", {"zone": "lower"}),
    # kinds a concept does not declare are never attached
    ("Left cardiomegaly.", "cardiomegaly", {}),
]


@pytest.mark.parametrize("text,name,attrs", ATTRIBUTE_CASES, ids=[c[0][:40] for c in ATTRIBUTE_CASES])
def test_attributes(x, text, name, attrs):
    assert read(x, text)[name][1] == attrs


def test_attributes_stay_with_their_finding(x):
    got = read(x, "Small left pleural effusion and large right pneumothorax.")
    assert got["pleural_effusion"][1] == {"laterality": "left", "severity": "mild"}
    assert got["pneumothorax"][1] == {"laterality": "right", "severity": "severe"}
    got = read(x, "Right lower lobe opacity with small left effusion.")
    assert got["lung_opacity"][1] == {"laterality": "right", "zone": "lower"}
    assert got["pleural_effusion"][1] == {"laterality": "left", "severity": "mild"}


def test_anatomy_entities_and_spans(x):
    text = "XXXX opacity in the right lower lobe. Heart size is mildly enlarged."
    ents = x.extract(text, "findings")
    by = {e.name: e for e in ents}
    assert [e.key for e in ents] == [
        "lung_opacity|ABNORMALITY", "right_lower_lobe|ANATOMY", "cardiomegaly|ABNORMALITY"
    ]
    for e in ents:
        assert text[e.start : e.end] == e.text
        assert e.section == "findings"
    assert by["lung_opacity"].text == "opacity"
    assert by["right_lower_lobe"].text == "right lower lobe"
    assert by["cardiomegaly"].text == "Heart size is mildly enlarged"
    assert by["right_lower_lobe"].attributes == {}


def test_types_encode_negation(x):
    ents = {e.name: e for e in x.extract("No pleural effusion. Mild cardiomegaly. Possible pneumonia. Normal heart size.")}
    assert ents["pleural_effusion"].type == "NON-DISEASE"
    assert ents["cardiomegaly"].type == "ABNORMALITY"
    assert ents["pneumonia"].type == "DISEASE" and ents["pneumonia"].assertion == UNCERTAIN
    assert ents["normal_heart_size"].type == "NON-ABNORMALITY"


def test_dedup_keeps_first_mention_and_fills_attributes(x):
    text = "Small pleural effusion. The left effusion is unchanged."
    ents = [e for e in x.extract(text) if e.name == "pleural_effusion"]
    assert len(ents) == 1
    assert (ents[0].start, ents[0].text) == (6, "pleural effusion")
    assert ents[0].attributes == {"severity": "mild", "laterality": "left"}
    # left and right mentions merge into bilateral; both polarities stay separate keys
    ents = x.extract("Small left effusion. Small right effusion. No effusion on the prior study.")
    keys = sorted(e.key for e in ents)
    assert keys == ["pleural_effusion|DISEASE", "pleural_effusion|NON-DISEASE"]
    assert [e for e in ents if e.type == "DISEASE"][0].attributes["laterality"] == "bilateral"


def test_present_beats_uncertain_across_sentences(x):
    assert read(x, "Right lower lobe pneumonia. Possible pneumonia.")["pneumonia"][0] == PRESENT


def test_sentence_splitting_robustness():
    text = "FINDINGS:\n1. No effusion\n2. Mild cardiomegaly.No pneumothorax  Lungs clear\nwith normal volumes. 2.5 cm mass."
    sents = [text[s:e] for s, e in split_sentences(text)]
    assert "2. Mild cardiomegaly." in sents  # a list number stays with its sentence
    assert "No pneumothorax" in sents
    assert "Lungs clear\nwith normal volumes." in sents  # a wrapped line is one sentence
    assert "2.5 cm mass." in sents
    assert split_sentences("   \n ") == []


def test_numbered_list_does_not_leak_negation(x):
    got = read(x, "IMPRESSION:\n1. No pneumothorax\n2. Small left pleural effusion")
    assert got == {"pneumothorax": (ABSENT, {}), "pleural_effusion": (PRESENT, {"laterality": "left", "severity": "mild"})}


def test_empty_and_unrelated_text(x):
    assert x.extract("") == []
    assert x.extract("   ") == []
    assert x.extract("Comparison: none. Patient is a 65 year old XXXX.") == []


def test_registered_and_protocol(ontology):
    ex = EXTRACTORS.build("lexicon", ontology=ontology)
    assert isinstance(ex, Extractor)
    assert ex.backend_id == "lexicon"


def test_extract_report_sections_and_merge(x):
    ents = extract_report(x, "Small left pleural effusion. No pneumothorax.", "Left pleural effusion.")
    assert [(e.key, e.section) for e in ents] == [
        ("pleural_effusion|DISEASE", "findings"), ("pneumothorax|NON-DISEASE", "findings")
    ]
    assert ents[0].attributes == {"laterality": "left", "severity": "mild"}
    ents = extract_report(x, "", "Possible pneumonia.")
    assert [(e.key, e.section, e.assertion) for e in ents] == [("pneumonia|DISEASE", "impression", UNCERTAIN)]


def test_merge_entities_upgrades_uncertain():
    a = Entity("pneumonia", "DISEASE", UNCERTAIN, {"laterality": "left"}, section="findings")
    b = Entity("pneumonia", "DISEASE", PRESENT, {"zone": "lower"}, section="impression")
    (m,) = merge_entities([a, b])
    assert (m.assertion, m.attributes, m.section) == (PRESENT, {"laterality": "left", "zone": "lower"}, "findings")
    assert a.attributes == {"laterality": "left"}  # inputs are not mutated


def test_deterministic(x):
    text = "Moderate cardiomegaly. Small bilateral effusions. No pneumothorax. Possible RLL pneumonia."
    first = [e.to_dict() for e in x.extract(text)]
    assert all([e.to_dict() for e in x.extract(text)] == first for _ in range(3))
    assert [e.to_dict() for e in LexiconExtractor().extract(text)] == first


# ----------------------------------------------------------------------------- writer contract


def _cap(s):
    return s[0].upper() + s[1:]


def _plural_count(c, phrase):
    """Rule 2 (count): a plural synonym of a countable concept ("pulmonary nodules") reads "multiple"."""
    last = phrase.split()[-1]
    plural = last.endswith("s") and not last.endswith(("ss", "is", "us"))
    return {"count": "multiple"} if "count" in c.attributes and plural else {}


def test_contract_every_synonym(x, ontology):
    """Rules 1, 2 and 4 of the extract.py contract, for every synonym of the ontology."""
    bad = []
    for c in ontology.concepts:
        for s in c.synonyms:
            if [(e.name, e.assertion) for e in x.extract(_cap(s) + ".")] != [(c.name, PRESENT)]:
                bad.append(("plain", s))
            if c.type not in ("ABNORMALITY", "DISEASE"):
                continue
            words, want = [], {}
            if "severity" in c.attributes:
                words.append("large" if c.size_words else "severe")
                want["severity"] = "severe"
            if "laterality" in c.attributes:
                words.append("right")
                want["laterality"] = "right"
            want.update(_plural_count(c, s))
            got = [(e.name, e.attributes) for e in x.extract(" ".join(["There is a", *words, s]) + ".")]
            if got != [(c.name, want)]:
                bad.append(("prefix", s, got))
            if c.negatable and [(e.name, e.assertion) for e in x.extract(f"No {s}.")] != [(c.name, ABSENT)]:
                bad.append(("negated", s))
    assert bad == []


def test_contract_anatomy_suffix(x, ontology):
    """Rule 3: '<synonym> in the <anatomy>' -> the finding located by the anatomy, plus the anatomy."""
    findings = [c for c in ontology.concepts if c.type in ("ABNORMALITY", "DISEASE")]
    bad = []
    for a in (c for c in ontology.concepts if c.type == "ANATOMY"):
        for f in findings:
            s = f.synonyms[0]
            ents = x.extract(f"{_cap(s)} in the {a.synonyms[0]}.")
            want = {}
            if a.anatomy_side and "laterality" in f.attributes:
                want["laterality"] = a.anatomy_side
            if a.anatomy_zone and "zone" in f.attributes:
                want["zone"] = a.anatomy_zone
            if [(e.name, e.attributes) for e in ents] != [(f.name, want), (a.name, {})]:
                bad.append((s, a.name, [(e.name, e.attributes) for e in ents]))
    assert bad == []


def test_contract_random_reports(x, ontology):
    """Rules 1-5 composed the way the grammar writer composes reports (seeded, 300 reports)."""
    rng = random.Random(7)
    finds = [c for c in ontology.concepts if c.type in ("ABNORMALITY", "DISEASE")]
    normals = [c for c in ontology.concepts if c.type == "NON-ABNORMALITY"]
    zones = {"upper": "in the upper zone", "middle": "in the mid zone", "lower": "in the lower lung zone"}
    for _ in range(300):
        cs = rng.sample(finds, 5)
        sents, want = [], {}
        for c in cs[:2]:
            words, attrs = [], {}
            if "severity" in c.attributes and rng.random() < 0.6:
                attrs["severity"] = rng.choice(["mild", "moderate", "severe"])
                size = {"mild": "small", "moderate": "moderate", "severe": "large"}
                words.append(size[attrs["severity"]] if c.size_words else attrs["severity"])
            if "laterality" in c.attributes and rng.random() < 0.6:
                attrs["laterality"] = rng.choice(["left", "right", "bilateral"])
                words.append(attrs["laterality"])
            syn = rng.choice(c.synonyms)
            attrs.update(_plural_count(c, syn))
            m = " ".join([*words, syn])
            if "zone" in c.attributes and rng.random() < 0.5:
                attrs["zone"] = rng.choice(list(zones))
                m += " " + zones[attrs["zone"]]
            hedged = rng.random() < 0.3
            tpl = rng.choice(["Possible {m}.", "{M} cannot be excluded.", "Findings may represent {m}."] if hedged
                             else ["{M}.", "{M} is seen.", "{M} is present.", "There is {m}."])
            sents.append(tpl.format(m=m, M=_cap(m)))
            want[c.name] = (UNCERTAIN if hedged else PRESENT, attrs)
        negs = [c for c in cs[2:] if c.negatable]
        phrases = [rng.choice(c.synonyms) for c in negs]
        sents.append("There is no " + ", ".join(phrases[:-1]) + ", or " + phrases[-1] + ".")
        want.update({c.name: (ABSENT, {}) for c in negs})
        normal = rng.choice(normals)
        sents.append(_cap(rng.choice(normal.synonyms)) + ".")
        want[normal.name] = (PRESENT, {})
        rng.shuffle(sents)
        text = "\n".join(f"{i + 1}. {s}" for i, s in enumerate(sents)) if rng.random() < 0.5 else " ".join(sents)
        assert read(x, text) == want, text


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("abcdefghijklmnopqrstuvwxyz XLR.,;:?!-\n0123456789")), max_size=200))
def test_arbitrary_text_never_crashes_and_spans_hold(text):
    x = LexiconExtractor()
    ents = x.extract(text)
    assert len({e.key for e in ents}) == len(ents)
    for e in ents:
        assert 0 <= e.start < e.end <= len(text)
        assert text[e.start : e.end] == e.text


def test_token_normalisation(x):
    lex = x.lexicon
    # plurals fold onto singulars, typos of >= 7 letters within one edit are fixed
    assert [lex.normalize(w) for w in ("opacities", "effusions", "masses")] == ["opacity", "effusion", "mass"]
    assert [lex.normalize(w) for w in ("pnuemothorax", "effusoin", "cardiomegally", "consolidaton")] == [
        "pneumothorax", "effusion", "cardiomegaly", "consolidation"
    ]
    # short words, ordinary words and ambiguous/foreign first letters are left alone
    assert [lex.normalize(w) for w in ("pleurl", "interval", "xardiomegaly", "patient")] == [
        "pleurl", "interval", "xardiomegaly", "patient"
    ]
