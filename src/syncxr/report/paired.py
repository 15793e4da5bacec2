"""Paired bootstrap comparisons of groups of runs scored on the same test images.

    w = bootstrap_weights(n_images, n_boot=1000, seed=0)        # one resample set, shared by all runs
    a = run_aucs(labels, scores_a, w)                          # (R_a, B+1, K): row 0 is the full sample
    b = run_aucs(labels, scores_b, w)
    row = compare(a, b, names)                                 # diff, 95% CI, p (mean over findings)
    rows = holm(rows)                                          # p_holm (+ p_bh) across a table's rows

Why paired: every model is scored on the same images, and how hard an image is moves every
model's score the same way. Resampling image indices once and applying the resample to both
groups keeps that shared part out of the difference, so the CI of the difference is much narrower
than "do the two CIs overlap" suggests (tests/report/test_paired.py plants such noise).

Seeds: with several runs (seeds) per group, the group's metric in a resample is the mean of its
runs' metrics on that resample, so the CI covers image sampling for the seed-averaged model; seed
spread is reported separately (report/study.py).

AUC is computed from bootstrap *counts* instead of resampled arrays: a resample is a weight
vector w (how often each image was drawn), and with the scores sorted once per run and finding,
AUC(w) = sum over positives i of w_i * (weighted negatives below s_i + half those tied) / (W+ W-).
That is the Mann-Whitney AUC of the resampled data (ties count half, as in metrics.roc_auc) at
O(B x N) cost per run and finding, with no sort per resample.

p-value: two-sided bootstrap p = min(1, 2 * min(1 + #{d_b <= 0}, 1 + #{d_b >= 0}) / (B + 1)),
d_b the difference in resample b; its smallest value is 2 / (B + 1) (about 0.002 at B = 1000).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from syncxr.errors import UserError


def bootstrap_weights(n: int, n_boot: int = 1000, seed: int = 0) -> np.ndarray:
    """(n_boot + 1, n) draw counts: row 0 is the full sample (all ones), rows 1.. are resamples."""
    if n < 1:
        raise ValueError("bootstrap_weights needs at least one image")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_boot, n))
    flat = (idx + n * np.arange(n_boot)[:, None]).ravel()
    counts = np.bincount(flat, minlength=n_boot * n).reshape(n_boot, n).astype(np.float64)
    return np.vstack([np.ones((1, n)), counts])


def weighted_auc(y: np.ndarray, s: np.ndarray, w: np.ndarray) -> np.ndarray:
    """(B,) AUC of scores s (N,) for labels y (N,; 1 positive, 0 negative, anything else ignored)
    under each weight row of w (B, N); NaN where a row has no weighted positive or negative."""
    keep = (y == 0) | (y == 1)
    y, s, w = y[keep] == 1, np.asarray(s, dtype=np.float64)[keep], w[:, keep]
    if y.size == 0:
        return np.full(w.shape[0], np.nan)
    order = np.argsort(s, kind="mergesort")
    s, y, w = s[order], y[order], w[:, order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])  # first index of each run of tied scores
    group = np.cumsum(np.r_[True, s[1:] != s[:-1]]) - 1  # (N,) tie group of each sorted score
    neg_per_group = np.add.reduceat(w * ~y, starts, axis=1)  # (B, G)
    below = np.cumsum(neg_per_group, axis=1) - neg_per_group  # weighted negatives strictly below each group
    credit = below + 0.5 * neg_per_group  # (B, G): what one positive in that group scores
    pos_w = w * y
    num = np.einsum("bn,bn->b", pos_w, credit[:, group])
    w_pos, w_neg = pos_w.sum(axis=1), (w * ~y).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((w_pos > 0) & (w_neg > 0), num / (w_pos * w_neg), np.nan)


def run_aucs(labels: np.ndarray, scores: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(R, B+1, K) AUC of every run and finding under every weight row.

    labels (N, K) with 1/0 (NaN or other values: unknown, left out per finding); scores (R, N, K) or
    (N, K) for one run; weights from bootstrap_weights (row 0: the full sample)."""
    labels = np.asarray(labels, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim == 2:
        scores = scores[None]
    if scores.shape[1:] != labels.shape or weights.shape[1] != labels.shape[0]:
        raise ValueError(f"shapes disagree: labels {labels.shape}, scores {scores.shape}, weights {weights.shape}")
    out = np.empty((scores.shape[0], weights.shape[0], labels.shape[1]))
    for r in range(scores.shape[0]):
        for k in range(labels.shape[1]):
            out[r, :, k] = weighted_auc(labels[:, k], scores[r, :, k], weights)
    return out


def _summarise(d: np.ndarray) -> dict[str, Any]:
    """Point difference (index 0), percentile 95% CI and two-sided bootstrap p of d (B+1,)."""
    point, boots = float(d[0]), d[1:]
    boots = boots[np.isfinite(boots)]
    if not np.isfinite(point) or boots.size == 0:
        return {"diff": None, "ci": None, "p": None, "n_boot": int(boots.size)}
    below, above = int(np.sum(boots <= 0)), int(np.sum(boots >= 0))
    p = min(1.0, 2 * min(below + 1, above + 1) / (boots.size + 1))
    lo, hi = np.percentile(boots, [2.5, 97.5])
    return {"diff": point, "ci": [float(lo), float(hi)], "p": p, "n_boot": int(boots.size)}


def _percentile(boots: np.ndarray) -> list[float] | None:
    boots = boots[np.isfinite(boots)]
    return [float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5))] if boots.size else None


def group_metric(aucs: np.ndarray, findings: np.ndarray | None = None) -> np.ndarray:
    """(B+1,) the group's mean-over-findings AUC in each resample, averaged over its runs (seeds).
    `findings` (K,) bool selects the findings in the mean (default: those scorable on the full sample)."""
    if findings is None:
        findings = np.all(np.isfinite(aucs[:, 0, :]), axis=0)
    with _quiet():
        per_run = np.nanmean(aucs[:, :, findings], axis=2)  # (R, B+1)
        return np.nanmean(per_run, axis=0)


@contextmanager
def _quiet() -> Iterator[None]:
    """Silence numpy's 'mean of empty slice' for resamples where a finding has no positive."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def compare(a: np.ndarray, b: np.ndarray, names: Sequence[str]) -> dict[str, Any]:
    """Group a minus group b from run_aucs outputs computed with the SAME weights.

    Returns {"diff", "ci", "p", "n_boot", "a", "b", "per_finding": {name: {diff, ci, p}}}; "a" and
    "b" are the groups' seed-averaged mean AUCs on the full sample. Findings that either group
    cannot score on the full sample are left out of the mean (and of per_finding)."""
    ok = np.all(np.isfinite(a[:, 0, :]), axis=0) & np.all(np.isfinite(b[:, 0, :]), axis=0)
    ga, gb = group_metric(a, ok), group_metric(b, ok)
    out = {**_summarise(ga - gb), "a": float(ga[0]), "b": float(gb[0])}
    with _quiet():
        fa, fb = np.nanmean(a, axis=0), np.nanmean(b, axis=0)  # (B+1, K) seed-averaged per finding
    out["per_finding"] = {name: _summarise(fa[:, k] - fb[:, k]) for k, name in enumerate(names) if ok[k]}
    return out


def holm(p: Sequence[float | None]) -> list[float | None]:
    """Holm–Bonferroni adjusted p-values (None stays None and does not count as a comparison)."""
    idx = [i for i, v in enumerate(p) if v is not None]
    m = len(idx)
    out: list[float | None] = [None] * len(p)
    running = 0.0
    for rank, i in enumerate(sorted(idx, key=lambda i: p[i])):
        running = max(running, min(1.0, (m - rank) * float(p[i])))  # monotone: never below an earlier one
        out[i] = running
    return out


def benjamini_hochberg(p: Sequence[float | None]) -> list[float | None]:
    """Benjamini–Hochberg adjusted p-values (false discovery rate); None stays None."""
    idx = [i for i, v in enumerate(p) if v is not None]
    m = len(idx)
    out: list[float | None] = [None] * len(p)
    running = 1.0
    ranked = sorted(idx, key=lambda i: p[i])
    for rank in range(m, 0, -1):  # from the largest p down: cumulative minimum
        i = ranked[rank - 1]
        running = min(running, float(p[i]) * m / rank)
        out[i] = running
    return out


def adjust(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Add p_holm and p_bh to every row (one family: all the rows given)."""
    ps = [r.get("p") for r in rows]
    for r, h, b in zip(rows, holm(ps), benjamini_hochberg(ps)):
        r["p_holm"], r["p_bh"] = h, b
    return rows


# --- the study's comparisons ------------------------------------------------------------------

N_BOOT = 1000
ARM_PAIRS = (("synthetic", "real"), ("mixed", "real"), ("mixed", "synthetic"))


def run_meta(run: dict[str, Any]) -> dict[str, Any]:
    """variant / fraction / group of a manifest run record, with the defaults of older manifests."""
    variant = run.get("variant")
    fraction = float(run.get("fraction") if run.get("fraction") is not None else 1.0)
    return {"arm": run["arm"], "variant": variant, "fraction": fraction, "group": run.get("group") or run["arm"]}


def planned(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Which groups are compared, per objective: the arms (synthetic − real, mixed − real,
    mixed − synthetic, at full data and without ablation), every ablation against its arm's full
    group ("synthetic~no_balance" − "synthetic") and every data fraction against the same arm at 100%."""
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    for run in runs:
        meta = run_meta(run)
        groups.setdefault((run["objective"], meta["group"]), meta)
    out: list[dict[str, Any]] = []
    for objective in dict.fromkeys(o for o, _ in groups):
        mine = {g: m for (o, g), m in groups.items() if o == objective}
        base = {m["arm"]: g for g, m in mine.items() if m["variant"] is None and m["fraction"] == 1.0}
        for a, b in ARM_PAIRS:
            if a in base and b in base:
                out.append({"objective": objective, "kind": "arms", "a": base[a], "b": base[b], "comparison": f"{a} − {b}"})
        for g, m in mine.items():
            ref = base.get(m["arm"])
            if ref is None or g == ref:
                continue
            kind = "ablation" if m["variant"] is not None else "scaling"
            out.append({"objective": objective, "kind": kind, "a": g, "b": ref, "comparison": f"{g} − {ref}"})
    return out


def study_dir(manifest: dict[str, Any]) -> Path | None:
    """The study's output folder, read from the manifest's own `syncxr study ... --out DIR` command."""
    import shlex

    try:
        words = shlex.split(manifest.get("command") or "")
    except ValueError:
        return None
    if "--out" in words and words.index("--out") + 1 < len(words):
        return Path(words[words.index("--out") + 1])
    return None


def _labels(step: dict[str, Any], cache: dict[str, Any]) -> tuple[pd.DataFrame, str]:
    """The benchmark's labels as a frame indexed by the predictions' image column, loaded the way
    the evaluation loaded them (the eval step's DatasetSpec: relabel and views included)."""
    from syncxr.evaluate.suite import DatasetSpec, load_eval_dataset
    from syncxr.evaluate.zeroshot import image_ids

    spec = DatasetSpec(**step["config"]["dataset"])
    key = spec.model_dump_json()
    if key not in cache:
        ds = load_eval_dataset(spec)
        labels = np.asarray(ds.labels, dtype=np.float64)
        frame = pd.DataFrame(labels, columns=list(ds.findings), index=image_ids(ds, np.arange(labels.shape[0])))
        cache[key] = frame[~frame.index.duplicated(keep="first")]
    return cache[key], spec.dataset


def _metric_tables(task: str, result: dict[str, Any], preds: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """metric label -> predictions (image-indexed score columns) of one eval step; only the AUC
    metrics of multilabel zero-shot and fine-tune/linear-probe results (labels as in headline())."""
    from syncxr.report.study_summary import ZS_METRIC, _pct

    if result.get("mode") == "multiclass" or "image" not in preds:
        return {}
    preds = preds.set_index(preds["image"].astype(str))
    if task == "zeroshot":
        return {ZS_METRIC: preds}
    if task == "finetune" and "fraction" in preds:
        name = "linear probe" if result.get("method") == "linear_probe" else "fine-tune"
        return {f"{name} AUC @{_pct(f'{f:g}')}": g for f, g in preds.groupby("fraction")}
    return {}


def study_comparisons(manifest: dict[str, Any], out: str | Path | None = None, n_boot: int = N_BOOT,
                      seed: int | None = None) -> dict[str, Any]:
    """Paired bootstrap comparisons of every planned pair of groups, per benchmark and AUC metric.

    Returns {"n_boot", "seed", "method", "rows": [...], "group_cis": [...], "skipped": [reasons]}.
    group_cis: benchmark, objective, group, metric, value, ci (each group's seed-mean AUC with its
    bootstrap CI over the same resamples), per_finding {finding: ci}, n_images. A row: benchmark,
    objective, metric, kind (arms | ablation | scaling), comparison, a, b (group names), a_value and
    b_value (seed-averaged AUC), seeds_a, seeds_b, n_images, diff, ci, p, p_holm, p_bh, per_finding
    {finding: {diff, ci, p, p_holm, p_bh}}. Holm/BH families: all rows of one benchmark (every
    metric, objective and kind: the report's comparison table of that benchmark); per finding: all
    findings of all rows of one benchmark and metric."""
    out = Path(out) if out is not None else study_dir(manifest)
    steps = manifest.get("steps", {})
    seed = seed if seed is not None else int(((manifest.get("config") or {}).get("eval") or {}).get("defaults", {}).get("seed", 0))
    summary: dict[str, Any] = {"n_boot": n_boot, "seed": seed, "rows": [], "group_cis": [], "skipped": [],
                               "method": "paired bootstrap over the test images (one resample of image indices applied "
                                         "to every run; seeds averaged inside each resample); two-sided bootstrap p; "
                                         "Holm and Benjamini-Hochberg over the rows of each benchmark's table"}
    runs = manifest.get("runs", [])
    plan_rows = planned(runs)
    if not runs:
        return summary
    if out is None or not out.is_dir():
        summary["skipped"].append("no study folder to read predictions from (pass out=)")
        return summary
    by_group: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for run in runs:
        by_group.setdefault((run["objective"], run_meta(run)["group"]), []).append(run)
    label_cache: dict[str, Any] = {}
    benches = list(dict.fromkeys(b for r in runs for b in r.get("evals", {})))
    for bench in benches:
        rows = _bench_rows(bench, plan_rows, by_group, steps, out, label_cache, n_boot, seed, summary["skipped"],
                           summary["group_cis"])
        adjust(rows)
        for metric in dict.fromkeys(r["metric"] for r in rows):
            cells = [(r, f) for r in rows if r["metric"] == metric for f in r["per_finding"]]
            ps = [r["per_finding"][f]["p"] for r, f in cells]
            for (r, f), h, b in zip(cells, holm(ps), benjamini_hochberg(ps)):
                r["per_finding"][f].update(p_holm=h, p_bh=b)
        summary["rows"] += rows
    return summary


def _bench_rows(bench: str, plan_rows: list[dict[str, Any]], by_group: dict[tuple[str, str], list[dict[str, Any]]],
                steps: dict[str, Any], out: Path, label_cache: dict[str, Any], n_boot: int, seed: int,
                skipped: list[str], group_cis: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The comparison rows of one benchmark: loads each run's predictions once per metric."""
    # metric -> run name -> image-indexed predictions; plus the labels frame of the benchmark.
    tables: dict[str, dict[str, pd.DataFrame]] = {}
    labels = None
    involved = {r["run"]: r for runs in by_group.values() for r in runs}
    for name, run in involved.items():
        for task, step_name in run.get("evals", {}).get(bench, {}).items():
            step = steps.get(step_name) or {}
            csv = out / step_name / "predictions.csv"
            result_file = out / step_name / "results.json"
            if task not in ("zeroshot", "finetune") or not csv.is_file() or not result_file.is_file():
                continue
            try:
                if labels is None:
                    labels, _ = _labels(step, label_cache)
                result = json.loads(result_file.read_text())
                for metric, frame in _metric_tables(task, result, pd.read_csv(csv)).items():
                    tables.setdefault(metric, {})[name] = frame
            except (OSError, ValueError, KeyError, UserError) as e:  # a report must not die on one bad file
                skipped.append(f"{bench}: {step_name}: {e}")
    rows: list[dict[str, Any]] = []
    for metric, per_run in tables.items():
        rows += _metric_rows(bench, metric, per_run, labels, plan_rows, by_group, n_boot, seed, skipped, group_cis)
    return rows


def _metric_rows(bench: str, metric: str, per_run: dict[str, pd.DataFrame], labels: pd.DataFrame,
                 plan_rows: list[dict[str, Any]], by_group: dict[tuple[str, str], list[dict[str, Any]]],
                 n_boot: int, seed: int, skipped: list[str], group_cis: list[dict[str, Any]]) -> list[dict[str, Any]]:
    names = [c for c in labels.columns if all(c in f.columns for f in per_run.values())]
    images = labels.index
    for frame in per_run.values():
        images = images.intersection(frame.index[~frame.index.duplicated()], sort=False)
    if not names or len(images) < 2:
        skipped.append(f"{bench} / {metric}: the predictions share no findings or images with the labels")
        return []
    y = labels.loc[images, names].to_numpy()
    w = bootstrap_weights(len(images), n_boot, seed)
    aucs = {run: run_aucs(y, f[~f.index.duplicated()].loc[images, names].to_numpy(np.float64), w)[0]
            for run, f in per_run.items()}
    rows = []
    for (objective, group), runs in by_group.items():  # each group's own CI: bootstrap of its seed mean
        mine = [aucs[r["run"]] for r in runs if r["run"] in aucs]
        if mine:
            g = group_metric(np.stack(mine))
            ci = _percentile(g[1:])
            with _quiet():
                per = np.nanmean(np.stack(mine), axis=0)  # (B+1, K) seed mean per finding
            per_finding = {n: _percentile(per[1:, k]) for k, n in enumerate(names)}
            group_cis.append({"benchmark": bench, "objective": objective, "group": group, "metric": metric,
                              "value": float(g[0]), "ci": ci, "per_finding": per_finding, "n_images": len(images)})
    for p in plan_rows:
        ra = [r for r in by_group.get((p["objective"], p["a"]), []) if r["run"] in aucs]
        rb = [r for r in by_group.get((p["objective"], p["b"]), []) if r["run"] in aucs]
        if not ra or not rb:
            continue
        got = compare(np.stack([aucs[r["run"]] for r in ra]), np.stack([aucs[r["run"]] for r in rb]), names)
        rows.append({"benchmark": bench, "objective": p["objective"], "metric": metric, "kind": p["kind"],
                     "comparison": p["comparison"], "a": p["a"], "b": p["b"], "a_value": got.pop("a"),
                     "b_value": got.pop("b"), "seeds_a": [r["seed"] for r in ra], "seeds_b": [r["seed"] for r in rb],
                     "n_images": len(images), **got})
    return rows
