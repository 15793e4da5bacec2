"""Validity of the bundled CXR ontology (src/syncxr/vocab/ontology.yaml)."""

import re
from collections import Counter

import pytest

from syncxr.records import CHEXPERT14
from syncxr.text.lexicon import Lexicon
from syncxr.image.phantom.spec import FINDINGS, INVISIBLE
from syncxr.vocab import LATERALITY, ZONE, load_ontology

RENDER_IDS = set(FINDINGS)  # what the phantom can draw
FINDING = ("ABNORMALITY", "DISEASE")
NORMAL = ("NON-ABNORMALITY", "NON-DISEASE")


@pytest.fixture(scope="module")
def onto():
    return load_ontology()


def test_size_and_types(onto):
    assert len(onto.concepts) >= 80
    types = Counter(c.type for c in onto.concepts)
    assert types["ABNORMALITY"] >= 30 and types["DISEASE"] >= 8
    assert types["NON-ABNORMALITY"] >= 8 and types["ANATOMY"] >= 25


def test_every_chexpert_label_covered_by_a_finding(onto):
    covered = {c.chexpert for c in onto.concepts if c.type in FINDING and c.chexpert}
    assert covered == set(CHEXPERT14) - {"No Finding"}


def test_canonical_concept_comes_first_per_label(onto):
    # ontology order matters to the sim world (first negatable concept of a label is its canonical one)
    first = {}
    for c in onto.concepts:
        if c.type in FINDING and c.chexpert:
            first.setdefault(c.chexpert, c.name)
    assert first["Edema"] == "pulmonary_edema"
    assert first["Lung Lesion"] == "nodule"
    assert first["Pleural Effusion"] == "pleural_effusion"
    assert first["Pneumonia"] == "pneumonia"


def test_render_ids_are_known(onto):
    used = {c.render for c in onto.concepts if c.render}
    assert used <= RENDER_IDS
    assert used == RENDER_IDS  # every phantom finding is drawable from some concept


def test_every_finding_concept_is_drawn_or_declared_invisible(onto):
    undrawn = {c.name for c in onto.concepts if c.type in ("ABNORMALITY", "DISEASE") and not c.render}
    assert undrawn == set(INVISIBLE) == {"kyphosis"}


def test_allowed_values_restrict_implausible_combinations(onto):
    assert onto.concept("mediastinal_shift").allowed("laterality") == ("left", "right")
    assert onto.concept("picc_line").allowed("laterality") == ("left", "right")
    assert onto.concept("pleural_effusion").allowed("laterality") == ("left", "right", "bilateral")
    with pytest.raises(ValueError, match="subset"):
        type(onto.concept("nodule"))(name="x", type="ABNORMALITY", synonyms=["x"], attributes=["zone"], values={"zone": ["apical"]})


def test_support_devices(onto):
    devices = {c.name for c in onto.concepts if c.chexpert == "Support Devices"}
    assert {"et_tube", "central_line", "picc_line", "pacemaker", "ng_tube", "sternotomy", "chest_tube", "surgical_clips"} <= devices
    assert all(onto.concept(d).type == "ABNORMALITY" for d in devices)


def test_normal_statements(onto):
    normals = [c for c in onto.concepts if c.type in NORMAL]
    # NON-ABNORMALITY concepts carry only the global "No Finding" label; the rest negate via contradicts
    assert {c.chexpert for c in normals} <= {None, "No Finding"}
    for c in normals:
        assert c.contradicts, c.name
        assert all(onto.concept(o).type in FINDING for o in c.contradicts), c.name
    pairs = onto.contradiction_pairs()
    assert frozenset(("normal_heart_size", "cardiomegaly")) in pairs
    assert frozenset(("clear_lungs", "consolidation")) in pairs
    assert frozenset(("no_acute_process", "pneumothorax")) in pairs


def test_synonyms_are_clean_and_unique(onto):
    owner = {}
    for c in onto.concepts:
        for s in c.synonyms:
            assert s == s.lower().strip() and "  " not in s, (c.name, s)
            key = tuple(re.findall(r"[a-z0-9]+", s))
            assert owner.setdefault(key, c.name) == c.name, f"{s!r} in {owner[key]} and {c.name}"
    # also unique after the extractor's canonical forms (plurals folded onto singulars)
    assert Lexicon(onto).collisions == []


def test_patterns_compile_and_stay_with_their_concept(onto):
    """A concept's regex patterns never match another concept's own names: a pattern that did
    would read that concept's mentions as this one."""
    names = {c.name: [c.name.replace("_", " "), *c.synonyms] for c in onto.concepts}
    checked = 0
    for c in onto.concepts:
        for p in c.patterns:
            rx = re.compile(p, re.IGNORECASE)
            for other, phrases in names.items():
                if other == c.name:
                    continue
                stolen = [s for s in phrases if rx.fullmatch(s)]
                assert not stolen, f"pattern {p!r} of {c.name} matches {other}'s name(s) {stolen}"
            checked += 1
    assert checked > 10  # the ontology has patterns to check


def test_anatomy_fields(onto):
    for c in onto.concepts:
        if c.type == "ANATOMY":
            assert c.anatomy_side in (None, *LATERALITY) and c.anatomy_zone in (None, *ZONE)
            assert not c.negatable and not c.attributes and c.chexpert is None
        else:
            assert c.anatomy_side is None and c.anatomy_zone is None, c.name
    assert onto.concept("right_lower_lobe").anatomy_side == "right"
    assert onto.concept("right_lower_lobe").anatomy_zone == "lower"
    assert onto.concept("lingula").anatomy_side == "left"


def test_size_words_only_with_severity(onto):
    for c in onto.concepts:
        if c.size_words:
            assert "severity" in c.attributes, c.name
    assert onto.concept("pleural_effusion").size_words and onto.concept("pneumothorax").size_words


def test_the_shared_ontology_cannot_be_changed_by_one_caller():
    from pydantic import ValidationError

    from syncxr.text.lexicon_extractor import lexicon_for
    from syncxr.text.grammar_writer import load_phrases
    from syncxr.vocab import load_ontology

    shared = load_ontology()
    with pytest.raises(ValidationError):
        shared.by_name["pleural_effusion"].negatable = False
    # equal content, one compiled lexicon (keyed by content, not by id())
    assert lexicon_for(shared) is lexicon_for(shared.model_copy(deep=True))
    mine = load_phrases()
    mine["systems"] = "changed"
    assert load_phrases()["systems"] != "changed"


def test_every_finding_has_a_region_and_only_findings_do(onto):
    from syncxr.vocab import REGIONS

    for c in onto.concepts:
        if c.type in FINDING:
            assert c.region in REGIONS, c.name
        else:
            assert c.region is None and not c.chronic, c.name
    assert onto.concept("pericardial_effusion").region == "mediastinum"
    assert onto.concept("granuloma").chronic and not onto.concept("pneumothorax").chronic


def _present(c):
    return c.keys()[0]


def test_global_normal_statements_conflict_with_every_present_finding(onto):
    """"Normal radiograph of the chest" denies every abnormal finding, devices and chronic ones
    included: the sampler may never pair them, and the consistency check flags them."""
    from syncxr.vocab.conflicts import Conflicts

    conflicts = Conflicts(onto)
    global_normals = [c for c in onto.concepts if "all" in c.excludes]
    assert {c.name for c in global_normals} == {"normal_chest"}
    findings = [c for c in onto.concepts if c.type in FINDING]
    for g in global_normals:
        missing = [f.name for f in findings if not conflicts.conflict(_present(g), _present(f))]
        assert missing == [], f"{g.name} does not conflict with {missing}"
        # the negation of a finding is what a normal chest says: no conflict
        negated = [f for f in findings if f.negatable]
        assert not any(conflicts.conflict(_present(g), f.keys()[1]) for f in negated)
    assert conflicts.conflict("normal_chest|NON-ABNORMALITY", "pericardial_effusion|DISEASE")


def test_regional_and_acute_normals_conflict_with_their_scope(onto):
    from syncxr.vocab.conflicts import Conflicts

    conflicts = Conflicts(onto)
    findings = [c for c in onto.concepts if c.type in FINDING]
    scoped = [c for c in onto.concepts if c.excludes and "all" not in c.excludes]
    assert {"clear_lungs", "no_acute_process", "normal_pleura"} <= {c.name for c in scoped}
    checked = 0
    for n in scoped:
        for f in findings:
            device = f.region == "device"
            expect = f.region in n.excludes or ("acute" in n.excludes and not f.chronic and not device)
            if expect:
                assert conflicts.conflict(_present(n), _present(f)), (n.name, f.name)
                checked += 1
    assert checked > 60
    # the examples of issue 10 and their compatible counterparts
    assert conflicts.conflict("clear_lungs|NON-ABNORMALITY", "cavitary_lesion|ABNORMALITY")
    assert conflicts.conflict("clear_lungs|NON-ABNORMALITY", "nodule|ABNORMALITY")
    assert conflicts.conflict("no_acute_process|NON-ABNORMALITY", "pericardial_effusion|DISEASE")
    assert not conflicts.conflict("clear_lungs|NON-ABNORMALITY", "low_lung_volumes|ABNORMALITY")
    assert not conflicts.conflict("no_acute_process|NON-ABNORMALITY", "granuloma|ABNORMALITY")
    assert not conflicts.conflict("no_acute_process|NON-ABNORMALITY", "pacemaker|ABNORMALITY")


def test_excludes_and_region_are_validated(onto):
    Concept = type(onto.concept("nodule"))
    with pytest.raises(ValueError, match="excludes"):
        Concept(name="x", type="ABNORMALITY", synonyms=["x"], excludes=["all"])
    with pytest.raises(ValueError, match="region"):
        Concept(name="x", type="NON-ABNORMALITY", synonyms=["x"], region="lung")
    with pytest.raises(ValueError):
        Concept(name="x", type="NON-ABNORMALITY", synonyms=["x"], excludes=["everything"])


def test_count_is_declared_for_countable_findings(onto):
    """Findings a film shows as separate lesions declare a count; diffuse ones do not."""
    from syncxr.vocab import COUNT

    counted = {c.name for c in onto.concepts if "count" in c.attributes}
    assert {"nodule", "mass", "granuloma", "fracture", "metastatic_disease"} <= counted
    assert not counted & {"consolidation", "pleural_effusion", "cardiomegaly", "edema"}
    for c in onto.concepts:
        if "count" in c.attributes:
            assert c.type in ("ABNORMALITY", "DISEASE") and set(c.allowed("count")) <= set(COUNT)


def test_count_values_are_validated():
    from pydantic import ValidationError

    from syncxr.vocab import Concept

    ok = Concept(name="n", type="ABNORMALITY", synonyms=["n"], attributes=["count"], values={"count": ["two"]})
    assert ok.allowed("count") == ("two",)
    with pytest.raises(ValidationError, match="count values"):
        Concept(name="n", type="ABNORMALITY", synonyms=["n"], attributes=["count"], values={"count": ["three"]})
