"""Paired bootstrap statistics: exact AUCs under resampling, p-values, Holm, and why pairing matters."""

from __future__ import annotations

import time

import numpy as np
import pytest

from syncxr.evaluate.metrics import roc_auc
from syncxr.report.paired import (
    adjust,
    benjamini_hochberg,
    bootstrap_weights,
    compare,
    holm,
    planned,
    run_aucs,
    weighted_auc,
)


def _labels(n: int, k: int, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).random((n, k)) < 0.35).astype(float)


def test_weighted_auc_equals_the_auc_of_the_resampled_arrays_with_ties_and_unknown_labels() -> None:
    rng = np.random.default_rng(1)
    y = (rng.random(200) < 0.3).astype(float)
    y[:7] = np.nan  # unknown: left out
    s = np.round(rng.random(200) + 0.3 * np.nan_to_num(y), 1)  # rounded: many ties across labels
    w = bootstrap_weights(200, n_boot=30, seed=5)
    idx = np.random.default_rng(5).integers(0, 200, (30, 200))  # the same draws bootstrap_weights made
    got = weighted_auc(y, s, w)
    want = [roc_auc(y[i][~np.isnan(y[i])] == 1, s[i][~np.isnan(y[i])]) for i in idx]
    assert got[0] == pytest.approx(roc_auc(y[7:] == 1, s[7:]))  # row 0: the full sample
    np.testing.assert_allclose(got[1:], want, atol=1e-12)


def test_identical_predictions_differ_by_zero_with_p_one() -> None:
    y = _labels(150, 4)
    s = np.random.default_rng(2).random((150, 4)) + y
    w = bootstrap_weights(150, 500, 0)
    a = run_aucs(y, s, w)
    row = compare(a, a.copy(), ["a", "b", "c", "d"])
    assert row["diff"] == 0.0 and row["ci"] == [0.0, 0.0] and row["p"] == 1.0
    assert all(v["p"] == 1.0 and v["diff"] == 0.0 for v in row["per_finding"].values())


def test_a_planted_clear_difference_is_significant_and_its_ci_excludes_zero() -> None:
    rng = np.random.default_rng(3)
    y = _labels(300, 5, seed=3)
    good = y * 1.5 + rng.normal(size=y.shape)  # AUC about 0.85
    poor = y * 0.3 + rng.normal(size=y.shape)  # AUC about 0.58
    w = bootstrap_weights(300, 1000, 0)
    row = compare(run_aucs(y, good, w), run_aucs(y, poor, w), list("abcde"))
    assert row["diff"] > 0.15
    assert row["p"] < 0.01 and row["ci"][0] > 0
    assert row["a"] - row["b"] == pytest.approx(row["diff"])


def test_seeds_are_averaged_inside_each_resample() -> None:
    rng = np.random.default_rng(4)
    y = _labels(120, 2, seed=4)
    runs = np.stack([y + rng.normal(size=y.shape) for _ in range(3)])
    w = bootstrap_weights(120, 200, 1)
    a = run_aucs(y, runs, w)  # (3, 201, 2)
    b = run_aucs(y, runs[:1], w)
    row = compare(a, b, ["x", "y"])
    assert row["a"] == pytest.approx(a[:, 0, :].mean())
    assert row["diff"] == pytest.approx(a[:, 0, :].mean() - b[0, 0, :].mean())


def test_holm_matches_a_hand_computation() -> None:
    p = [0.01, 0.04, 0.03, 0.005, None]
    # sorted: 0.005*4=0.02, 0.01*3=0.03, 0.03*2=0.06, 0.04*1=0.04 -> monotone 0.06
    assert holm(p)[:4] == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm(p)[4] is None
    assert holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])  # capped at 1
    # BH: sorted 0.005*4/1=0.02, 0.01*4/2=0.02, 0.03*4/3=0.04, 0.04*4/4=0.04
    assert benjamini_hochberg(p)[:4] == pytest.approx([0.02, 0.04, 0.04, 0.02])
    rows = adjust([{"p": 0.01}, {"p": 0.04}, {"p": None}])
    assert rows[0]["p_holm"] == pytest.approx(0.02) and rows[1]["p_holm"] == pytest.approx(0.04)
    assert rows[2]["p_holm"] is None


def test_pairing_removes_per_image_noise_that_both_groups_share() -> None:
    """How hard each image is (shared noise) moves both models alike: the paired CI of the
    difference is much narrower than resampling each group's images independently."""
    rng = np.random.default_rng(6)
    n = 300
    y = _labels(n, 3, seed=6)
    hardness = rng.normal(scale=2.0, size=y.shape)  # shared by both models
    a_scores = y * 1.2 + hardness + rng.normal(scale=0.3, size=y.shape)
    b_scores = y * 1.0 + hardness + rng.normal(scale=0.3, size=y.shape)
    w = bootstrap_weights(n, 1000, 0)
    paired = compare(run_aucs(y, a_scores, w), run_aucs(y, b_scores, w), list("abc"))
    unpaired = compare(run_aucs(y, a_scores, w), run_aucs(y, b_scores, bootstrap_weights(n, 1000, 99)), list("abc"))
    width = lambda r: r["ci"][1] - r["ci"][0]
    assert paired["diff"] == pytest.approx(unpaired["diff"])  # same point estimate
    assert width(paired) < 0.4 * width(unpaired)
    assert paired["p"] < 0.01 and unpaired["p"] > 0.05  # only the paired test sees it


def test_ten_runs_of_three_hundred_images_take_seconds() -> None:
    y = _labels(300, 6, seed=7)
    s = np.random.default_rng(7).random((10, 300, 6))
    t0 = time.perf_counter()
    a = run_aucs(y, s, bootstrap_weights(300, 1000, 0))
    assert a.shape == (10, 1001, 6)
    assert time.perf_counter() - t0 < 10


def _run(arm: str, seed: int = 0, **extra: object) -> dict:
    group = extra.get("group", arm)
    return {"run": f"{group}-s{seed}", "arm": arm, "objective": "convirt", "seed": seed, "evals": {}, **extra}


def test_planned_comparisons_cover_arms_ablations_and_scaling_with_old_manifest_defaults() -> None:
    runs = [_run("real"), _run("synthetic"), _run("mixed"),
            _run("synthetic", variant="no_balance", fraction=1.0, group="synthetic~no_balance"),
            _run("synthetic", variant=None, fraction=0.25, group="synthetic@25%"),
            _run("real", variant=None, fraction=0.5, group="real@50%")]
    got = {(p["kind"], p["comparison"]) for p in planned(runs)}
    assert got == {("arms", "synthetic − real"), ("arms", "mixed − real"), ("arms", "mixed − synthetic"),
                   ("ablation", "synthetic~no_balance − synthetic"), ("scaling", "synthetic@25% − synthetic"),
                   ("scaling", "real@50% − real")}
    assert planned([_run("real")]) == []  # nothing to compare
