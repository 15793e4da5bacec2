"""The simulated clinical world: long-tailed, negation-heavy, MIMIC-CXR-shaped."""

from collections import Counter
import random

import pandas as pd

from syncxr.records import ABSENT, PRESENT
from syncxr.sim.world import SimWorld, concept_prevalence, roughen
from syncxr.vocab import load_ontology


def test_prevalence_is_long_tailed():
    prev = sorted(concept_prevalence(load_ontology()).values(), reverse=True)
    assert len(prev) >= 5
    assert prev[0] / prev[-1] > 20


def test_studies_are_deterministic_and_have_normals_and_negations():
    w1, w2 = SimWorld(seed=3), SimWorld(seed=3)
    s1 = [w1.study(i, i) for i in range(400)]
    s2 = [w2.study(i, i) for i in range(400)]
    assert [[e.key for e in s.entities] for s in s1] == [[e.key for e in s.entities] for s in s2]
    normal = sum(not s.positives for s in s1) / len(s1)
    assert 0.2 < normal < 0.5
    negated = sum(any(e.assertion == ABSENT for e in s.entities) for s in s1) / len(s1)
    assert negated > 0.4
    counts = Counter(e.name for s in s1 for e in s.entities if e.assertion == PRESENT)
    top, bottom = counts.most_common()[0][1], counts.most_common()[-1][1]
    assert top >= 10 * bottom



def test_no_report_denies_what_its_image_draws():
    """Issue 7: "pneumonia" is drawn as consolidation, so "no consolidation" beside it taught the
    model that consolidated lungs read "no consolidation" (19% of consolidation images before)."""
    onto = load_ontology()
    by = onto.by_name
    world = SimWorld(onto, seed=0)
    drawn_consolidation = 0
    for i in range(1500):
        s = world.study(i, i)
        drawn = {by[n].render for n in s.positives} - {None}
        denied = {by[e.name].render for e in s.entities if e.assertion == ABSENT} - {None}
        assert not drawn & denied, (i, [e.key for e in s.entities])
        drawn_consolidation += "consolidation" in drawn
    assert drawn_consolidation > 100  # the case the old world got wrong is exercised

def test_roughen_adds_noise_but_keeps_words():
    rng = random.Random(0)
    text = "There is a moderate right pleural effusion. No pneumothorax is identified."
    outs = {roughen(text, rng, p_typo=0.5, p_abbrev=1.0) for _ in range(20)}
    assert any("PTX" in o for o in outs)
    assert len(outs) > 3
    for o in outs:  # noise, not new content: same word count, each word the original up to swapped letters and case
        words, orig = o.split(), text.replace("pneumothorax", "PTX").split()
        assert len(words) == len(orig), o
        assert all(sorted(w.lower()) == sorted(v.lower()) for w, v in zip(words, orig)), o  # case may change


def test_reports_csv_and_mimic_layout(tmp_path):
    from syncxr.sim.corpus import write_mimic, write_reports_csv

    df = pd.read_csv(write_reports_csv(tmp_path / "r.csv", 50, seed=1), keep_default_na=False)
    assert list(df.columns) == ["uid", "findings", "impression"] and len(df) == 50
    root = write_mimic(tmp_path / "mimic", 12, seed=1, size=128)
    meta = pd.read_csv(root / "mimic-cxr-2.0.0-metadata.csv")
    split = pd.read_csv(root / "mimic-cxr-2.0.0-split.csv")
    chex = pd.read_csv(root / "mimic-cxr-2.0.0-chexpert.csv")
    assert len(meta) == len(split) == len(chex) == 12
    assert set(meta["ViewPosition"]) <= {"PA", "AP"}
    assert set(split["split"]) <= {"train", "validate", "test"}
    row = meta.iloc[0]
    folder = root / "files" / f"p{str(row.subject_id)[:2]}" / f"p{row.subject_id}"
    assert (folder / f"s{row.study_id}" / f"{row.dicom_id}.jpg").is_file()
    report = (folder / f"s{row.study_id}.txt").read_text()
    assert "FINAL REPORT" in report and ("IMPRESSION:" in report or "FINDINGS:" in report)
    assert set(chex.columns[2:]) >= {"Atelectasis", "No Finding", "Support Devices"}
