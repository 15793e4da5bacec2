"""The QC filter on the real phantom renderer, on seeds the bank and the calibration never saw."""

import pytest

from syncxr.qc.bank import build_bank
from syncxr.qc.filter import DEFAULT_THRESHOLD, BankFilter, evaluate_filter

SIZE = 128
N = 12


@pytest.fixture(scope="module")
def result() -> dict:
    bank = build_bank(6, size=SIZE, seed=0)  # the phantom renderer is the default
    return evaluate_filter(BankFilter(bank, threshold=DEFAULT_THRESHOLD), n=N, size=SIZE, seed=3)


def test_recall_and_false_rejects_on_fresh_phantom_renders(result):
    assert result["clean"]["false_reject_rate"] <= 1 / N  # at most one of 12 clean renders
    assert result["overall"]["recall"] >= 0.85, result["per_defect"]
    for defect, scores in result["per_defect"].items():
        assert scores["recall"] >= 8 / N, (defect, scores)


def test_rejects_name_a_reason(result):
    reasons = {r for scores in result["per_defect"].values() for r in scores["reasons"]}
    assert "qc_bank_similarity" in reasons
    assert reasons <= {"qc_bank_similarity", "qc_too_dark", "qc_too_bright", "qc_low_contrast", "qc_clipped", "qc_blank"}
    assert result["per_defect"]["inverted"]["recall"] == 1.0
    assert result["per_defect"]["noisy"]["reasons"] == {"qc_bank_similarity": N}
