"""Classification metrics with bootstrap confidence intervals.

Written with numpy only (scikit-learn is used in the tests as the reference). Conventions:
- AUC is the Mann-Whitney U statistic with average ranks for ties (identical to sklearn).
- F1 and ACC are reported at a threshold chosen elsewhere (the max-F1 threshold on validation
  rows, `tune_thresholds`) and held fixed, also across bootstrap resamples; a sample is predicted
  positive when its score is >= the threshold. Without thresholds only AUC is reported.
- NaN labels mean "unknown" and are excluded per finding.
- A finding with no positives or no negatives cannot have an AUC: it is reported as skipped with a
  reason instead of a silent NaN.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.stats import rankdata


def roc_auc(y: np.ndarray, s: np.ndarray) -> float:
    """Area under the ROC curve for binary labels y (0/1) and scores s (ties count half)."""
    y = np.asarray(y, dtype=bool)
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError("AUC needs at least one positive and one negative")
    ranks = rankdata(s)  # average ranks for ties
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def best_f1(y: np.ndarray, s: np.ndarray) -> tuple[float, float, float]:
    """(threshold, F1, accuracy) at the threshold over the distinct scores that maximises F1.

    Ties in F1 are broken toward the highest threshold (the first one met scanning down).
    """
    y = np.asarray(y, dtype=bool)
    s = np.asarray(s, dtype=np.float64)
    order = np.argsort(-s, kind="mergesort")
    s_sorted, y_sorted = s[order], y[order]
    tp = np.cumsum(y_sorted)
    fp = np.cumsum(~y_sorted)
    # Only the last index of each run of equal scores is a valid cut (predict s >= threshold).
    last = np.r_[s_sorted[1:] != s_sorted[:-1], True]
    tp, fp, thr = tp[last], fp[last], s_sorted[last]
    n_pos = int(y.sum())
    fn = n_pos - tp
    f1 = np.divide(2 * tp, 2 * tp + fp + fn, out=np.zeros(tp.shape, float), where=(2 * tp + fp + fn) > 0)
    i = int(np.argmax(f1))
    tn = (y.size - n_pos) - fp[i]
    acc = (tp[i] + tn) / y.size
    return float(thr[i]), float(f1[i]), float(acc)


def f1_acc_at(y: np.ndarray, s: np.ndarray, threshold: float) -> tuple[float, float]:
    """(F1, accuracy) of predicting s >= threshold for binary labels y."""
    y = np.asarray(y, dtype=bool)
    pred = np.asarray(s, dtype=np.float64) >= threshold
    tp = int(np.sum(pred & y))
    denom = int(pred.sum()) + int(y.sum())
    return (2 * tp / denom if denom else 0.0), float(np.mean(pred == y))


def tune_thresholds(labels: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """(K,) max-F1 threshold of each finding on these rows (NaN labels ignored); NaN where a
    finding lacks a positive or a negative here. Call it on validation rows, never on test rows."""
    labels = np.asarray(labels, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64)
    out = np.full(labels.shape[1], np.nan)
    for k in range(labels.shape[1]):
        known = ~np.isnan(labels[:, k])
        if skip_reason(labels[known, k]) is None:
            out[k] = best_f1(labels[known, k], scores[known, k])[0]
    return out


def skip_reason(y: np.ndarray) -> str | None:
    """Why a finding cannot be scored (None if it can). y has NaN already removed."""
    n_pos = int((y == 1).sum())
    if y.size == 0:
        return "no labelled images"
    if n_pos == 0:
        return f"no positives among {y.size} labelled images"
    if n_pos == y.size:
        return f"no negatives among {y.size} labelled images"
    return None


def _percentile_ci(values: list[float]) -> list[float] | None:
    if not values:
        return None
    lo, hi = np.percentile(np.asarray(values), [2.5, 97.5])
    return [float(lo), float(hi)]


def multilabel_metrics(
    labels: np.ndarray, scores: np.ndarray, findings: list[str], n_boot: int = 1000, seed: int = 0,
    thresholds: np.ndarray | None = None, f1_rows: np.ndarray | None = None,
) -> dict[str, Any]:
    """Per-finding AUC, and F1/ACC at fixed thresholds, with paired bootstrap 95% CIs, and their means.

    labels: (N, K) float with NaN = unknown; scores: (N, K).
    AUC uses every row. F1 and ACC use `f1_rows` (default: every row) at `thresholds` (K,), chosen
    by the caller on other rows (validation) and kept fixed in every resample; a NaN threshold (the
    tuning rows lacked a class) or thresholds=None reports no F1/ACC for that finding.
    The bootstrap resamples images (the same indices for every finding, so the CI of the mean is
    paired; F1/ACC resample `f1_rows`); a resample in which a finding lacks a class is skipped for it.
    """
    labels = np.asarray(labels, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64)
    if labels.shape != scores.shape or labels.shape[1] != len(findings):
        raise ValueError(f"labels {labels.shape}, scores {scores.shape}, {len(findings)} findings disagree")
    k_all = labels.shape[1]
    thr = np.full(k_all, np.nan) if thresholds is None else np.asarray(thresholds, dtype=np.float64)
    if thr.shape != (k_all,):
        raise ValueError(f"thresholds {thr.shape} do not match {k_all} findings")
    rows = np.arange(labels.shape[0]) if f1_rows is None else np.asarray(f1_rows, dtype=np.int64)
    per: dict[str, dict[str, Any]] = {}
    skipped: dict[str, str] = {}
    valid: list[int] = []
    for k, name in enumerate(findings):
        known = ~np.isnan(labels[:, k])
        y = labels[known, k]
        reason = skip_reason(y)
        if reason:
            skipped[name] = reason
            continue
        per[name] = {"auc": roc_auc(y, scores[known, k]), "n_pos": int(y.sum()), "n": int(y.size),
                     **_f1_point(labels[rows, k], scores[rows, k], thr[k])}
        valid.append(k)

    with_f1 = [k for k in valid if per[findings[k]]["f1"] is not None]
    boots = {findings[k]: {"auc": [], "f1": [], "acc": []} for k in valid}
    mean_boot: dict[str, list[float]] = {"auc": [], "f1": [], "acc": []}
    rng = np.random.default_rng(seed)  # AUC resamples
    rng_f1 = np.random.default_rng([seed, 1])  # F1/ACC resamples of the report rows: their own stream
    for _ in range(n_boot if valid else 0):
        idx = rng.integers(0, labels.shape[0], labels.shape[0])
        aucs = []
        for k in valid:
            y = labels[idx, k]
            known = ~np.isnan(y)
            if skip_reason(y[known]) is None:
                aucs.append(roc_auc(y[known], scores[idx, k][known]))
                boots[findings[k]]["auc"].append(aucs[-1])
        if len(aucs) == len(valid):  # mean only over resamples where every finding scored
            mean_boot["auc"].append(float(np.mean(aucs)))
        if not with_f1:
            continue
        sel = rows[rng_f1.integers(0, rows.size, rows.size)]
        got: dict[str, list[float]] = {"f1": [], "acc": []}
        for k in with_f1:
            y = labels[sel, k]
            known = ~np.isnan(y)
            if skip_reason(y[known]) is None:
                f1, acc = f1_acc_at(y[known], scores[sel, k][known], thr[k])
                for m, v in (("f1", f1), ("acc", acc)):
                    boots[findings[k]][m].append(v)
                    got[m].append(v)
        if len(got["f1"]) == len(with_f1):
            for m in got:
                mean_boot[m].append(float(np.mean(got[m])))

    for name, b in boots.items():
        for m, vals in b.items():
            per[name][f"{m}_ci"] = _percentile_ci(vals)
    out: dict[str, Any] = {"per_finding": per, "skipped": skipped}
    for m in ("auc", "f1", "acc"):
        vals = [p[m] for p in per.values() if p[m] is not None]
        out[f"mean_{m}"] = float(np.mean(vals)) if vals and (m == "auc" or len(vals) == len(per)) else None
        out[f"mean_{m}_ci"] = _percentile_ci(mean_boot[m]) if out[f"mean_{m}"] is not None else None
    return out


def _f1_point(y: np.ndarray, s: np.ndarray, threshold: float) -> dict[str, Any]:
    """F1/ACC/threshold of one finding on its report rows (NaN labels dropped); None when unscorable."""
    known = ~np.isnan(y)
    if np.isnan(threshold) or skip_reason(y[known]) is not None:
        return {"f1": None, "acc": None, "threshold": None if np.isnan(threshold) else float(threshold)}
    f1, acc = f1_acc_at(y[known], s[known], threshold)
    return {"f1": f1, "acc": acc, "threshold": float(threshold)}


def _macro_f1(y: np.ndarray, pred: np.ndarray, n_classes: int) -> float:
    f1s = []
    for c in range(n_classes):
        tp = np.sum((pred == c) & (y == c))
        denom = np.sum(pred == c) + np.sum(y == c)
        if np.sum(y == c) == 0:
            continue  # a class absent from the ground truth does not enter the macro mean
        f1s.append(2 * tp / denom if denom else 0.0)
    return float(np.mean(f1s)) if f1s else 0.0


def multiclass_metrics(
    y: np.ndarray, probs: np.ndarray, classes: list[str], n_boot: int = 1000, seed: int = 0
) -> dict[str, Any]:
    """Accuracy and macro-F1 of argmax predictions with bootstrap CIs, plus one-vs-rest AUC per class.

    y: (N,) int class indices; probs: (N, C) class probabilities.
    """
    y = np.asarray(y, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    pred = probs.argmax(axis=1)
    c = len(classes)
    out: dict[str, Any] = {
        "accuracy": float(np.mean(pred == y)),
        "macro_f1": _macro_f1(y, pred, c),
        "per_finding": {},
        "skipped": {},
    }
    for k, name in enumerate(classes):
        yk = (y == k).astype(np.float64)
        reason = skip_reason(yk)
        if reason:
            out["skipped"][name] = reason
            continue
        out["per_finding"][name] = {
            "auc": roc_auc(yk, probs[:, k]),
            "recall": float(np.mean(pred[y == k] == k)),
            "n_pos": int(yk.sum()),
            "n": int(yk.size),
        }
    rng = np.random.default_rng(seed)
    acc_b, f1_b = [], []
    for _ in range(n_boot):
        idx = rng.integers(0, y.size, y.size)
        acc_b.append(float(np.mean(pred[idx] == y[idx])))
        f1_b.append(_macro_f1(y[idx], pred[idx], c))
    out["accuracy_ci"] = _percentile_ci(acc_b)
    out["macro_f1_ci"] = _percentile_ci(f1_b)
    aucs = [p["auc"] for p in out["per_finding"].values()]
    out["mean_auc"] = float(np.mean(aucs)) if aucs else None
    return out


def mean_ci(values: np.ndarray, n_boot: int = 1000, seed: int = 0) -> tuple[float, list[float] | None]:
    """Mean of per-item values (NaN ignored) and its bootstrap 95% CI over items."""
    v = np.asarray(values, dtype=np.float64)
    v = v[~np.isnan(v)]
    if v.size == 0:
        return float("nan"), None
    rng = np.random.default_rng(seed)
    boots = [float(np.mean(v[rng.integers(0, v.size, v.size)])) for _ in range(n_boot)]
    return float(np.mean(v)), _percentile_ci(boots)


# --- grounding metrics on one (map, ground-truth region) pair --------------------------------


def pointing_game(saliency: np.ndarray, gt: np.ndarray) -> float:
    """Fraction of the map's maximal pixels that fall inside the ground-truth region.

    With a unique maximum this is the classic hit (1.0) / miss (0.0). Sharing credit over tied
    maxima keeps a constant map at chance level instead of an arbitrary hit or miss.
    """
    top = saliency == saliency.max()
    return float(np.sum(top & gt) / np.sum(top))


def region_metrics(saliency01: np.ndarray, gt: np.ndarray, threshold: float) -> dict[str, float]:
    """Recall, precision, IoU and Dice of {map >= threshold} against the region.

    An empty prediction has precision 0 (nothing correct was claimed), so it cannot score well.
    """
    pred = saliency01 >= threshold
    tp = float(np.sum(pred & gt))
    n_pred, n_gt = float(pred.sum()), float(gt.sum())
    union = n_pred + n_gt - tp
    return {
        "recall": tp / n_gt if n_gt else 0.0,
        "precision": tp / n_pred if n_pred else 0.0,
        "iou": tp / union if union else 0.0,
        "dice": 2 * tp / (n_pred + n_gt) if (n_pred + n_gt) else 0.0,
    }


def cnr(saliency: np.ndarray, gt: np.ndarray) -> float:
    """Contrast-to-noise ratio |mean_in - mean_out| / sqrt(var_in + var_out) (population variances).

    A region covering everything or nothing has no contrast to measure: NaN. A perfectly separating
    map (both variances 0, different means) is +inf.
    """
    inside, outside = saliency[gt], saliency[~gt]
    if inside.size == 0 or outside.size == 0:
        return float("nan")
    diff = abs(float(inside.mean()) - float(outside.mean()))
    denom = float(np.sqrt(inside.var() + outside.var()))
    if denom == 0.0:
        return 0.0 if diff == 0.0 else float("inf")
    return diff / denom


def minmax(saliency: np.ndarray) -> np.ndarray:
    """Scale a map to [0, 1]; a constant map becomes all zeros."""
    lo, hi = float(saliency.min()), float(saliency.max())
    if hi <= lo:
        return np.zeros_like(saliency, dtype=np.float32)
    return ((saliency - lo) / (hi - lo)).astype(np.float32)
