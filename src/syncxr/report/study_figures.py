"""The study report's figures: bar charts with CIs, scaling curves, and the synthetic data's
entity distribution and sample pairs (PNG bytes; `study.py` inlines them)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Optional

import numpy as np

ARM_COLORS = {"real": "#4c72b0", "synthetic": "#dd8452", "mixed": "#55a868"}


def _is_base(g: dict[str, Any]) -> bool:
    return g.get("variant") is None and g.get("fraction", 1.0) == 1.0


def _order(gs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Arms first, then ablations, then data fractions (largest first)."""
    return sorted(gs, key=lambda g: (not _is_base(g), g.get("variant") is None, -g.get("fraction", 1.0)))


def _benches(groups: list[dict[str, Any]]) -> list[str]:
    return list(dict.fromkeys(b for g in groups for b in g["benchmarks"]))


def _ci_of(m: dict[str, Any]) -> Optional[list[float]]:
    """The CI the report shows: the bootstrap CI of the seed mean when there is one, else the
    run's own bootstrap CI (one seed) or the t-interval over seeds."""
    return m.get("boot_ci") or m.get("ci")


def bar_plot(groups: list[dict[str, Any]], objective: str, bench: str, title: str = "") -> Optional[bytes]:
    """One panel per metric, one bar per group (coloured by arm, hatched when ablated or subsampled),
    95% CI error bars."""
    from syncxr.report import plots

    plt = plots.plt
    gs = [g for g in groups if g["objective"] == objective and bench in g["benchmarks"]]
    labels = list(dict.fromkeys(k for g in gs for k in g["benchmarks"][bench]))
    if not gs or not labels:
        return None
    cols = min(4, len(labels))
    rows = math.ceil(len(labels) / cols)
    width = max(3.2, 0.55 * len(gs) + 1.2)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, 2.9 * rows), squeeze=False)
    for ax, label in zip(axes.flat, labels):
        for i, g in enumerate(gs):
            m = g["benchmarks"][bench].get(label, {})
            if m.get("value") is None:
                continue
            v, ci = m["value"], _ci_of(m)
            err = [[max(v - ci[0], 0)], [max(ci[1] - v, 0)]] if ci else None
            ax.bar(i, v, color=ARM_COLORS.get(g["arm"], "#888"), yerr=err, capsize=4,
                   hatch=None if _is_base(g) else "//", edgecolor="white" if _is_base(g) else "#333")
        ax.set_xticks(range(len(gs)), [g["group"] for g in gs], fontsize=7, rotation=30 if len(gs) > 3 else 0,
                      ha="right" if len(gs) > 3 else "center")
        ax.set_title(label, fontsize=9)
        ax.tick_params(axis="y", labelsize=8)
    for ax in list(axes.flat)[len(labels):]:
        ax.axis("off")
    fig.suptitle(title or f"{objective} on {bench} (bars: mean, error bars: 95% CI)", fontsize=10)
    fig.tight_layout()
    return plots._png(fig)


def scaling_plot(groups: list[dict[str, Any]], objective: str, bench: str) -> Optional[bytes]:
    """Metric vs fraction of the training data, one line per arm, 95% CI error bars."""
    from syncxr.report import plots

    plt = plots.plt
    gs = [g for g in groups if g["objective"] == objective and g.get("variant") is None and bench in g["benchmarks"]]
    if not any(g["fraction"] < 1.0 for g in gs):
        return None
    labels = list(dict.fromkeys(k for g in gs for k in g["benchmarks"][bench]))
    cols = min(3, len(labels))
    rows = math.ceil(len(labels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    for ax, label in zip(axes.flat, labels):
        for arm in dict.fromkeys(g["arm"] for g in gs):
            pts = sorted((g["fraction"], g["benchmarks"][bench].get(label, {})) for g in gs if g["arm"] == arm)
            pts = [(f, m) for f, m in pts if m.get("value") is not None]
            if not pts:
                continue
            x = [100 * f for f, _ in pts]
            v = [m["value"] for _, m in pts]
            err = np.array([[max(m["value"] - (_ci_of(m) or [m["value"]] * 2)[0], 0) for _, m in pts],
                            [max((_ci_of(m) or [m["value"]] * 2)[1] - m["value"], 0) for _, m in pts]])
            ax.errorbar(x, v, yerr=err, marker="o", capsize=3, label=arm, color=ARM_COLORS.get(arm))
        ax.set_xscale("log")
        ticks = sorted({100 * g["fraction"] for g in gs})
        ax.set_xticks(ticks, [f"{t:g}%" for t in ticks], fontsize=8)
        ax.minorticks_off()
        ax.set_xlabel("training data (% of the arm's pairs)", fontsize=8)
        ax.set_title(label, fontsize=9)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(labels):]:
        ax.axis("off")
    fig.suptitle(f"Data-size scaling: {objective} on {bench} (95% CI)", fontsize=10)
    fig.tight_layout()
    return plots._png(fig)


# --- tables ------------------------------------------------------------------------------------


def _synthetic_dirs(manifest: dict[str, Any], out: Path) -> dict[str, Path]:
    """step name -> folder of every synthetic dataset the study used (generated or given)."""
    dirs = {}
    for name, step in manifest.get("steps", {}).items():
        if step.get("kind") != "synthetic":
            continue
        conf = step.get("config") or {}
        folder = Path(conf["path"]) if conf.get("source") == "dataset" and conf.get("path") else out / name
        if folder.is_dir():
            dirs[name] = folder
    return dirs


def _entity_png(folder: Path) -> Optional[bytes]:
    """The dataset card's entity plot; drawn from the dataset manifest's plan when the card has none."""
    png = folder / "card_assets" / "entities.png"
    if png.is_file():
        return png.read_bytes()
    try:
        plan = json.loads((folder / "manifest.json").read_text()).get("plan") or {}
    except (OSError, ValueError):
        return None
    if not plan.get("sampled_counts"):
        return None
    from syncxr.report import plots

    return plots.entity_distribution(plan.get("reference_counts"), plan["sampled_counts"])


def _samples_png(folder: Path, n: int = 8) -> Optional[bytes]:
    """The card's sample grid, or a grid of the first n accepted pairs (image + IMPRESSION)."""
    png = folder / "card_assets" / "samples.png"
    if png.is_file():
        return png.read_bytes()
    shards = sorted((folder / "shards").glob("shard-*.parquet"))
    if not shards:
        return None
    import pyarrow.parquet as pq

    from syncxr.report import plots

    t = pq.read_table(shards[0], columns=["image_png", "impression"]).slice(0, n).to_pydict()
    return plots.sample_grid([(p, imp, []) for p, imp in zip(t["image_png"], t["impression"])])


def _figures(manifest: dict[str, Any], out: Path) -> tuple[dict[str, bytes], dict[str, str]]:
    """name -> PNG bytes (inlined in study.html) and name -> path relative to out (study.md links)."""
    summary = manifest["summary"]
    groups = summary["groups"]
    figs: dict[str, bytes] = {}
    links: dict[str, str] = {}
    for bench in _benches(groups):
        for objective in dict.fromkeys(g["objective"] for g in groups):
            png = bar_plot(_order(groups), objective, bench)
            if png:
                figs[f"{objective}-{bench}"] = png
            abl = [g for g in groups if g["objective"] == objective and (g.get("variant") is not None or (
                _is_base(g) and any(a.get("variant") is not None and a["arm"] == g["arm"] for a in groups)))]
            if any(g.get("variant") is not None for g in abl):
                png = bar_plot(_order(abl), objective, bench, f"Ablations: {objective} on {bench} (95% CI)")
                if png:
                    figs[f"ablation-{objective}-{bench}"] = png
            png = scaling_plot(groups, objective, bench)
            if png:
                figs[f"scaling-{objective}-{bench}"] = png
    for name, folder in _synthetic_dirs(manifest, out).items():
        png = _entity_png(folder)
        if png:
            figs[f"entities-{name}"] = png
        if name == "data/synthetic" or "samples" not in figs:
            png = _samples_png(folder)
            if png:
                figs["samples"] = png
    links = {k: f"study_assets/{k.replace('/', '_')}.png" for k in figs}
    for kind in ("privacy", "fidelity"):  # the audit's own PNGs: linked in place, inlined in the HTML
        folder = out / "audit" / kind
        if (manifest.get("steps", {}).get(f"audit/{kind}") or {}).get("result") and folder.is_dir():
            for png in sorted(folder.glob("*.png")):
                key = f"audit-{kind}-{png.stem}"
                figs[key], links[key] = png.read_bytes(), f"audit/{kind}/{png.name}"
    return figs, links
