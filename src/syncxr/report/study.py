"""The study report: study.md + study.html from the study's summary (report/study_summary.py).

`write_study_report` writes study.md (+ study_assets/*.png) and a self-contained study.html
(images inlined); the numbers come from `study_summary.aggregate` and the figures from
`study_figures`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from syncxr.data.shards import write_text_atomic
from syncxr.report.markdown import table, to_html
from syncxr.report.study_figures import _benches, _ci_of, _figures, _order
from syncxr.report.study_summary import ZS_METRIC

# The paper's abstract, quoted; our numbers are compared with it, never claimed to reproduce it.
PAPER = "Liu et al., *Can Medical Vision-Language Pre-training Succeed with Purely Synthetic Data?*"
PAPER_CLAIMS = {
    "synthetic − real": "synthetic-only beats real (MIMIC-CXR) by 3.8% averaged zero-shot AUC",
    "mixed − real": "synthetic + real gives a further improvement of 9.07% (zero-shot AUC)",
}
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
            lines += [f"### {objective} on {bench}", "", table(header, rows), ""]
            key = f"{objective}-{bench}"
            if key in img:
                lines += [f"![{key}]({img[key]})", ""]
            findings = list(dict.fromkeys(f for g in gs for f in g["per_finding"].get(bench, {})))
            if findings:
                lines += [f"Zero-shot AUC per finding ({objective}, {bench}):", "",
                          table(["finding", *[g["group"] for g in gs]],
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
        lines += [table(["finding (vs normal images only)", *[g["group"] for g in gs]],
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
                      table(["objective", "metric", "comparison", "a", "b", "a − b [95% CI]", "p", "p (Holm)", "p (BH)",
                              "paper"],
                             [[r["objective"], r["metric"], r["comparison"], f"{r['a_value']:.3f}", f"{r['b_value']:.3f}",
                               _diff(r), _p(r["p"]), _p(r["p_holm"]), _p(r["p_bh"]),
                               PAPER_CLAIMS.get(r["comparison"], "–") if r["metric"] == ZS_METRIC else "–"] for r in rows]), ""]
            zs = [r for r in rows if r["metric"] == ZS_METRIC and r["kind"] == "arms" and r["per_finding"]]
            if zs:
                findings = list(dict.fromkeys(f for r in zs for f in r["per_finding"]))
                lines += [f"Per finding (zero-shot AUC on {bench}; Holm over all findings and comparisons of this metric):", "",
                          table(["finding", *[f"{r['objective']}: {r['comparison']}" for r in zs]],
                                 [[f, *[(_diff(r["per_finding"][f]) + f", p (Holm) {_p(r['per_finding'][f].get('p_holm'))}")
                                        if f in r["per_finding"] else "–" for r in zs]] for f in findings]), ""]
    else:
        rows = [d for d in summary["differences"] if d["metric"] == ZS_METRIC]
        lines += ["No paired comparison could be made (no saved predictions); plain differences of the means:", ""]
        if rows:
            lines += [table(["objective", "benchmark", "comparison", "paper", "ours (AUC points)", "95% CIs overlap"],
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
                lines += [table(["ablation", "metric", "value", "reference", "ablation − reference [95% CI]", "p", "p (Holm)"],
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
            lines += [f"## {title}", "", table(["measure", "value"], [[k, _value(v)] for k, v in _flatten(result)]), ""]
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
    return [table(list(df.columns), [[_value(v) for v in row] for row in df.itertuples(index=False)])]


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
            table(["run", "group", "arm", "ablation", "data fraction", "objective", "seed", "training pairs", "steps",
                    "final train loss (mean of last 10 steps)", "val retrieval (own held-out pairs)"], rows), ""]


def _timing_section(manifest: dict[str, Any]) -> list[str]:
    per_kind: dict[str, list[float]] = {}
    for s in manifest["steps"].values():
        per_kind.setdefault(s["kind"], []).append(float(s.get("seconds") or 0.0))
    ran = sum(s.get("last_run") == "ran" for s in manifest["steps"].values())
    return ["## Timings", "",
            f"This invocation: {manifest.get('seconds_this_run', 0):.1f} s; {ran} steps ran, "
            f"{len(manifest['steps']) - ran} were done before and skipped.", "",
            table(["step kind", "steps", "seconds (when run)"], [[k, len(v), f"{sum(v):.1f}"] for k, v in per_kind.items()]), ""]


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
    write_text_atomic(to_html(md, figs, "syncxr study", lambda alt, target: alt), out / "study.html")
    return [out / "study.md", out / "study.html"]
