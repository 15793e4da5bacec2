"""Verifier: each reason code, modes, attribute comparison, scores."""

from __future__ import annotations

import pytest

from syncxr.text.base import ExtractOneByOne
from syncxr.errors import UserError
from syncxr.records import ABSENT, Entity
from syncxr.text.verify import Verifier


class TableExtractor(ExtractOneByOne):
    """Returns the entities listed for a text (a stand-in that isolates the verifier's logic)."""

    backend_id = "table"

    def __init__(self, table: dict[str, list[Entity]]) -> None:
        self.table = table

    def extract(self, text: str, section: str = "") -> list[Entity]:
        return [Entity(e.name, e.type, e.assertion, dict(e.attributes), e.text, section, e.start, e.end)
                for e in self.table.get(text, [])]


EFF = Entity("pleural_effusion", "DISEASE", attributes={"laterality": "left", "severity": "mild"})
NO_PTX = Entity("pneumothorax", "NON-DISEASE", ABSENT)
RLL = Entity("right_lower_lobe", "ANATOMY")
CARDIO = Entity("cardiomegaly", "ABNORMALITY")
NORMAL_HEART = Entity("normal_heart_size", "NON-ABNORMALITY")
NO_CARDIO = Entity("cardiomegaly", "NON-ABNORMALITY", ABSENT)
SAMPLED = [EFF, NO_PTX, RLL]


def _verifier(mode="impression", allow_extra=("summaries",), unknown="reject", **table) -> Verifier:
    return Verifier(TableExtractor({k.replace("_", " "): v for k, v in table.items()}), mode=mode,
                    allow_extra=allow_extra, unknown=unknown)


def test_ok_with_filler_in_findings():
    v = _verifier(findings=[EFF, NO_PTX, RLL, NORMAL_HEART], impression=[EFF, NO_PTX, RLL])
    verdict = v.check(SAMPLED, "findings", "impression")
    assert verdict.ok and verdict.reason == "ok"
    assert verdict.scores == {"precision": 1.0, "recall": 1.0}


def test_empty_section():
    verdict = _verifier().check(SAMPLED, "findings", "  ")
    assert not verdict.ok and verdict.reason == "empty_section" and "impression" in verdict.detail


def test_missing_in_impression_and_in_findings():
    v = _verifier(findings=[EFF, RLL], impression=[EFF, RLL])
    verdict = v.check(SAMPLED, "findings", "impression")
    assert verdict.reason == "missing_entities"
    assert "pneumothorax|NON-DISEASE" in verdict.detail and "findings:pneumothorax|NON-DISEASE" in verdict.detail
    assert verdict.scores["recall"] == pytest.approx(2 / 3) and verdict.scores["precision"] == 1.0


def test_extra_in_impression():
    v = _verifier(findings=SAMPLED, impression=SAMPLED + [NORMAL_HEART, CARDIO_NO_ATTR], allow_extra=())
    verdict = v.check(SAMPLED, "findings", "impression")
    assert verdict.reason == "extra_entities" and "normal_heart_size|NON-ABNORMALITY" in verdict.detail
    assert "cardiomegaly|ABNORMALITY" in verdict.detail
    assert verdict.scores["precision"] == pytest.approx(3 / 5)
    # A normal-statement summary is allowed by default; a positive finding never is.
    assert _verifier(findings=SAMPLED, impression=SAMPLED + [NORMAL_HEART]).check(SAMPLED, "findings", "impression").ok
    assert _verifier(findings=SAMPLED, impression=SAMPLED + [CARDIO]).check(SAMPLED, "findings", "impression").reason == "extra_entities"


CARDIO_NO_ATTR = Entity("cardiomegaly", "ABNORMALITY")
NO_ACUTE = Entity("no_acute_process", "NON-ABNORMALITY")


def test_entity_type_disagreements_are_not_mismatches_but_polarity_is():
    """A real NER model may type a finding DISEASE where the ontology says ABNORMALITY, or
    NON-ABNORMALITY where the plan says NON-DISEASE: the same concept and polarity pass."""
    eff_as_abnormality = Entity("pleural_effusion", "ABNORMALITY", attributes={"laterality": "left", "severity": "mild"})
    no_ptx_other_type = Entity("pneumothorax", "NON-ABNORMALITY", ABSENT)
    read = [eff_as_abnormality, no_ptx_other_type, RLL]
    assert _verifier(findings=read, impression=read).check(SAMPLED, "findings", "impression").ok
    # Wrong polarity: the report says the sampled absent pneumothorax is present.
    ptx_present = Entity("pneumothorax", "DISEASE")
    wrong = [EFF, ptx_present, RLL]
    verdict = _verifier(findings=wrong, impression=wrong).check(SAMPLED, "findings", "impression")
    assert verdict.reason == "missing_entities" and "pneumothorax|NON-DISEASE" in verdict.detail


def test_a_summary_that_contradicts_a_finding_fails_unless_qualified():
    sampled = [CARDIO, RLL]
    plain = "Cardiomegaly.  No acute cardiopulmonary process."
    qualified = "Cardiomegaly. Otherwise no acute cardiopulmonary process."
    table = {
        "findings": [CARDIO, RLL],
        plain: [CARDIO, RLL, Entity("no_acute_process", "NON-ABNORMALITY", start=15, end=48)],
        qualified: [CARDIO, RLL, Entity("no_acute_process", "NON-ABNORMALITY", start=24, end=56)],
    }
    v = Verifier(TableExtractor(table))
    verdict = v.check(sampled, "findings", plain)
    assert verdict.reason == "extra_entities" and "contradicts" not in verdict.detail  # in the impression itself
    assert "no_acute_process|NON-ABNORMALITY" in verdict.detail
    assert v.check(sampled, "findings", qualified).ok


def test_negations_and_anatomy_beyond_the_plan_follow_allow_extra():
    extra = SAMPLED + [Entity("consolidation", "NON-DISEASE", ABSENT), Entity("left_lung", "ANATOMY")]
    strict = _verifier(findings=SAMPLED, impression=extra)
    assert strict.check(SAMPLED, "findings", "impression").reason == "extra_entities"
    loose = _verifier(findings=SAMPLED, impression=extra, allow_extra=("summaries", "negations", "anatomy"))
    assert loose.check(SAMPLED, "findings", "impression").ok


def test_unknown_phrases_follow_the_policy_with_a_boilerplate_list():
    odd = Entity("bronchial_cuffing_xyz", "ABNORMALITY", text="bronchial cuffing xyz")
    boiler = Entity("portable", "ABNORMALITY", text="portable")
    imp = SAMPLED + [odd, boiler]
    verdict = _verifier(findings=SAMPLED, impression=imp).check(SAMPLED, "findings", "impression")
    assert verdict.reason == "unknown_entities" and "bronchial cuffing xyz" in verdict.detail
    assert "portable" not in verdict.detail
    assert _verifier(findings=SAMPLED, impression=imp, unknown="ignore").check(SAMPLED, "findings", "impression").ok


def test_findings_may_not_contradict_a_sampled_entity():
    sampled = [CARDIO, RLL]
    v = _verifier(findings=[CARDIO, RLL, NORMAL_HEART], impression=[CARDIO, RLL])
    verdict = v.check(sampled, "findings", "impression")
    assert verdict.reason == "extra_entities"
    assert "findings:normal_heart_size|NON-ABNORMALITY contradicts cardiomegaly|ABNORMALITY" in verdict.detail
    # A non-contradicting filler is fine; so is "no cardiomegaly" next to "heart size is normal".
    ok = _verifier(findings=[NO_CARDIO, NORMAL_HEART, RLL], impression=[NORMAL_HEART, NO_CARDIO, RLL])
    assert ok.check([NORMAL_HEART, NO_CARDIO, RLL], "findings", "impression").ok


def test_attribute_mismatch_on_declared_kinds_only():
    wrong_side = Entity("pleural_effusion", "DISEASE", attributes={"laterality": "right", "severity": "mild"})
    v = _verifier(findings=[wrong_side, NO_PTX, RLL], impression=SAMPLED)
    verdict = v.check(SAMPLED, "findings", "impression")
    assert verdict.reason == "attribute_mismatch"
    assert "pleural_effusion|DISEASE in findings" in verdict.detail and "'right'" in verdict.detail
    # A zone read from the anatomy is ignored: effusion does not declare zone.
    extra_zone = Entity("pleural_effusion", "DISEASE", attributes={**EFF.attributes, "zone": "lower"})
    assert _verifier(findings=[extra_zone, NO_PTX, RLL], impression=SAMPLED).check(SAMPLED, "findings", "impression").ok
    lenient = Verifier(v.extractor, check_attributes=False)
    assert lenient.check(SAMPLED, "findings", "impression").ok


def test_exact_mode_rejects_fillers_anywhere():
    v = _verifier("exact", findings=[EFF, NO_PTX, RLL, NORMAL_HEART], impression=[EFF, RLL])
    verdict = v.check(SAMPLED, "findings", "impression")
    assert verdict.reason == "extra_entities" and "normal_heart_size" in verdict.detail
    ok = _verifier("exact", findings=[EFF, NO_PTX], impression=[RLL])  # union counts in exact mode
    assert ok.check(SAMPLED, "findings", "impression").ok
    missing = _verifier("exact", findings=[EFF], impression=[RLL])
    assert missing.check(SAMPLED, "findings", "impression").reason == "missing_entities"


def test_bad_mode():
    with pytest.raises(UserError, match="mode 'both'"):
        Verifier(TableExtractor({}), mode="both")


def test_uses_the_extractors_ontology():
    from syncxr.vocab import Ontology

    onto = Ontology.model_validate({"concepts": [
        dict(name="aa", type="ABNORMALITY", synonyms=["aa"], attributes=["zone"], contradicts=["bb"]),
        dict(name="bb", type="NON-ABNORMALITY", synonyms=["bb"]),
    ]})
    ext = TableExtractor({"f": [Entity("aa", "ABNORMALITY", attributes={"zone": "upper"}), Entity("bb", "NON-ABNORMALITY")],
                          "i": [Entity("aa", "ABNORMALITY", attributes={"zone": "upper"})]})
    ext.ontology = onto
    sampled = [Entity("aa", "ABNORMALITY", attributes={"zone": "upper"})]
    verdict = Verifier(ext).check(sampled, "f", "i")
    assert verdict.reason == "extra_entities" and "bb|NON-ABNORMALITY contradicts aa|ABNORMALITY" in verdict.detail


def test_impression_positives_rule_lets_negations_and_anatomy_stay_in_findings():
    """'Aortic calcification. No acute process.' for a plan of calcification + no pneumothorax +
    RLL: the IMPRESSION must hold the positive finding; the rest is checked in FINDINGS."""
    calc = Entity("aortic_calcification", "ABNORMALITY")
    sampled = [calc, NO_PTX, RLL]
    imp = [calc, Entity("no_acute_process", "NON-ABNORMALITY")]
    strict = Verifier(TableExtractor({"findings": sampled, "impression": imp}))
    assert strict.check(sampled, "findings", "impression").reason == "missing_entities"
    loose = Verifier(TableExtractor({"findings": sampled, "impression": imp}), impression="positives")
    assert loose.check(sampled, "findings", "impression").ok
    # a positive finding left out of the IMPRESSION still fails, and FINDINGS must still hold all
    assert Verifier(TableExtractor({"findings": sampled, "impression": [NO_PTX, RLL]}), impression="positives").check(
        sampled, "findings", "impression").reason == "missing_entities"
    assert Verifier(TableExtractor({"findings": [calc], "impression": imp}), impression="positives").check(
        sampled, "findings", "impression").reason == "missing_entities"


def test_positives_rule_keeps_a_sampled_no_finding_statement_in_the_impression_only():
    """'No acute process' sampled: under "positives" FINDINGS need not repeat it (real reports say it
    in the IMPRESSION); the IMPRESSION must still hold it, and under "all" FINDINGS must too."""
    sampled = [NO_ACUTE, NO_PTX, RLL]
    fnd, imp = [NO_PTX, RLL], [NO_ACUTE]
    assert Verifier(TableExtractor({"findings": fnd, "impression": imp}), impression="positives").check(
        sampled, "findings", "impression").ok
    strict = Verifier(TableExtractor({"findings": fnd, "impression": sampled})).check(sampled, "findings", "impression")
    assert strict.reason == "missing_entities" and "findings:no_acute_process" in strict.detail
    lost = Verifier(TableExtractor({"findings": fnd, "impression": [NO_PTX]}), impression="positives").check(
        sampled, "findings", "impression")
    assert lost.reason == "missing_entities" and "no_acute_process" in lost.detail
