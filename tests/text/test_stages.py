"""WriteVerifyStage and LabelStage on plain lists of Sample records."""

from __future__ import annotations

import pytest

from syncxr.errors import SampleError, UserError
from syncxr.stage import Stage
from syncxr.records import Entity, Sample
from syncxr.text.base import ExtractOneByOne, WriteOneByOne
from syncxr.text.stages import LabelStage, WriteVerifyStage
from syncxr.text.verify import Verifier

EFF = Entity("pleural_effusion", "DISEASE")
RLL = Entity("right_lower_lobe", "ANATOMY")


class ScriptWriter(WriteOneByOne):
    """Writes "good" from attempt `good_from` on, "bad" before; raises for sample entities named 'boom'."""

    backend_id = "script"
    adds_filler = False
    uses_feedback = False

    def __init__(self, good_from: int) -> None:
        self.good_from = good_from
        self.calls: list[tuple[int, int]] = []

    def write(self, entities, seed, attempt=0, feedback=""):
        self.calls.append((seed, attempt))
        if any(e.name == "boom" for e in entities):
            raise RuntimeError("no grammar for boom")
        text = "good" if attempt >= self.good_from else "bad"
        return text, text


class TableExtractor(ExtractOneByOne):
    backend_id = "table"
    table = {"good": [EFF, RLL], "bad": [RLL]}

    def extract(self, text, section=""):
        return [Entity(e.name, e.type, section=section) for e in self.table[text]]


def _batch(n=3, entities=(EFF, RLL)):
    return [Sample(f"s{i}", i, seed=100 + i, entities=list(entities)) for i in range(n)]


def _stage(good_from, max_attempts=3):
    return WriteVerifyStage(ScriptWriter(good_from), Verifier(TableExtractor()), max_attempts=max_attempts)


def test_is_a_stage():
    stage = _stage(0)
    assert isinstance(stage, Stage) and stage.name == "write" and stage.requires == ("entities",)
    assert set(stage.provides) == {"findings", "impression", "extracted", "write_attempts"}
    assert isinstance(LabelStage(), Stage) and LabelStage.provides == ("labels",)


def test_first_attempt_ok():
    batch = _stage(0).process(_batch())
    for s in batch:
        assert s.ok and s.write_attempts == 1 and s.history == []
        assert (s.findings, s.impression) == ("good", "good")
        assert sorted(e.key for e in s.extracted) == sorted([EFF.key, RLL.key] * 2)
        assert {e.section for e in s.extracted} == {"findings", "impression"}
        assert s.backends["write"] == "script"


def test_rewrite_until_verified_with_stable_seed():
    stage = _stage(2)
    (s,) = stage.process(_batch(1))
    assert s.ok and s.write_attempts == 3
    assert s.history == [
        "write#1: missing_entities missing: pleural_effusion|DISEASE, findings:pleural_effusion|DISEASE",
        "write#2: missing_entities missing: pleural_effusion|DISEASE, findings:pleural_effusion|DISEASE",
    ]
    seeds = {seed for seed, _ in stage.writer.calls}
    assert len(seeds) == 1 and [a for _, a in stage.writer.calls] == [0, 1, 2]


def test_reject_after_max_attempts_keeps_last_report():
    (s,) = _stage(5, max_attempts=2).process(_batch(1))
    assert not s.ok and s.rejected.stage == "write" and s.rejected.reason == "verify_mismatch"
    assert "after 2 attempts: missing_entities" in s.rejected.detail
    assert len(s.history) == 2 and s.impression == "bad" and s.write_attempts == 2


def test_without_verification_the_first_report_is_kept_and_the_mismatch_recorded():
    stage = WriteVerifyStage(ScriptWriter(5), Verifier(TableExtractor()), max_attempts=3, enforce=False)
    (s,) = stage.process(_batch(1))
    assert s.ok and s.write_attempts == 1 and (s.findings, s.impression) == ("bad", "bad")
    assert s.history == ["unverified: missing_entities missing: pleural_effusion|DISEASE, findings:pleural_effusion|DISEASE"]
    assert [e.key for e in s.extracted] == [RLL.key, RLL.key]  # the labels see what was written
    assert [a for _, a in stage.writer.calls] == [0]


def test_writer_error_rejects_only_that_sample_and_rejected_are_skipped():
    batch = _batch(2) + _batch(1, entities=(Entity("boom", "DISEASE"),))
    batch[1].reject("sample", "test")
    stage = _stage(0)
    out = stage.process(batch)
    assert out[0].ok and out[0].findings == "good"
    assert out[1].rejected.reason == "test" and out[1].findings == ""  # untouched
    assert out[2].rejected.reason == "writer_error" and "no grammar for boom" in out[2].rejected.detail
    assert len(stage.writer.calls) == 2


def test_exact_mode_needs_a_writer_without_fillers():
    writer = ScriptWriter(0)
    writer.adds_filler = True
    with pytest.raises(UserError, match="filler=False"):
        WriteVerifyStage(writer, Verifier(TableExtractor(), mode="exact"))
    with pytest.raises(UserError, match="max_attempts"):
        WriteVerifyStage(ScriptWriter(0), Verifier(TableExtractor()), max_attempts=0)


def test_label_stage():
    def labeller(entities, ontology=None):
        if any(e.name == "boom" for e in entities):
            raise ValueError("bad entity")
        return {"pleural_effusion": 1.0 if any(e.key == EFF.key for e in entities) else None}

    batch = _batch(2)
    batch[0].extracted = [EFF]
    batch[1].extracted = [Entity("boom", "DISEASE")]
    out = LabelStage(labeller=labeller).process(batch)
    assert out[0].labels == {"pleural_effusion": 1.0}
    assert out[1].rejected.stage == "label" and out[1].rejected.reason == "label_error"


def test_built_in_writer_extractor_and_labels_end_to_end():
    from syncxr.text import lexicon_extractor as extract
    from syncxr.records import CHEXPERT14_SNAKE, derive_seed
    from syncxr.text.sample import BalancedSampler
    from syncxr.text.grammar_writer import GrammarWriter
    from syncxr.vocab import load_ontology

    onto = load_ontology()
    sets = BalancedSampler(onto, seed=2).sample(40)
    batch = [Sample(f"s{i}", i, derive_seed(0, f"s{i}"), entities=ents) for i, ents in enumerate(sets)]
    stage = WriteVerifyStage(GrammarWriter(onto), Verifier(extract.LexiconExtractor(), ontology=onto))
    LabelStage(onto).process(stage.process(batch))
    assert sum(s.ok for s in batch) >= 38
    for s in (s for s in batch if s.ok):
        assert s.findings and s.impression and s.backends["write"] == GrammarWriter.backend_id
        assert {e.key for e in s.extracted if e.section == "impression"} == {e.key for e in s.entities}
        assert set(s.labels) == {*CHEXPERT14_SNAKE, "no_finding_chexpert"}
        for e in s.entities:  # a present finding with a CheXpert label is labelled positive
            label = onto.concept(e.name).chexpert
            if e.assertion == "present" and label and label != "No Finding" and e.type != "ANATOMY":
                assert s.labels[label.lower().replace(" ", "_")] == 1.0, (e.key, s.labels)


def test_writer_error_reason_code_and_feedback_on_rewrite():
    """A writer exception's `.reason` becomes the reject reason; writers that accept `feedback`
    get the verifier's complaint on a rewrite."""
    from syncxr.records import Entity, Sample, Verdict
    from syncxr.text.stages import WriteVerifyStage

    class ParseError(SampleError):
        reason = "write_parse_error"

    class FlakyWriter(WriteOneByOne):
        backend_id = "fake"
        adds_filler = False
        uses_feedback = True

        def __init__(self):
            self.feedback = []

        def write(self, entities, seed, attempt=0, feedback=""):
            self.feedback.append(feedback)
            if attempt == 1:
                raise ParseError("no IMPRESSION header")
            return "Findings.", "Impression."

    class NeverOk:
        mode = "impression"

        def extract(self, findings, impression):
            return []

        def extract_batch(self, reports):
            return [[] for _ in reports]

        def check(self, entities, findings, impression, extracted=None):
            return Verdict(False, "missing_entities", "pneumothorax|DISEASE")

    writer = FlakyWriter()
    sample = Sample("s0", 0, 1, entities=[Entity("pneumothorax", "DISEASE")])
    WriteVerifyStage(writer, NeverOk(), max_attempts=3).process([sample])
    assert sample.rejected is not None and sample.rejected.reason == "write_parse_error"
    assert writer.feedback == ["", "missing_entities pneumothorax|DISEASE"]
