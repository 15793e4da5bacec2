"""Problem bank (save/load without pickle, user images) and BankFilter (reasons, recall, false rejects)."""

import json

import numpy as np
import pytest
from PIL import Image
from qc_toy import toy_chest

from syncxr.errors import UserError
from syncxr.qc.defects import DEFECTS, apply_defect
from syncxr.qc.bank import ProblemBank, bank_from_images, build_bank
from syncxr.qc.base import ImageFilter
from syncxr.qc.features import BuiltinFeatures
from syncxr.qc.filter import DEFAULT_THRESHOLD, BankFilter, choose_threshold, evaluate_filter


def render(seed: int, size: int) -> np.ndarray:
    return toy_chest(seed, size)


@pytest.fixture(scope="module")
def bank() -> ProblemBank:
    return build_bank(6, size=256, seed=0, render=render)


@pytest.fixture(scope="module")
def qc(bank) -> BankFilter:
    return BankFilter(bank)


def test_build_bank_labels_and_shape(bank):
    assert len(bank) == 6 * len(DEFECTS) and bank.features.shape[0] == len(bank)
    assert sorted(set(bank.labels)) == sorted(DEFECTS)
    assert bank.backend_id == BuiltinFeatures().backend_id  # the bank records the features it was built with


def test_save_load_round_trip_without_pickle(bank, tmp_path):
    path = bank.save(tmp_path / "bank.npz")
    side = json.loads((tmp_path / "bank.json").read_text())
    assert side["backend_id"] == bank.backend_id and side["n"] == len(bank)
    assert side["label_counts"] == {d: 6 for d in sorted(DEFECTS)}
    with np.load(path, allow_pickle=False) as z:  # would raise on object arrays
        assert z["labels"].dtype.kind == "U"
    back = ProblemBank.load(path)
    assert back.labels == bank.labels and back.backend_id == bank.backend_id
    assert np.array_equal(back.features, bank.features)


def test_load_errors_name_the_file(bank, tmp_path):
    path = bank.save(tmp_path / "b.npz")
    (tmp_path / "b.json").unlink()
    with pytest.raises(UserError, match="b.json"):
        ProblemBank.load(path)
    with pytest.raises(UserError, match="missing.npz"):
        ProblemBank.load(tmp_path / "missing.npz")


def test_filter_refuses_a_bank_of_another_backend(bank):
    other = ProblemBank(bank.features, bank.labels, "rad-dino")
    with pytest.raises(UserError, match="rad-dino"):
        BankFilter(other)


def test_bank_from_images_paths_and_arrays(tmp_path):
    bad = apply_defect(toy_chest(1, 128), "inverted", np.random.default_rng(0))
    Image.fromarray(bad).save(tmp_path / "judge_flag_inverted.png")
    b = bank_from_images([tmp_path / "judge_flag_inverted.png", bad])
    assert b.labels == ["judge_flag_inverted", "problem"]
    assert float(b.features[0] @ b.features[1]) > 0.999
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(UserError, match="broken.png"):
        bank_from_images([tmp_path / "broken.png"])


def test_verdict_reason_detail_and_scores(qc):
    assert isinstance(qc, ImageFilter)
    clean = qc.check(toy_chest(12345, 256))
    assert clean.ok and clean.reason == ""
    assert clean.scores["bank_max_sim"] <= DEFAULT_THRESHOLD and "h_mean" in clean.scores
    inv = qc.check(apply_defect(toy_chest(12345, 256), "inverted", np.random.default_rng(1)))
    assert not inv.ok and inv.reason == "qc_bank_similarity"
    assert "'inverted'" in inv.detail and inv.scores["bank_max_sim"] > DEFAULT_THRESHOLD


def test_heuristics_run_first_and_can_be_disabled(bank, qc):
    dark = (toy_chest(5, 256) // 8).astype(np.uint8)
    v = qc.check(dark)
    assert v.reason == "qc_too_dark" and "bank_max_sim" not in v.scores
    off = BankFilter(bank, heuristics=False)
    v2 = off.check(dark)
    assert v2.reason != "qc_too_dark" and "bank_max_sim" in v2.scores
    # with heuristics off, the bank alone decides
    assert v2.ok == (v2.scores["bank_max_sim"] <= off.threshold)
    assert v2.reason == ("" if v2.ok else "qc_bank_similarity")


def test_invalid_image_is_a_reject_not_a_crash(qc):
    out = qc.check_batch([np.zeros((8, 8, 3), np.uint8), toy_chest(3, 256)])
    assert out[0].reason == "qc_invalid_image" and not out[0].ok
    assert out[1].ok


def test_recall_and_false_reject_rate_on_fresh_images(bank):
    # Threshold chosen on one set of renders (seed 2), measured on another (seed 1), both disjoint
    # from the bank's seeds: 16 clean + 16 per defect.
    choice = choose_threshold(bank, n=8, seed=2, render=render, max_false_reject=0.0)
    result = evaluate_filter(BankFilter(bank, threshold=choice["threshold"]), n=16, size=256, seed=1, render=render)
    assert result["clean"]["false_reject_rate"] <= 0.1
    assert result["overall"]["recall"] >= 0.9
    for defect in ("noisy", "inverted", "foreign_object", "collimated", "overexposed", "underexposed"):
        assert result["per_defect"][defect]["recall"] >= 0.9, (defect, result["per_defect"][defect])


def test_choose_threshold_respects_the_false_reject_budget(bank):
    choice = choose_threshold(bank, n=8, seed=2, render=render, max_false_reject=0.0)
    assert choice["false_reject_rate"] == 0.0 and choice["recall"] >= 0.8
    assert -1.0 <= choice["threshold"] <= 1.0
