"""The study's numbers: headline metrics per task and their aggregation over seeds.

`headline` turns one task's results.json into labelled metrics with 95% CIs; `aggregate` groups
runs by (objective, group), combines seeds and attaches the paired-bootstrap comparisons
(report/paired.py). report/study.py renders what this computes.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Optional

import numpy as np

from syncxr.report.study_figures import _is_base

ZS_METRIC = "zero-shot AUC"
COMPARISONS = (("synthetic", "real"), ("mixed", "real"), ("mixed", "synthetic"))


def _m(value: Any, ci: Any) -> dict[str, Any]:
    ok = isinstance(ci, (list, tuple)) and len(ci) == 2 and all(isinstance(x, (int, float)) for x in ci)
    return {"value": value if isinstance(value, (int, float)) else None, "ci": list(ci) if ok else None}


def _pct(f: str) -> str:
    return f"{float(f) * 100:g}%"


def _grounding_ci(csv: Path, col: str, n_boot: int, seed: int) -> Optional[list[float]]:
    """95% CI of the mean over findings of per-finding means, resampling images within each finding."""
    import pandas as pd

    if not csv.is_file() or n_boot < 1:
        return None
    df = pd.read_csv(csv)
    if col not in df:
        return None
    groups = [g[col].replace([np.inf, -np.inf], np.nan).dropna().to_numpy() for _, g in df.groupby("finding")]
    groups = [g for g in groups if len(g)]
    if not groups:
        return None
    rng = np.random.default_rng(seed)
    boots = np.mean([g[rng.integers(0, len(g), (n_boot, len(g)))].mean(axis=1) for g in groups], axis=0)  # (n_boot,)
    return [float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5))]


def headline(task: str, result: dict[str, Any], folder: Path, n_boot: int = 200, seed: int = 0) -> dict[str, Any]:
    """{"metrics": {label: {value, ci}}, "per_finding": {finding: {value, ci}}} of one task's results."""
    metrics: dict[str, Any] = {}
    per: dict[str, Any] = {}
    if task == "zeroshot":
        key = "accuracy" if result.get("mode") == "multiclass" else "mean_auc"
        metrics[ZS_METRIC if key == "mean_auc" else "zero-shot accuracy"] = _m(result.get(key), result.get(f"{key}_ci"))
        per = {f: _m(v.get("auc"), v.get("auc_ci")) for f, v in result.get("per_finding", {}).items()}
        vs_normal = (result.get("diagnostics") or {}).get("auc_vs_normal", {})
        if vs_normal:
            return {"metrics": metrics, "per_finding": per,
                    "per_finding_vs_normal": {f: _m(v.get("auc"), v.get("auc_ci")) for f, v in vs_normal.items()}}
    elif task == "grounding":
        ts = result.get("thresholds") or [0.5]
        t = min(ts, key=lambda x: abs(x - 0.5))
        for col, label in (("pointing_game", "grounding pointing game"), ("cnr", "grounding CNR"),
                           (f"dice@{t:g}", f"grounding Dice@{t:g}")):
            metrics[label] = _m(result.get(f"mean_{col}"), _grounding_ci(folder / "predictions.csv", col, n_boot, seed))
    elif task == "finetune":
        name = "linear probe" if result.get("method") == "linear_probe" else "fine-tune"
        key = "accuracy" if result.get("mode") == "multiclass" else "mean_auc"
        for f, block in result.get("fractions", {}).items():
            metrics[f"{name} {'AUC' if key == 'mean_auc' else 'acc'} @{_pct(f)}"] = _m(block.get(key), block.get(f"{key}_ci"))
    elif task == "segment":
        finding = result.get("finding")
        for f, block in result.get("fractions", {}).items():
            entry = block.get("per_finding", {}).get(finding, {})
            metrics[f"seg Dice @{_pct(f)}"] = _m(entry.get("dice"), entry.get("dice_ci"))
    return {"metrics": metrics, "per_finding": per}


# --- aggregation -------------------------------------------------------------------------------


def _combine(values: list[dict[str, Any]]) -> dict[str, Any]:
    """One seed: its value and bootstrap CI. Several: their mean, a 95% t-interval over seeds and
    the seed spread (std, min, max); report/paired.py adds the bootstrap CI of the seed mean."""
    vals = [v["value"] for v in values if v.get("value") is not None]
    if not vals:
        return {"value": None, "ci": None, "ci_kind": None, "seeds": []}
    if len(values) == 1:
        return {**values[0], "ci_kind": "bootstrap", "seeds": vals}
    from scipy import stats

    mean, sd = float(np.mean(vals)), float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0
    half = float(stats.t.ppf(0.975, len(vals) - 1) * sd / math.sqrt(len(vals))) if len(vals) > 1 else 0.0
    return {"value": mean, "ci": [mean - half, mean + half], "ci_kind": f"t over {len(vals)} seeds", "seeds": vals,
            "std": sd, "min": float(min(vals)), "max": float(max(vals))}


def aggregate(manifest: dict[str, Any], out: str | Path | None = None) -> dict[str, Any]:
    """The study's summary (manifest["summary"]).

    Keys:
      groups       one entry per (objective, group): objective, group (display label: "real",
                   "synthetic~no_balance", "real@50%"), arm, variant (None or the ablation),
                   fraction (1.0 = all data), runs, seeds, and per benchmark `benchmarks[bench][metric]`
                   = {value (seed mean), ci, ci_kind, seeds (per-seed values), std/min/max (several
                   seeds), boot_ci (bootstrap CI of the seed mean over the test images, AUC metrics)},
                   `per_finding[bench][finding]` likewise (zero-shot AUC).
      paired       report/paired.study_comparisons: rows of paired-bootstrap differences (diff, ci,
                   p, p_holm, p_bh, per_finding) for synthetic − real, mixed − real, mixed − synthetic,
                   each ablation − its arm and each data fraction − its arm at 100%; group_cis; skipped.
      differences  the plain differences of the seed means (kept for older readers; the paired rows
                   are the test).
    `out` is the study folder holding eval/ (default: the --out of manifest["command"])."""
    from syncxr.report.paired import run_meta, study_comparisons

    steps = manifest.get("steps", {})
    by_group: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for run in manifest.get("runs", []):
        by_group.setdefault((run["objective"], run_meta(run)["group"]), []).append(run)
    groups: list[dict[str, Any]] = []
    for (objective, group), runs in by_group.items():
        meta = run_meta(runs[0])
        g: dict[str, Any] = {"objective": objective, "group": group, "arm": meta["arm"], "variant": meta["variant"],
                             "fraction": meta["fraction"], "runs": [r["run"] for r in runs],
                             "seeds": [r.get("seed") for r in runs], "benchmarks": {}, "per_finding": {}}
        for bench in runs[0]["evals"]:
            res = [[steps.get(name, {}).get("result", {}) for name in r["evals"].get(bench, {}).values()] for r in runs]
            labels = list(dict.fromkeys(k for per_run in res for x in per_run for k in x.get("metrics", {})))
            g["benchmarks"][bench] = {lab: _combine([_find(per_run, "metrics", lab) for per_run in res]) for lab in labels}
            findings = list(dict.fromkeys(k for per_run in res for x in per_run for k in x.get("per_finding", {})))
            if findings:
                g["per_finding"][bench] = {f: _combine([_find(per_run, "per_finding", f) for per_run in res]) for f in findings}
            vs = list(dict.fromkeys(k for per_run in res for x in per_run for k in x.get("per_finding_vs_normal", {})))
            if vs:
                g.setdefault("per_finding_vs_normal", {})[bench] = {
                    f: _combine([_find(per_run, "per_finding_vs_normal", f) for per_run in res]) for f in vs}
        groups.append(g)
    stats = (manifest.get("config") or {}).get("stats") or {}
    paired = study_comparisons(manifest, out, n_boot=int(stats.get("n_boot", 1000)), seed=int(stats.get("seed", 0)))
    for c in paired["group_cis"]:  # the bootstrap CI of each seed mean, beside the t-interval
        for g in groups:
            m = g["benchmarks"].get(c["benchmark"], {}).get(c["metric"]) if (g["objective"], g["group"]) == (
                c["objective"], c["group"]) else None
            if m is not None and c["ci"] is not None:
                m["boot_ci"] = c["ci"]
            if m is not None and c["metric"] == ZS_METRIC:
                for f, ci in (c.get("per_finding") or {}).items():
                    pf = g["per_finding"].get(c["benchmark"], {}).get(f)
                    if pf is not None and ci is not None:
                        pf["boot_ci"] = ci
    return {"groups": groups, "paired": paired, "differences": differences(groups)}


def _find(results: list[dict[str, Any]], section: str, label: str) -> dict[str, Any]:
    for x in results:
        if label in x.get(section, {}):
            return x[section][label]
    return {"value": None, "ci": None}


def differences(groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """synthetic − real, mixed − real, mixed − synthetic (full-data, no-ablation groups) for every
    objective, benchmark and metric: plain differences of the seed means."""
    by = {(g["objective"], g["arm"]): g for g in groups if _is_base(g)}
    rows = []
    for objective in dict.fromkeys(g["objective"] for g in groups):
        for arm, base in COMPARISONS:
            g, other = by.get((objective, arm)), by.get((objective, base))
            if g is None or other is None:
                continue
            for bench, metrics in g["benchmarks"].items():
                for label, m in metrics.items():
                    b = other["benchmarks"].get(bench, {}).get(label, {})
                    if m.get("value") is None or b.get("value") is None:
                        continue
                    d = m["value"] - b["value"]
                    overlap = bool(m["ci"] and b["ci"] and m["ci"][0] <= b["ci"][1] and b["ci"][0] <= m["ci"][1])
                    rows.append({"objective": objective, "benchmark": bench, "metric": label, "comparison": f"{arm} − {base}",
                                 "diff": d, "relative_pct": 100 * d / b["value"] if b["value"] else None,
                                 "cis_overlap": overlap})
    return rows
