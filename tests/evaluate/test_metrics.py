import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, precision_recall_curve, roc_auc_score

from syncxr.evaluate.metrics import (
    best_f1,
    cnr,
    mean_ci,
    minmax,
    multiclass_metrics,
    multilabel_metrics,
    pointing_game,
    region_metrics,
    roc_auc,
    tune_thresholds,
)


@pytest.mark.parametrize("seed", range(5))
def test_auc_matches_sklearn_with_ties(seed):
    rng = np.random.default_rng(seed)
    y = rng.random(200) < 0.3
    s = np.round(rng.random(200) + 0.5 * y, 1)  # rounding creates many ties
    assert roc_auc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_best_f1_matches_sklearn(seed):
    rng = np.random.default_rng(seed)
    y = rng.random(300) < 0.25
    s = np.round(rng.normal(size=300) + y, 2)
    thr, f1, acc = best_f1(y, s)
    p, r, t = precision_recall_curve(y, s)
    f1s = 2 * p * r / np.maximum(p + r, 1e-12)
    assert f1 == pytest.approx(f1s.max(), abs=1e-9)
    pred = s >= thr
    assert f1 == pytest.approx(f1_score(y, pred), abs=1e-12)
    assert acc == pytest.approx(accuracy_score(y, pred), abs=1e-12)
    assert thr in set(t[np.isclose(f1s[:-1], f1s.max())])


def test_multilabel_nan_excluded_and_skips_reported():
    rng = np.random.default_rng(0)
    y = (rng.random((100, 3)) < 0.5).astype(np.float32)
    s = rng.random((100, 3))
    y[:10, 0] = np.nan
    y[:, 1] = 0.0  # no positives
    y[:, 2] = np.where(np.arange(100) < 5, np.nan, 1.0)  # no negatives among the known
    out = multilabel_metrics(y, s, ["a", "b", "c"], n_boot=20, seed=1)
    assert set(out["per_finding"]) == {"a"}
    assert out["per_finding"]["a"]["n"] == 90
    assert out["per_finding"]["a"]["auc"] == pytest.approx(roc_auc_score(y[10:, 0], s[10:, 0]))
    assert "no positives among 100" in out["skipped"]["b"]
    assert "no negatives among 95" in out["skipped"]["c"]
    assert out["mean_auc"] == out["per_finding"]["a"]["auc"]


def test_bootstrap_is_seeded_and_brackets_point():
    rng = np.random.default_rng(3)
    y = (rng.random((150, 2)) < 0.4).astype(np.float32)
    s = y + rng.normal(scale=0.8, size=y.shape)
    a = multilabel_metrics(y, s, ["x", "y"], n_boot=100, seed=7)
    b = multilabel_metrics(y, s, ["x", "y"], n_boot=100, seed=7)
    c = multilabel_metrics(y, s, ["x", "y"], n_boot=100, seed=8)
    assert a["per_finding"]["x"]["auc_ci"] == b["per_finding"]["x"]["auc_ci"]
    assert a["per_finding"]["x"]["auc_ci"] != c["per_finding"]["x"]["auc_ci"]
    lo, hi = a["mean_auc_ci"]
    assert lo < a["mean_auc"] < hi and hi - lo < 0.3


def test_multiclass_matches_sklearn():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 120)
    probs = rng.dirichlet([1, 1, 1], 120)
    probs[np.arange(120), y] += 0.3
    out = multiclass_metrics(y, probs, ["n", "p", "c"], n_boot=50)
    pred = probs.argmax(1)
    assert out["accuracy"] == pytest.approx(accuracy_score(y, pred))
    assert out["macro_f1"] == pytest.approx(f1_score(y, pred, average="macro"))
    assert out["per_finding"]["p"]["auc"] == pytest.approx(roc_auc_score(y == 1, probs[:, 1]))
    assert out["accuracy_ci"][0] <= out["accuracy"] <= out["accuracy_ci"][1]


def test_grounding_metrics_hand_cases():
    gt = np.zeros((4, 4), bool)
    gt[:2, :2] = True  # 4 pixels
    m = np.zeros((4, 4))
    m[0, 0] = 1.0
    assert pointing_game(m, gt) == 1.0
    m2 = np.zeros((4, 4))
    m2[3, 3] = 1.0
    assert pointing_game(m2, gt) == 0.0
    assert pointing_game(np.ones((4, 4)), gt) == pytest.approx(4 / 16)  # constant map = chance

    sal = np.zeros((4, 4))
    sal[:2, :3] = 0.8  # predicted 6 pixels, 4 of them correct
    r = region_metrics(sal, gt, 0.5)
    assert r == pytest.approx({"recall": 1.0, "precision": 4 / 6, "iou": 4 / 6, "dice": 8 / 10})
    assert region_metrics(np.zeros((4, 4)), gt, 0.5) == {"recall": 0.0, "precision": 0.0, "iou": 0.0, "dice": 0.0}

    # inside values [1,1,3,3] (mean 2, var 1); outside twelve values 0/2 half each (mean 1, var 1)
    c = np.zeros((4, 4))
    c[0, 0] = c[0, 1] = 1
    c[1, 0] = c[1, 1] = 3
    out_vals = np.array([0, 2] * 6, float)
    c[~gt] = out_vals
    assert cnr(c, gt) == pytest.approx(1 / np.sqrt(2))
    assert np.isnan(cnr(c, np.ones((4, 4), bool)))
    assert cnr(gt.astype(float), gt) == float("inf")


def test_minmax_and_mean_ci():
    assert minmax(np.array([[2.0, 4.0], [3.0, 2.0]])).tolist() == [[0.0, 1.0], [0.5, 0.0]]
    assert minmax(np.full((2, 2), 5.0)).max() == 0.0
    m, ci = mean_ci(np.array([1.0, 2.0, np.nan, 3.0]), n_boot=50)
    assert m == 2.0 and 1.0 <= ci[0] <= 2.0 <= ci[1] <= 3.0


def test_f1_and_acc_use_the_given_threshold_in_every_resample():
    y = np.r_[np.ones(40), np.zeros(60)].astype(np.float32)[:, None]
    s = y.copy() + 0.01  # perfectly separable: re-tuning in each resample would give F1 = 1 everywhere
    out = multilabel_metrics(y, s, ["a"], n_boot=50, seed=0, thresholds=np.array([0.5]))
    a = out["per_finding"]["a"]
    assert a["auc"] == 1.0 and a["f1"] == 1.0 and a["threshold"] == 0.5
    fixed_high = multilabel_metrics(y, s, ["a"], n_boot=50, seed=0, thresholds=np.array([2.0]))["per_finding"]["a"]
    # A fixed threshold above every score predicts nothing: F1 0, ACC 0.6, in the point and every resample.
    assert fixed_high["f1"] == 0.0 and fixed_high["f1_ci"] == [0.0, 0.0]
    assert fixed_high["acc"] == pytest.approx(0.6) and fixed_high["auc_ci"] == [1.0, 1.0]


def test_f1_rows_and_untuned_findings():
    rng = np.random.default_rng(4)
    y = (rng.random((200, 2)) < 0.4).astype(np.float32)
    s = y + rng.normal(scale=0.7, size=y.shape)
    rows = np.arange(100, 200)
    out = multilabel_metrics(y, s, ["a", "b"], n_boot=20, seed=0, thresholds=np.array([0.3, np.nan]), f1_rows=rows)
    a, b = out["per_finding"]["a"], out["per_finding"]["b"]
    pred = s[rows, 0] >= 0.3
    assert a["f1"] == pytest.approx(f1_score(y[rows, 0], pred)) and a["acc"] == pytest.approx(accuracy_score(y[rows, 0], pred))
    assert a["auc"] == pytest.approx(roc_auc_score(y[:, 0], s[:, 0]))  # AUC on every row
    assert b["f1"] is None and b["auc"] is not None
    assert out["mean_f1"] is None and out["mean_auc"] is not None  # a mean over part of the findings would mislead
    assert multilabel_metrics(y, s, ["a", "b"], n_boot=0)["per_finding"]["a"]["f1"] is None  # no thresholds, no F1


def test_tune_thresholds_is_max_f1_on_the_given_rows():
    rng = np.random.default_rng(2)
    y = (rng.random((120, 2)) < 0.3).astype(np.float32)
    s = y + rng.normal(size=y.shape)
    y[:, 1] = 0.0
    thr = tune_thresholds(y, s)
    assert thr[0] == best_f1(y[:, 0], s[:, 0])[0] and np.isnan(thr[1])
