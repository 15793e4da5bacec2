"""The study report: headline metrics per task, aggregation over seeds, study.md + study.html.

`headline` turns one task's results.json into labelled metrics with 95% CIs; `aggregate` groups
runs by (objective, arm) and computes the differences the paper reports; `write_study_report`
writes study.md (+ study_assets/*.png) and a self-contained study.html (images inlined).
"""

from __future__ import annotations

import base64
import html
import math
from pathlib import Path
from typing import Any, Optional

import numpy as np

from syncxr.data.shards import write_text_atomic
from syncxr.report.card import _inline, _table
from syncxr.report.study_figures import _benches, _ci_of, _figures, _is_base, _order

# The paper's abstract, quoted; our numbers are compared with it, never claimed to reproduce it.
PAPER = "Liu et al., *Can Medical Vision-Language Pre-training Succeed with Purely Synthetic Data?*"
PAPER_CLAIMS = {
    "synthetic − real": "synthetic-only beats real (MIMIC-CXR) by 3.8% averaged zero-shot AUC",
    "mixed − real": "synthetic + real gives a further improvement of 9.07% (zero-shot AUC)",
}
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


# --- plots -------------------------------------------------------------------------------------


def _fmt(m: dict[str, Any]) -> str:
    if not m or m.get("value") is None:
        return "–"
    s = f"{m['value']:.3f}"
    ci = _ci_of(m)
    if ci:
        s += f" [{ci[0]:.3f}, {ci[1]:.3f}]"
        if not m.get("boot_ci") and str(m.get("ci_kind") or "").startswith("t over"):
            s += " (t)"
    return s


def _spread(g: dict[str, Any], bench: str, label: str) -> str:
    m = g["benchmarks"].get(bench, {}).get(label, {})
    if len(m.get("seeds") or []) < 2:
        return "–"
    return f"sd {m['std']:.3f}; {m['min']:.3f}–{m['max']:.3f}"


def _results_section(summary: dict[str, Any], img: dict[str, str]) -> list[str]:
    groups = summary["groups"]
    lines: list[str] = []
    for bench in _benches(groups):
        for objective in dict.fromkeys(g["objective"] for g in groups):
            gs = _order([g for g in groups if g["objective"] == objective and bench in g["benchmarks"]])
            if not gs:
                continue
            labels = list(dict.fromkeys(k for g in gs for k in g["benchmarks"].get(bench, {})))
            spread = [lab for lab in labels if any(_spread(g, bench, lab) != "–" for g in gs)]
            header = ["group", "seeds", *labels, *[f"seed spread: {lab}" for lab in spread]]
            rows = [[g["group"], ", ".join(str(s) for s in g.get("seeds", [])),
                     *[_fmt(g["benchmarks"].get(bench, {}).get(lab, {})) for lab in labels],
                     *[_spread(g, bench, lab) for lab in spread]] for g in gs]
            lines += [f"### {objective} on {bench}", "", _table(header, rows), ""]
            key = f"{objective}-{bench}"
            if key in img:
                lines += [f"![{key}]({img[key]})", ""]
            findings = list(dict.fromkeys(f for g in gs for f in g["per_finding"].get(bench, {})))
            if findings:
                lines += [f"Zero-shot AUC per finding ({objective}, {bench}):", "",
                          _table(["finding", *[g["group"] for g in gs]],
                                 [[f, *[_fmt(g["per_finding"].get(bench, {}).get(f, {})) for g in gs]] for f in findings]), ""]
                lines += _below_chance_note(gs, bench, findings)
    return lines


def _below_chance_note(gs: list[dict[str, Any]], bench: str, findings: list[str]) -> list[str]:
    """When a finding's AUC CI lies below 0.5: say what it means and show the AUC against normal
    images only (issue 7; docs/zeroshot-below-chance.md)."""
    below = [f for f in findings if any(_ci_of(g["per_finding"].get(bench, {}).get(f) or {})
                                        and _ci_of(g["per_finding"][bench][f])[1] < 0.5 for g in gs)]
    if not below:
        return []
    lines = [f"**Below chance:** {', '.join(below)} (95% CI under 0.5 in at least one arm). The zero-shot score of "
             "each finding compares its 'finding' prompts with its 'no finding' prompts; after a short training run "
             "both mostly measure how abnormal an image looks, so a subtle finding's positives are outranked by "
             "negatives that carry another, conspicuous finding (see docs/zeroshot-below-chance.md). "
             "The AUC of each finding against normal images only separates that from a label or prompt error:", ""]
    vs = [g.get("per_finding_vs_normal", {}).get(bench, {}) for g in gs]
    if any(vs):
        lines += [_table(["finding (vs normal images only)", *[g["group"] for g in gs]],
                         [[f, *[_fmt(v.get(f, {})) for v in vs]] for f in findings]), ""]
    return lines


def _p(v: Optional[float]) -> str:
    return "–" if v is None else ("< 0.001" if v < 0.001 else f"{v:.3f}")


def _diff(r: dict[str, Any]) -> str:
    if r.get("diff") is None:
        return "–"
    return f"{r['diff']:+.3f} [{r['ci'][0]:+.3f}, {r['ci'][1]:+.3f}]"


def _paired_rows(summary: dict[str, Any], bench: str, kinds: tuple[str, ...]) -> list[dict[str, Any]]:
    return [r for r in (summary.get("paired") or {}).get("rows", []) if r["benchmark"] == bench and r["kind"] in kinds]


def _claims_section(summary: dict[str, Any]) -> list[str]:
    paired = summary.get("paired") or {}
    lines = ["## Paired comparisons, next to the paper's claim", "",
             f"{PAPER} report, at scale (200k synthetic pairs, MIMIC-CXR real data, ResNet-50 + BioClinicalBERT, GPUs): "
             f"{PAPER_CLAIMS['synthetic − real']}; {PAPER_CLAIMS['mixed − real']}.", "",
             "**Our numbers do not reproduce or test that claim** unless the study ran at that scale: the quick and "
             "standard presets run small encoders on simulated data (the 'real' arm is the simulated MIMIC-shaped "
             "corpus) on CPUs.", ""]
    if paired.get("rows"):
        lines += [f"Differences (a − b) by **paired bootstrap** over the same test images ({paired['n_boot']} resamples "
                  "of the image indices, each applied to every run; several seeds are averaged inside each resample). "
                  "p: two-sided bootstrap p-value (smallest possible value 2/(resamples+1)); p (Holm) and p (BH) "
                  "correct for every comparison in the benchmark's table. A difference whose Holm p is under 0.05 "
                  "is one the data resolve. Paired rows cover the AUC metrics (zero-shot, linear probe / fine-tune), "
                  "whose predictions are saved per image; grounding and segmentation are shown with their CIs above.", ""]
        for bench in dict.fromkeys(r["benchmark"] for r in paired["rows"]):
            rows = _paired_rows(summary, bench, ("arms", "ablation", "scaling"))
            lines += [f"### Paired differences on {bench}", "",
                      _table(["objective", "metric", "comparison", "a", "b", "a − b [95% CI]", "p", "p (Holm)", "p (BH)",
                              "paper"],
                             [[r["objective"], r["metric"], r["comparison"], f"{r['a_value']:.3f}", f"{r['b_value']:.3f}",
                               _diff(r), _p(r["p"]), _p(r["p_holm"]), _p(r["p_bh"]),
                               PAPER_CLAIMS.get(r["comparison"], "–") if r["metric"] == ZS_METRIC else "–"] for r in rows]), ""]
            zs = [r for r in rows if r["metric"] == ZS_METRIC and r["kind"] == "arms" and r["per_finding"]]
            if zs:
                findings = list(dict.fromkeys(f for r in zs for f in r["per_finding"]))
                lines += [f"Per finding (zero-shot AUC on {bench}; Holm over all findings and comparisons of this metric):", "",
                          _table(["finding", *[f"{r['objective']}: {r['comparison']}" for r in zs]],
                                 [[f, *[(_diff(r["per_finding"][f]) + f", p (Holm) {_p(r['per_finding'][f].get('p_holm'))}")
                                        if f in r["per_finding"] else "–" for r in zs]] for f in findings]), ""]
    else:
        rows = [d for d in summary["differences"] if d["metric"] == ZS_METRIC]
        lines += ["No paired comparison could be made (no saved predictions); plain differences of the means:", ""]
        if rows:
            lines += [_table(["objective", "benchmark", "comparison", "paper", "ours (AUC points)", "95% CIs overlap"],
                             [[d["objective"], d["benchmark"], d["comparison"], PAPER_CLAIMS.get(d["comparison"], "–"),
                               f"{d['diff']:+.3f}", "yes" if d["cis_overlap"] else "no"] for d in rows]), ""]
    for reason in paired.get("skipped", []):
        lines += [f"Skipped: {reason}", ""]
    return lines


def _ablation_section(summary: dict[str, Any], img: dict[str, str]) -> list[str]:
    groups = summary["groups"]
    abl = [g for g in groups if g.get("variant") is not None]
    if not abl:
        return []
    lines = ["## Ablations", "",
             "Each switch removes one part of the recipe (no_balance: entities drawn at corpus frequency; no_verify: "
             "reports not checked against their entities; no_qc: no image quality filter; kN: N entities per report). "
             "Each is compared with its arm's full recipe on the same test images (paired bootstrap; Holm over the "
             "benchmark's table).", ""]
    for bench in _benches(groups):
        for objective in dict.fromkeys(g["objective"] for g in abl):
            rows = [r for r in _paired_rows(summary, bench, ("ablation",)) if r["objective"] == objective]
            gs = [g for g in abl if g["objective"] == objective and bench in g["benchmarks"]]
            if not gs:
                continue
            lines += [f"### Ablations: {objective} on {bench}", ""]
            if rows:
                lines += [_table(["ablation", "metric", "value", "reference", "ablation − reference [95% CI]", "p", "p (Holm)"],
                                 [[r["a"], r["metric"], f"{r['a_value']:.3f}", f"{r['b']} {r['b_value']:.3f}", _diff(r),
                                   _p(r["p"]), _p(r["p_holm"])] for r in rows]), ""]
            key = f"ablation-{objective}-{bench}"
            if key in img:
                lines += [f"![{key}]({img[key]})", ""]
    return lines


def _scaling_section(summary: dict[str, Any], img: dict[str, str]) -> list[str]:
    groups = summary["groups"]
    if not any(g.get("fraction", 1.0) < 1.0 for g in groups):
        return []
    lines = ["## Data-size scaling", "",
             "Each arm trained on a fraction of its pairs (same budget otherwise); the metric against the fraction, "
             "with 95% CIs; the paired differences against the same arm at 100% are in the paired table.", ""]
    for bench in _benches(groups):
        for objective in dict.fromkeys(g["objective"] for g in groups):
            key = f"scaling-{objective}-{bench}"
            if key in img:
                lines += [f"### Scaling: {objective} on {bench}", "", f"![{key}]({img[key]})", ""]
    return lines


def _data_section(manifest: dict[str, Any], out: Path, img: dict[str, str]) -> list[str]:
    lines: list[str] = []
    ent = [k for k in img if k.startswith("entities-")]
    if ent:
        lines += ["## The synthetic data", "",
                  "Entity distribution of each synthetic dataset: the reference corpus (before balancing) against the "
                  "accepted pairs (after). Full dataset cards: `data/*/card.html`.", ""]
        for k in ent:
            lines += [f"{k[len('entities-'):]}:", "", f"![{k}]({img[k]})", ""]
    if "samples" in img:
        lines += ["Sample pairs (image with finding masks outlined, IMPRESSION above):", "", f"![samples]({img['samples']})", ""]
    return lines


def _audit_section(manifest: dict[str, Any], out: Path, img: dict[str, str]) -> list[str]:
    lines: list[str] = []
    for kind, title in (("privacy", "Privacy audit: nearest real neighbours"), ("fidelity", "Generative fidelity")):
        result = (manifest.get("steps", {}).get(f"audit/{kind}") or {}).get("result")
        if not isinstance(result, dict) or not result:
            continue
        folder = out / "audit" / kind
        page = folder / f"{kind}.md"  # the audit's own page: its tables, read as the audit wrote them
        if page.is_file():
            body = [ln for ln in page.read_text().splitlines()[1:] if not ln.startswith("![")]
            lines += [f"## {title}", "", *(("#" + ln) if ln.startswith("## ") else ln for ln in body), ""]
        else:
            lines += [f"## {title}", "", _table(["measure", "value"], [[k, _value(v)] for k, v in _flatten(result)]), ""]
        lines += [f"![{k}]({img[k]})" for k in img if k.startswith(f"audit-{kind}-")]
        lines += [""]
        if not page.is_file():
            for csv in sorted(folder.glob("*.csv")) if folder.is_dir() else []:
                if "closest" in csv.name or "pairs" in csv.name:
                    lines += [f"Closest pairs (first 5 of `audit/{kind}/{csv.name}`):", "", *_csv_head(csv, 5), ""]
    return lines


def _flatten(d: dict[str, Any], prefix: str = "", depth: int = 0) -> list[tuple[str, Any]]:
    """Scalar entries of a result dict, nested keys joined with '.', two levels deep; lists are counted."""
    out: list[tuple[str, Any]] = []
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and depth < 2:
            out += _flatten(v, f"{key}.", depth + 1)
        elif isinstance(v, (int, float, str, bool)) or v is None:
            out.append((key, v))
        elif isinstance(v, list) and all(isinstance(x, (int, float)) for x in v) and len(v) <= 4:
            out.append((key, "[" + ", ".join(_value(x) for x in v) + "]"))
    return out[:60]


def _value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v).replace("|", "/").replace("\n", " ")[:160]


def _csv_head(path: Path, n: int) -> list[str]:
    import pandas as pd

    try:
        df = pd.read_csv(path, nrows=n)
    except (OSError, ValueError) as e:
        return [f"({path.name} unreadable: {e})"]
    return [_table(list(df.columns), [[_value(v) for v in row] for row in df.itertuples(index=False)])]


def _setup_section(manifest: dict[str, Any]) -> list[str]:
    from syncxr.report.paired import run_meta

    cfg, steps = manifest["config"], manifest["steps"]
    budget = (f"same number of optimizer steps for every arm ({cfg['train']['steps']})" if cfg["train"]["budget"] == "steps"
              else "same number of epochs for every arm (the mixed arm sees more updates)")
    rows = []
    for run in manifest["runs"]:
        r = steps.get(run["train"], {}).get("result", {})
        meta = run_meta(run)
        val = r.get("val") or {}
        recall = next((f"{k}={v:.3f}" for k, v in val.items() if k.endswith("r10")), "–")
        loss = f"{r['final_loss']:.3f}" if isinstance(r.get("final_loss"), (int, float)) else "–"
        rows.append([run["run"], meta["group"], run["arm"], meta["variant"] or "–", f"{meta['fraction']:g}", run["objective"],
                     run["seed"], r.get("pairs", "–"), r.get("step", "–"), loss, recall])
    sizes = cfg["sizes"]
    return ["## Setup", "",
            f"Arms: {', '.join(cfg['arms'])} (mixed = real + synthetic, mix `{cfg['mix']['mode']}`). Everything else is fixed: "
            f"train config `{cfg['train']['config']}`, objectives {[o['name'] for o in cfg['objectives']]}, "
            f"seeds {cfg['seeds']}; "
            f"budget: {budget}.", "",
            f"Data: real = {cfg['real']['source']} ({sizes['n_real']} studies when simulated), synthetic = "
            f"{cfg['synthetic']['source']} ({sizes['n_synthetic']} pairs requested), images {sizes['image_size']} px; "
            f"benchmarks: {', '.join(b.get('name') or b['dataset'] for b in cfg['benchmarks'])} "
            f"({sizes['n_benchmark']} images in the simulated one)."
            + ("".join(f" Left out: {a}." for a in manifest.get("absent_benchmarks") or [])), "",
            _table(["run", "group", "arm", "ablation", "data fraction", "objective", "seed", "training pairs", "steps",
                    "final train loss (mean of last 10 steps)", "val retrieval (own held-out pairs)"], rows), ""]


def _timing_section(manifest: dict[str, Any]) -> list[str]:
    per_kind: dict[str, list[float]] = {}
    for s in manifest["steps"].values():
        per_kind.setdefault(s["kind"], []).append(float(s.get("seconds") or 0.0))
    ran = sum(s.get("last_run") == "ran" for s in manifest["steps"].values())
    return ["## Timings", "",
            f"This invocation: {manifest.get('seconds_this_run', 0):.1f} s; {ran} steps ran, "
            f"{len(manifest['steps']) - ran} were done before and skipped.", "",
            _table(["step kind", "steps", "seconds (when run)"], [[k, len(v), f"{sum(v):.1f}"] for k, v in per_kind.items()]), ""]


def render_markdown(manifest: dict[str, Any], img: dict[str, str], config_yaml: str, out: Path | None = None) -> str:
    summary = manifest["summary"]
    out = Path(out) if out is not None else Path(".")
    lines = ["# syncxr study: real vs synthetic vs mixed pretraining", "",
             f"Reproduces the design of {PAPER}: the same model, objective and training budget pretrained on real, "
             "synthetic and mixed image–report pairs, every checkpoint evaluated on the same benchmarks (each benchmark "
             "in its own tables). Numbers are means over seeds with 95% CIs: bootstrap over the test images (of the "
             "seed mean where several seeds ran; '(t)' marks a t-interval over seeds where no predictions allow the "
             "bootstrap); seed spread = standard deviation and range over seeds.", "",
             *_setup_section(manifest), "## Results", "", *_results_section(summary, img), *_claims_section(summary),
             *_ablation_section(summary, img), *_scaling_section(summary, img), *_data_section(manifest, out, img),
             *_audit_section(manifest, out, img), *_timing_section(manifest), "## Reproduce", "",
             f"Seeds: {manifest['config'].get('seeds')} (training), data seed {manifest['config'].get('seed')}, "
             f"paired bootstrap seed {(summary.get('paired') or {}).get('seed', '–')}.", "",
             "The whole study (rerun it to resume; finished steps are skipped):", "",
             "```", manifest["command"], "```", "", "The same steps one by one:", "", "```",
             *[s["command"] for s in manifest["steps"].values() if s.get("command")], "```", "",
             "Resolved study config (`study.yaml`):", "", "```yaml", config_yaml.rstrip(), "```", ""]
    return "\n".join(lines)


STYLE = ("body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}"
         "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px}"
         "th{background:#f4f4f4}tr:nth-child(even) td{background:#fafafa}"
         "img{max-width:100%}code,pre{background:#f3f3f3;padding:1px 3px}pre{padding:8px;overflow-x:auto;font-size:12px}")


def render_html(md: str, figs: dict[str, bytes]) -> str:
    """The Markdown subset study.md uses -> one HTML file with the figures inlined as base64."""
    body: list[str] = []
    table: list[str] = []
    code: Optional[list[str]] = None
    for line in md.splitlines() + [""]:
        if code is not None:
            if line.startswith("```"):
                body.append("<pre>" + html.escape("\n".join(code)) + "</pre>")
                code = None
            else:
                code.append(line)
            continue
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if not set("".join(cells)) <= set("-"):
                tag = "th" if not table else "td"
                table.append("<tr>" + "".join(f"<{tag}>{_inline(c)}</{tag}>" for c in cells) + "</tr>")
            continue
        if table:
            body.append("<table>" + "".join(table) + "</table>")
            table = []
        if line.startswith("```"):
            code = []
        elif line.startswith("!["):
            name = line[2:line.index("]")]
            data = base64.b64encode(figs[name]).decode()
            body.append(f'<p><img alt="{html.escape(name)}" src="data:image/png;base64,{data}"></p>')
        elif line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            body.append(f"<h{level}>{html.escape(line[level:].strip())}</h{level}>")
        elif line.strip():
            body.append(f"<p>{_inline(line).replace('*', '')}</p>")
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>syncxr study</title>"
            f"<link rel='icon' href='data:,'><style>{STYLE}</style></head><body>{''.join(body)}</body></html>\n")


# --- figures from files the study wrote --------------------------------------------------------


def write_study_report(out: str | Path, manifest: dict[str, Any]) -> list[Path]:
    """Write out/study.md (+ study_assets/*.png) and out/study.html; returns their paths."""
    out = Path(out)
    figs, links = _figures(manifest, out)
    assets = out / "study_assets"
    assets.mkdir(parents=True, exist_ok=True)
    for name, path in links.items():
        if path.startswith("study_assets/"):
            write_text_atomic(figs[name], out / path)
    config_yaml = (out / "study.yaml").read_text() if (out / "study.yaml").is_file() else ""
    md = render_markdown(manifest, links, config_yaml, out)
    write_text_atomic(md, out / "study.md")
    write_text_atomic(render_html(md, figs), out / "study.html")
    return [out / "study.md", out / "study.html"]
