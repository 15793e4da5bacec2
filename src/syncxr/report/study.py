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

# The paper's abstract, quoted; our numbers are compared with it, never claimed to reproduce it.
PAPER = "Liu et al., *Can Medical Vision-Language Pre-training Succeed with Purely Synthetic Data?*"
PAPER_CLAIMS = {
    "synthetic − real": "synthetic-only beats real (MIMIC-CXR) by 3.8% averaged zero-shot AUC",
    "mixed − real": "synthetic + real gives a further improvement of 9.07% (zero-shot AUC)",
}
ZS_METRIC = "zero-shot AUC"
COMPARISONS = (("synthetic", "real"), ("mixed", "real"), ("mixed", "synthetic"))
ARM_COLORS = {"real": "#4c72b0", "synthetic": "#dd8452", "mixed": "#55a868"}


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
    """One seed: its value and bootstrap CI. Several: their mean and a 95% t-interval over seeds."""
    vals = [v["value"] for v in values if v.get("value") is not None]
    if not vals:
        return {"value": None, "ci": None, "ci_kind": None, "seeds": []}
    if len(values) == 1:
        return {**values[0], "ci_kind": "bootstrap", "seeds": vals}
    from scipy import stats

    mean, sd = float(np.mean(vals)), float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0
    half = float(stats.t.ppf(0.975, len(vals) - 1) * sd / math.sqrt(len(vals))) if len(vals) > 1 else 0.0
    return {"value": mean, "ci": [mean - half, mean + half], "ci_kind": f"t over {len(vals)} seeds", "seeds": vals}


def aggregate(manifest: dict[str, Any]) -> dict[str, Any]:
    """Group runs by (objective, arm); per benchmark: metrics and per-finding AUC; plus differences."""
    steps = manifest.get("steps", {})
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for run in manifest.get("runs", []):
        groups.setdefault((run["objective"], run["arm"]), []).append(run)
    out: list[dict[str, Any]] = []
    for (objective, arm), runs in groups.items():
        g: dict[str, Any] = {"objective": objective, "arm": arm, "runs": [r["run"] for r in runs],
                             "benchmarks": {}, "per_finding": {}}
        for bench in runs[0]["evals"]:
            res = [[steps.get(r["evals"][bench][t], {}).get("result", {}) for t in r["evals"][bench]] for r in runs]
            labels = list(dict.fromkeys(k for per_run in res for x in per_run for k in x.get("metrics", {})))
            g["benchmarks"][bench] = {lab: _combine([_find(per_run, "metrics", lab) for per_run in res]) for lab in labels}
            findings = list(dict.fromkeys(k for per_run in res for x in per_run for k in x.get("per_finding", {})))
            if findings:
                g["per_finding"][bench] = {f: _combine([_find(per_run, "per_finding", f) for per_run in res]) for f in findings}
            vs = list(dict.fromkeys(k for per_run in res for x in per_run for k in x.get("per_finding_vs_normal", {})))
            if vs:
                g.setdefault("per_finding_vs_normal", {})[bench] = {
                    f: _combine([_find(per_run, "per_finding_vs_normal", f) for per_run in res]) for f in vs}
        out.append(g)
    return {"groups": out, "differences": differences(out)}


def _find(results: list[dict[str, Any]], section: str, label: str) -> dict[str, Any]:
    for x in results:
        if label in x.get(section, {}):
            return x[section][label]
    return {"value": None, "ci": None}


def differences(groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """synthetic − real, mixed − real, mixed − synthetic for every objective, benchmark and metric."""
    by = {(g["objective"], g["arm"]): g for g in groups}
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


def bar_plot(groups: list[dict[str, Any]], objective: str, bench: str) -> Optional[bytes]:
    """One panel per metric, one bar per arm, 95% CI error bars."""
    from syncxr.report import plots

    plt = plots.plt
    gs = [g for g in groups if g["objective"] == objective and bench in g["benchmarks"]]
    labels = list(dict.fromkeys(k for g in gs for k in g["benchmarks"][bench]))
    if not gs or not labels:
        return None
    cols = min(4, len(labels))
    rows = math.ceil(len(labels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.8 * rows), squeeze=False)
    for ax, label in zip(axes.flat, labels):
        for i, g in enumerate(gs):
            m = g["benchmarks"][bench].get(label, {})
            if m.get("value") is None:
                continue
            v, ci = m["value"], m.get("ci")
            err = [[max(v - ci[0], 0)], [max(ci[1] - v, 0)]] if ci else None
            ax.bar(i, v, color=ARM_COLORS.get(g["arm"], "#888"), yerr=err, capsize=4)
        ax.set_xticks(range(len(gs)), [g["arm"] for g in gs], fontsize=8)
        ax.set_title(label, fontsize=9)
        ax.tick_params(axis="y", labelsize=8)
    for ax in list(axes.flat)[len(labels):]:
        ax.axis("off")
    fig.suptitle(f"{objective} on {bench} (bars: mean, error bars: 95% CI)", fontsize=10)
    fig.tight_layout()
    return plots._png(fig)


# --- markdown / html -------------------------------------------------------------------------


def _fmt(m: dict[str, Any]) -> str:
    if not m or m.get("value") is None:
        return "–"
    s = f"{m['value']:.3f}"
    return f"{s} [{m['ci'][0]:.3f}, {m['ci'][1]:.3f}]" if m.get("ci") else s


def _results_section(summary: dict[str, Any], img: dict[str, str]) -> list[str]:
    groups = summary["groups"]
    lines: list[str] = []
    for objective in dict.fromkeys(g["objective"] for g in groups):
        gs = [g for g in groups if g["objective"] == objective]
        for bench in dict.fromkeys(b for g in gs for b in g["benchmarks"]):
            labels = list(dict.fromkeys(k for g in gs for k in g["benchmarks"].get(bench, {})))
            lines += [f"### {objective} on {bench}", "",
                      _table(["arm", *labels], [[g["arm"], *[_fmt(g["benchmarks"].get(bench, {}).get(lab, {})) for lab in labels]]
                                                for g in gs]), ""]
            key = f"{objective}-{bench}"
            if key in img:
                lines += [f"![{key}]({img[key]})", ""]
            findings = list(dict.fromkeys(f for g in gs for f in g["per_finding"].get(bench, {})))
            if findings:
                lines += [f"Zero-shot AUC per finding ({objective}, {bench}):", "",
                          _table(["finding", *[g["arm"] for g in gs]],
                                 [[f, *[_fmt(g["per_finding"].get(bench, {}).get(f, {})) for g in gs]] for f in findings]), ""]
                lines += _below_chance_note(gs, bench, findings)
    return lines


def _below_chance_note(gs: list[dict[str, Any]], bench: str, findings: list[str]) -> list[str]:
    """When a finding's AUC CI lies below 0.5: say what it means and show the AUC against normal
    images only (issue 7; docs/zeroshot-below-chance.md)."""
    below = [f for f in findings if any((g["per_finding"].get(bench, {}).get(f) or {}).get("ci")
                                        and g["per_finding"][bench][f]["ci"][1] < 0.5 for g in gs)]
    if not below:
        return []
    lines = [f"**Below chance:** {', '.join(below)} (95% CI under 0.5 in at least one arm). The zero-shot score of "
             "each finding compares its 'finding' prompts with its 'no finding' prompts; after a short training run "
             "both mostly measure how abnormal an image looks, so a subtle finding's positives are outranked by "
             "negatives that carry another, conspicuous finding (see docs/zeroshot-below-chance.md). "
             "The AUC of each finding against normal images only separates that from a label or prompt error:", ""]
    vs = [g.get("per_finding_vs_normal", {}).get(bench, {}) for g in gs]
    if any(vs):
        lines += [_table(["finding (vs normal images only)", *[g["arm"] for g in gs]],
                         [[f, *[_fmt(v.get(f, {})) for v in vs]] for f in findings]), ""]
    return lines


def _claims_section(summary: dict[str, Any]) -> list[str]:
    rows = [d for d in summary["differences"] if d["metric"] == ZS_METRIC]
    lines = ["## The paper's claim next to our measured differences", "",
             f"{PAPER} report, at scale (200k synthetic pairs, MIMIC-CXR real data, ResNet-50 + BioClinicalBERT, GPUs): "
             f"{PAPER_CLAIMS['synthetic − real']}; {PAPER_CLAIMS['mixed − real']}.", "",
             "**Our numbers do not reproduce or test that claim.** They come from a small CPU run on simulated data "
             "(the 'real' arm is the simulated MIMIC-shaped corpus, the benchmark is simulated), with tiny encoders "
             "and a short training budget; they show that the pipeline runs end to end and how large the noise is.", ""]
    if rows:
        header = ["objective", "benchmark", "comparison", "paper", "ours (AUC points)", "ours (relative)", "95% CIs overlap"]
        lines += [_table(header,
                         [[d["objective"], d["benchmark"], d["comparison"], PAPER_CLAIMS.get(d["comparison"], "–"),
                           f"{d['diff']:+.3f}", f"{d['relative_pct']:+.1f}%" if d["relative_pct"] is not None else "–",
                           "yes (within noise)" if d["cis_overlap"] else "no"] for d in rows]), ""]
    other = [d for d in summary["differences"] if d["metric"] != ZS_METRIC]
    if other:
        lines += ["Differences on the other metrics:", "",
                  _table(["objective", "benchmark", "metric", "comparison", "difference", "95% CIs overlap"],
                         [[d["objective"], d["benchmark"], d["metric"], d["comparison"], f"{d['diff']:+.3f}",
                           "yes" if d["cis_overlap"] else "no"] for d in other]), ""]
    return lines


def _setup_section(manifest: dict[str, Any]) -> list[str]:
    cfg, steps = manifest["config"], manifest["steps"]
    budget = (f"same number of optimizer steps for every arm ({cfg['train']['steps']})" if cfg["train"]["budget"] == "steps"
              else "same number of epochs for every arm (the mixed arm sees more updates)")
    rows = []
    for run in manifest["runs"]:
        r = steps.get(run["train"], {}).get("result", {})
        val = r.get("val") or {}
        recall = next((f"{k}={v:.3f}" for k, v in val.items() if k.endswith("r10")), "–")
        loss = f"{r['final_loss']:.3f}" if isinstance(r.get("final_loss"), (int, float)) else "–"
        rows.append([run["run"], run["arm"], run["objective"], run["seed"], r.get("pairs", "–"), r.get("step", "–"),
                     loss, recall])
    sizes = cfg["sizes"]
    return ["## Setup", "",
            f"Arms: {', '.join(cfg['arms'])} (mixed = real + synthetic, mix `{cfg['mix']['mode']}`). Everything else is fixed: "
            f"train config `{cfg['train']['config']}`, objectives {[o['name'] for o in cfg['objectives']]}, "
            f"seeds {cfg['seeds']}; "
            f"budget: {budget}.", "",
            f"Data: real = {cfg['real']['source']} ({sizes['n_real']} studies when simulated), synthetic = "
            f"{cfg['synthetic']['source']} ({sizes['n_synthetic']} pairs requested), images {sizes['image_size']} px; "
            f"benchmarks: {', '.join(b.get('name') or b['dataset'] for b in cfg['benchmarks'])} "
            f"({sizes['n_benchmark']} images in the simulated one).", "",
            _table(["run", "arm", "objective", "seed", "training pairs", "steps", "final train loss (mean of last 10 steps)",
                    "val retrieval (own held-out pairs)"], rows), ""]


def _timing_section(manifest: dict[str, Any]) -> list[str]:
    per_kind: dict[str, list[float]] = {}
    for s in manifest["steps"].values():
        per_kind.setdefault(s["kind"], []).append(float(s.get("seconds") or 0.0))
    ran = sum(s.get("last_run") == "ran" for s in manifest["steps"].values())
    return ["## Timings", "",
            f"This invocation: {manifest.get('seconds_this_run', 0):.1f} s; {ran} steps ran, "
            f"{len(manifest['steps']) - ran} were done before and skipped.", "",
            _table(["step kind", "steps", "seconds (when run)"], [[k, len(v), f"{sum(v):.1f}"] for k, v in per_kind.items()]), ""]


def render_markdown(manifest: dict[str, Any], img: dict[str, str], config_yaml: str) -> str:
    summary = manifest["summary"]
    lines = ["# syncxr study: real vs synthetic vs mixed pretraining", "",
             f"Reproduces the design of {PAPER}: the same model, objective and training budget pretrained on real, "
             "synthetic and mixed image–report pairs, every checkpoint evaluated on the same benchmarks. Numbers are "
             "means with 95% CIs (one seed: bootstrap over test images; several seeds: t-interval over seeds).", "",
             *_setup_section(manifest), "## Results", "", *_results_section(summary, img), *_claims_section(summary),
             *_timing_section(manifest), "## Reproduce", "",
             "The whole study (rerun it to resume; finished steps are skipped):", "",
             "```", manifest["command"], "```", "", "The same steps one by one:", "", "```",
             *[s["command"] for s in manifest["steps"].values()], "```", "", "Resolved study config (`study.yaml`):", "",
             "```yaml", config_yaml.rstrip(), "```", ""]
    return "\n".join(lines)


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
    style = ("body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}"
             "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px}"
             "img{max-width:100%}code,pre{background:#f3f3f3;padding:1px 3px}pre{padding:8px;overflow-x:auto;font-size:12px}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>syncxr study</title><style>{style}</style></head>"
            f"<body>{''.join(body)}</body></html>\n")


def write_study_report(out: str | Path, manifest: dict[str, Any]) -> list[Path]:
    """Write out/study.md (+ study_assets/*.png) and out/study.html; returns their paths."""
    out = Path(out)
    summary = manifest["summary"]
    figs: dict[str, bytes] = {}
    for g in summary["groups"]:
        for bench in g["benchmarks"]:
            key = f"{g['objective']}-{bench}"
            if key not in figs:
                png = bar_plot(summary["groups"], g["objective"], bench)
                if png:
                    figs[key] = png
    assets = out / "study_assets"
    assets.mkdir(parents=True, exist_ok=True)
    for name, png in figs.items():
        write_text_atomic(png, assets / f"{name}.png")
    config_yaml = (out / "study.yaml").read_text() if (out / "study.yaml").is_file() else ""
    md = render_markdown(manifest, {k: f"study_assets/{k}.png" for k in figs}, config_yaml)
    write_text_atomic(md, out / "study.md")
    write_text_atomic(render_html(md, figs), out / "study.html")
    return [out / "study.md", out / "study.html"]
