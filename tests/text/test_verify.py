"""Verifier: each reason code, modes, attribute comparison, scores."""

from __future__ import annotations

import pytest

from syncxr.errors import UserError
from syncxr.records import ABSENT, Entity
from syncxr.text.verify import Verifier


class TableExtractor:
    """Returns the entities listed for a text (a stand-in that isolates the verifier's logic)."""

    backend_id = "table"

    def __init__(self, table: dict[str, list[Entity]]) -> None:
        self.table = table

    def extract(self, text: str, section: str = "") -> list[Entity]:
        return [Entity(e.name, e.type, e.assertion, dict(e.attributes), section=section) for e in self.table.get(text, [])]


EFF = Entity("pleural_effusion", "DISEASE", attributes={"laterality": "left", "severity": "mild"})
NO_PTX = Entity("pneumothorax", "NON-DISEASE", ABSENT)
RLL = Entity("right_lower_lobe", "ANATOMY")
CARDIO = Entity("cardiomegaly", "ABNORMALITY")
NORMAL_HEART = Entity("normal_heart_size", "NON-ABNORMALITY")
NO_CARDIO = Entity("cardiomegaly", "NON-ABNORMALITY", ABSENT)
SAMPLED = [EFF, NO_PTX, RLL]


def _verifier(mode="impression", **table) -> Verifier:
    return Verifier(TableExtractor({k.replace("_", " "): v for k, v in table.items()}), mode=mode)


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
    v = _verifier(findings=SAMPLED, impression=SAMPLED + [NORMAL_HEART])
    verdict = v.check(SAMPLED, "findings", "impression")
    assert verdict.reason == "extra_entities" and "normal_heart_size|NON-ABNORMALITY" in verdict.detail
    assert verdict.scores["precision"] == pytest.approx(3 / 4)


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
