"""The dataset card's realism section: shown from a realism.json the benchmark left, else how to
measure it; a broken file is named, not fatal."""

import json

from syncxr.report.card_realism import REALISM_FILE, read_realism, realism_section


def test_no_file_says_how_to_measure(tmp_path):
    assert read_realism(tmp_path) is None
    text = "\n".join(realism_section(None))
    assert "Not measured" in text and "benchmarks/realism.py" in text and REALISM_FILE in text


def test_figures_from_the_benchmark_file(tmp_path):
    (tmp_path / REALISM_FILE).write_text(json.dumps({
        "discriminator_auc": 0.8765, "discriminator_accuracy": 0.8, "real_images": 50, "renders": 48,
        "renderer": "phantom-v3", "statistics": {"grain": {"real": 1.6, "phantom": 1.5}},
        "command": "python benchmarks/realism.py --real R --n 48 --seed 0 --json D/realism.json"}))
    text = "\n".join(realism_section(read_realism(tmp_path)))
    assert "| 0.88 |" in text and "50 / 48" in text and "phantom-v3" in text
    assert "1.60 / 1.50" in text and "--seed 0" in text


def test_broken_file_is_named(tmp_path):
    (tmp_path / REALISM_FILE).write_text('{"renders": 3}')
    text = "\n".join(realism_section(read_realism(tmp_path)))
    assert "realism.json unreadable" in text and "KeyError" in text


def test_per_cause_rewrites_redraws_and_rejects():
    from collections import Counter

    from syncxr.report.card import CardStats, _causes_section

    st = CardStats()
    st.retry_reasons = Counter({"write: missing_entities": 7, "image: qc_bank_similarity": 2})
    st.reject_reasons = Counter({"write: missing_entities": 1, "image: qc_heuristics": 3})
    st.reject_examples = {"image: qc_heuristics": "too dark"}
    text = "\n".join(_causes_section(st))
    assert "Rewrites: **7**; redraws: **2**" in text and "rejected: **4**" in text
    assert "| write: missing_entities | 7 | 0 | 1 |  |" in text
    assert "| image: qc_bank_similarity | 0 | 2 | 0 |  |" in text
    assert "| image: qc_heuristics | 0 | 0 | 3 | too dark |" in text
    assert "_none_" in "\n".join(_causes_section(CardStats()))


def test_card_counts_what_an_ablation_let_through():
    from syncxr.report.card import CardStats, _causes_section

    st = CardStats(unverified=169)
    st.faults_kept.update({"rotated": 2, "cropped": 1})
    text = "\n".join(_causes_section(st))
    assert "Kept although verification failed (verify.enabled: false): **169** reports" in text
    assert "acquisition fault (image.defect_rate; QC missed them or was off): **3** (rotated 2, cropped 1)" in text
    assert "Kept although" not in "\n".join(_causes_section(CardStats()))
