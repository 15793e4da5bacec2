"""What a zero-shot finding prompt attends to on the simulated benchmark (issue 7).

    PYTHONPATH=src .venv/bin/python benchmarks/zeroshot_attention.py \
        --checkpoint STUDY/train/real-convirt-s0 --bench STUDY/data/bench-sim \
        --predictions STUDY/eval/real-convirt-s0/sim/zeroshot/predictions.csv \
        --top 8 --out /tmp/attn-real --figure docs/images/zeroshot-attention-real.png

For each finding F: its positives, the K highest-scoring negatives and the K lowest-scoring
positives (by the saved zero-shot score). For every image, two global-space similarity maps of F
(`syncxr.evaluate.attention`): "pos" (F's positive prompt set) and "diff" (pos - neg, the
direction the score grows along), upsampled to the image's pixels. Statistic: the share of a
map's top-10% pixels inside a region, against the region's area share (chance), and the pointing
game. Regions: F's own mask (positives), the union of the OTHER benchmark findings' masks present
in the image (negatives and positives with another finding), the lung fields, and the air outside
the body. Lungs and body come from replaying the phantom's anatomy for each benchmark case (the
replay is checked to redraw the first image byte for byte); for a benchmark that cannot be
replayed, the body is a grey-level threshold and the lungs are left out.

Writes OUT/per_image.csv, OUT/summary.json and OUT/tables.md, and with --figure a PNG grid (two
findings: top-scoring negatives and lowest-scoring positives, the "contrib" map overlaid, F's mask in
green, other findings' masks in red, lungs in white).
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from syncxr.errors import UserError
from syncxr.evaluate.attention import (
    MAP_KINDS,
    iter_maps,
    prompt_directions,
    region_stats,
)
from syncxr.evaluate.prompts import load_prompt_table, prompts_for
from syncxr.evaluate.zeroshot import image_ids

log = logging.getLogger("zeroshot_attention")
DEFAULT_FINDINGS = ["atelectasis", "consolidation", "pneumothorax", "cardiomegaly", "pleural_effusion"]
TEMPERATURE = 0.07  # the zero-shot task's default; only used to check the saved scores belong to the checkpoint


# ---------------------------------------------------------------------------------------- inputs
def load_scores(path: Path, dataset: Any, findings: list[str]) -> pd.DataFrame:
    """Saved zero-shot scores, one row per dataset row (in dataset order), one column per finding."""
    if not path.is_file():
        raise UserError(f"--predictions {path}: no such file (the zeroshot task's predictions.csv)")
    pred = pd.read_csv(path)
    missing = [c for c in ["image", *findings] if c not in pred.columns]
    if missing:
        raise UserError(f"--predictions {path}: lacks columns {missing}; expected `image` and one score column per finding")
    ids = pd.Series(image_ids(dataset, np.arange(len(dataset))), name="image")
    merged = ids.to_frame().merge(pred.drop_duplicates("image"), on="image", how="left")
    absent = merged[findings[0]].isna()
    if absent.any():
        raise UserError(f"--predictions {path}: {int(absent.sum())} benchmark images have no score, e.g. "
                        f"{merged.loc[absent, 'image'].iloc[0]!r}; pass the predictions of this benchmark")
    return merged[findings].astype(float)


def anatomy(bench: Path, dataset: Any) -> tuple[list[tuple[np.ndarray, np.ndarray]] | None, str]:
    """Per row (lungs, body) from replaying the phantom, or (None, why) when it cannot be replayed."""
    manifest = bench / "sim.json"
    if not manifest.is_file():
        return None, "no sim.json"
    m = json.loads(manifest.read_text())
    if m.get("fmt") != "csv":
        return None, f"benchmark format {m.get('fmt')!r}"
    from syncxr.image.phantom import FindingSpec
    from syncxr.image.phantom.render import anatomy_masks, render_phantom
    from syncxr.sim.benchmark import plan_cases

    cases = {f"images/{c.image_id}.png": c for c in plan_cases(m["n"], m["findings"], m["seed"], m["p_second"])}
    ids = image_ids(dataset, np.arange(len(dataset)))
    if any(i not in cases for i in ids):
        return None, "benchmark images do not match the planned cases"
    first = cases[ids[0]]
    if not np.array_equal(render_phantom([FindingSpec(n) for n in first.findings], first.seed, m["size"]).image, dataset.image(0)):
        return None, "the phantom no longer redraws this benchmark (renderer changed since it was written)"
    out = [anatomy_masks([FindingSpec(n) for n in cases[i].findings], cases[i].seed, m["size"]) for i in ids]
    return out, "phantom anatomy replayed from sim.json"


def threshold_body(img: np.ndarray) -> np.ndarray:
    """Fallback body mask: brighter than 10% of the grey range above the darkest percentile."""
    lo, hi = np.percentile(img, [1, 99])
    return img > lo + 0.1 * (hi - lo)


# ------------------------------------------------------------------------------------- analysis
def groups(scores: Any, labels: np.ndarray, top: int) -> dict[str, np.ndarray]:
    """Boolean selections (by position) of one finding: pos, neg, top-K negatives, bottom-K positives."""
    s = np.asarray(scores, dtype=float)
    pos, neg = labels == 1, labels == 0
    top_neg = np.zeros(len(labels), bool)
    top_neg[np.flatnonzero(neg)[np.argsort(-s[neg], kind="stable")[:top]]] = True
    low_pos = np.zeros(len(labels), bool)
    low_pos[np.flatnonzero(pos)[np.argsort(s[pos], kind="stable")[:top]]] = True
    return {"pos": pos, "neg": neg, "top_neg": top_neg, "low_pos": low_pos}


def analyse(pretrained: Any, dataset: Any, findings: list[str], scores: pd.DataFrame, anat: list | None,
            keep: set[tuple[str, int]], frac: float) -> tuple[pd.DataFrame, dict[tuple[str, int], np.ndarray], float]:
    """Per (finding, image) statistics; the diff maps of the `keep` pairs; max |score - saved score|."""
    table = prompts_for(findings, load_prompt_table(dataset.name, None))
    d = prompt_directions(pretrained, [table[f].positive for f in findings], [table[f].negative for f in findings])
    directions = torch.cat([d["pos"], d["diff"]])  # (2K, D): pos maps, then diff maps (cosines)
    labels = np.nan_to_num(np.asarray(dataset.labels), nan=0.0)
    all_findings = list(dataset.findings)
    rows, kept, score_err = [], {}, 0.0
    for i, maps, valid, glob in iter_maps(pretrained, dataset, directions, d["diff"]):
        present = [f for f, v in zip(all_findings, labels[i]) if v == 1]
        masks = {f: dataset.mask(i, f) for f in present}
        masks = {f: np.asarray(m, bool) for f, m in masks.items() if m is not None}
        if anat is not None:
            lungs, body = anat[i]
        else:
            lungs, body = None, threshold_body(dataset.image(i))
        for k, f in enumerate(findings):
            logits = torch.tensor([glob @ d["pos"][k].numpy(), glob @ d["neg"][k].numpy()]) / TEMPERATURE
            score_err = max(score_err, abs(float(logits.softmax(0)[0]) - float(scores.at[i, f])))
            others = [m for g, m in masks.items() if g != f]
            other = np.logical_or.reduce(others) if others else None
            row: dict[str, Any] = {"row": i, "finding": f, "label": int(labels[i, all_findings.index(f)]),
                                   "score": float(scores.at[i, f]), "n_other": len(others), "present": "|".join(present)}
            for j, kind in enumerate(MAP_KINDS):
                m = maps[j * len(findings) + k]
                py, px = np.unravel_index(np.argmax(np.where(valid, m, -np.inf)), m.shape)
                row[f"{kind}_peak_y"], row[f"{kind}_peak_x"] = py / m.shape[0], px / m.shape[1]  # 0 = top / image left
                for region, r in (("own", masks.get(f)), ("other", other), ("lungs", lungs), ("outside", ~body)):
                    for stat, v in region_stats(m, r, valid, frac).items():
                        row[f"{kind}_{region}_{stat}"] = v
            for j, kind in enumerate(MAP_KINDS):
                # one shared axis would make every finding's map the same map: correlate F's with the others' mean
                block = maps[j * len(findings):(j + 1) * len(findings)][:, valid]
                rest = np.delete(block, k, axis=0).mean(0)
                row[f"{kind}_corr_others"] = float(np.corrcoef(block[k], rest)[0, 1]) if len(findings) > 1 else np.nan
            rows.append(row)
            if (f, i) in keep:
                kept[(f, i)] = maps[2 * len(findings) + k]  # the contrib map
    return pd.DataFrame(rows), kept, score_err


def _mean(s: pd.Series) -> float:
    s = s.dropna()
    return float(s.mean()) if len(s) else float("nan")


def summarise(per: pd.DataFrame, findings: list[str], top: int) -> dict[str, Any]:
    """Per finding and map kind: mean shares (and chance) of the selections the brief names."""
    out: dict[str, Any] = {}
    for f in findings:
        sub = per[per["finding"] == f].set_index("row")
        sel = groups(sub["score"], sub["label"].to_numpy(), top)
        sel = {k: sub.index[v] for k, v in sel.items()}
        entry: dict[str, Any] = {"n_pos": len(sel["pos"]), "n_neg": len(sel["neg"])}
        top_neg = sub.loc[sel["top_neg"]]
        entry["top_neg_with_other"] = int((top_neg["n_other"] > 0).sum())
        entry["top_neg_findings"] = top_neg["present"].tolist()
        neg_other = sub.loc[sel["neg"]][sub.loc[sel["neg"]]["n_other"] > 0]
        pos_sub, low_pos = sub.loc[sel["pos"]], sub.loc[sel["low_pos"]]
        pos_other = pos_sub[pos_sub["n_other"] > 0]
        for kind in MAP_KINDS:
            e: dict[str, float] = {}
            for name, g in (("pos", pos_sub), ("low_pos", low_pos), ("pos_with_other", pos_other)):
                for stat in ("share", "chance", "hit"):
                    e[f"{name}_own_{stat}"] = _mean(g[f"{kind}_own_{stat}"])
            for name, g in (("top_neg", top_neg), ("neg_with_other", neg_other), ("pos_with_other", pos_other)):
                for stat in ("share", "chance", "hit"):
                    e[f"{name}_other_{stat}"] = _mean(g[f"{kind}_other_{stat}"])
            for name, g in (("pos", pos_sub), ("top_neg", top_neg)):
                for region in ("lungs", "outside"):
                    for stat in ("share", "chance"):
                        e[f"{name}_{region}_{stat}"] = _mean(g[f"{kind}_{region}_{stat}"])
            e["n_pos_with_other"], e["n_neg_with_other"] = len(pos_other), len(neg_other)
            e["corr_others"] = _mean(sub[f"{kind}_corr_others"])
            rows_of_peak = np.minimum((sub[f"{kind}_peak_y"].to_numpy() * 4).astype(int), 3)
            e["peak_row_quarter"] = [float(np.mean(rows_of_peak == q)) for q in range(4)]  # top .. bottom
            entry[kind] = e
        out[f] = entry
    return out


def markdown(summary: dict[str, Any], top: int, frac: float) -> str:
    pct = f"top-{frac:.0%}"
    lines = []
    for kind in MAP_KINDS:
        title = {"pos": "cos(patch, positive prompt set)", "diff": "cos(patch, pos) - cos(patch, neg)",
                 "contrib": "un-normalised patch . (pos - neg): each patch's share of the score"}[kind]
        lines += [f"### Map: {title}", "",
                  f"Share of the map's {pct} pixels in a region, mean over images (chance: the region's area share).", "",
                  (f"| finding | own mask, positives | own, {top} lowest-scoring pos | other findings' masks, {top} top-scoring neg "
                  f"| pointing game on other masks, top neg | other masks, all neg with another finding "
                  f"| positives with a 2nd finding: own / other | lungs, pos / top neg | outside body, pos / top neg "
                  f"| map corr. with the other findings' maps | map peak in image quarter 1-4 (top to bottom) |"),
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for f, s in summary.items():
            e = s[kind]

            def c(a: str, b: str, e: dict[str, Any] = e) -> str:
                """share (chance); small regions get 3 digits"""
                return f"{e[a]:.3f} ({e[b]:.3f})" if e[b] < 0.03 else f"{e[a]:.2f} ({e[b]:.2f})"

            lines.append(
                f"| {f} (n={s['n_pos']}) | {c('pos_own_share', 'pos_own_chance')} | {c('low_pos_own_share', 'low_pos_own_chance')} "
                f"| {c('top_neg_other_share', 'top_neg_other_chance')} [{s['top_neg_with_other']}/{top} have one] "
                f"| {c('top_neg_other_hit', 'top_neg_other_chance')} "
                f"| {c('neg_with_other_other_share', 'neg_with_other_other_chance')} n={e['n_neg_with_other']} "
                f"| {c('pos_with_other_own_share', 'pos_with_other_own_chance')} / {c('pos_with_other_other_share', 'pos_with_other_other_chance')} n={e['n_pos_with_other']} "
                f"| {c('pos_lungs_share', 'pos_lungs_chance')} / {c('top_neg_lungs_share', 'top_neg_lungs_chance')} "
                f"| {c('pos_outside_share', 'pos_outside_chance')} / {c('top_neg_outside_share', 'top_neg_outside_chance')} "
                f"| {e['corr_others']:.2f} | {' / '.join(f'{q:.2f}' for q in e['peak_row_quarter'])} |")
        lines.append("")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------- figure
def figure(path: Path, dataset: Any, per: pd.DataFrame, kept: dict, anat: list | None, fig_findings: list[str], n: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    all_findings = list(dataset.findings)
    panels = []
    for f in fig_findings:
        sub = per[per["finding"] == f].set_index("row")
        sel = groups(sub["score"], sub["label"].to_numpy(), n)
        for what, label in (("top_neg", "top-scoring negatives"), ("low_pos", "lowest-scoring positives")):
            rows = sub.index[sel[what]]
            rows = sorted(rows, key=lambda r: -sub.at[r, "score"]) if what == "top_neg" else sorted(rows, key=lambda r: sub.at[r, "score"])
            panels.append((f, label, rows, sub))
    fig, axes = plt.subplots(len(panels), n, figsize=(1.9 * n, 2.05 * len(panels)), squeeze=False)
    short = {"atelectasis": "atel", "cardiomegaly": "cardio", "consolidation": "consol", "edema": "edema",
             "pleural_effusion": "effus", "pneumothorax": "ptx"}
    for r, (f, label, rows, sub) in enumerate(panels):
        for c in range(n):
            ax = axes[r, c]
            ax.set_axis_off()
            if c >= len(rows):
                continue
            i = rows[c]
            img = dataset.image(i)
            m = kept[(f, i)]
            m01 = (m - m.min()) / max(float(m.max() - m.min()), 1e-8)
            ax.imshow(img, cmap="gray", vmin=0, vmax=255)
            ax.imshow(m01, cmap="inferno", alpha=0.45, vmin=0, vmax=1)
            if anat is not None:
                ax.contour(anat[i][0], levels=[0.5], colors="white", linewidths=0.5)
            for g, v in zip(all_findings, np.nan_to_num(np.asarray(dataset.labels[i]), nan=0.0)):
                mk = dataset.mask(i, g) if v == 1 else None
                if mk is not None and np.any(mk):
                    ax.contour(np.asarray(mk, float), levels=[0.5], colors="lime" if g == f else "red", linewidths=0.9)
            present = "+".join(short.get(g, g) for g in sub.at[i, "present"].split("|") if g) or "normal"
            ax.set_title(f"{sub.at[i, 'score']:.2f} {present}", fontsize=7)
        axes[r, 0].text(-0.08, 0.5, f"{f}\n{label}", transform=axes[r, 0].transAxes, rotation=90,
                        ha="right", va="center", fontsize=7)
    fig.suptitle("patch contribution to the score (patch . (pos-neg)) (bright = raises the score); green: the finding's mask, red: other findings, "
                 "white: lungs; title: score, findings present", fontsize=7)
    fig.tight_layout(rect=(0.02, 0, 1, 0.97))
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    plt.close(fig)
    from PIL import Image

    # a 256-colour palette keeps the grid under ~300 KB for the docs without visible loss
    Image.open(buf).convert("RGB").quantize(256).save(path, optimize=True)


# ------------------------------------------------------------------------------------------ CLI
def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", required=True, help="a training run folder or checkpoint")
    ap.add_argument("--bench", required=True, type=Path, help="simulated benchmark folder (labels.csv, masks/)")
    ap.add_argument("--predictions", required=True, type=Path, help="the zeroshot task's predictions.csv on --bench")
    ap.add_argument("--findings", nargs="+", default=DEFAULT_FINDINGS)
    ap.add_argument("--top", type=int, default=8, help="K: top-scoring negatives / lowest-scoring positives")
    ap.add_argument("--frac", type=float, default=0.1, help="share of the map's hottest pixels counted")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--figure", type=Path, default=None, help="PNG path for the grid figure")
    ap.add_argument("--figure-findings", nargs=2, default=["atelectasis", "consolidation"])
    ap.add_argument("--figure-n", type=int, default=5, help="images per figure row")
    return ap.parse_args(argv)


def run(a: argparse.Namespace) -> dict[str, Any]:
    from syncxr.data.sources.registry import load_dataset
    from syncxr.models.pretrained import load_pretrained

    if a.top < 1:
        raise UserError(f"--top {a.top}: must be at least 1")
    if not a.bench.is_dir():
        raise UserError(f"--bench {a.bench}: no such folder")
    dataset = load_dataset("sim", str(a.bench))
    unknown = [f for f in [*a.findings, *(a.figure_findings if a.figure else [])] if f not in dataset.findings]
    if unknown:
        raise UserError(f"findings {unknown} are not columns of {a.bench}/labels.csv; choose from {dataset.findings}")
    scores = load_scores(a.predictions, dataset, list(dict.fromkeys(a.findings + (a.figure_findings if a.figure else []))))
    findings = list(dict.fromkeys(a.findings + (a.figure_findings if a.figure else [])))
    pretrained = load_pretrained(a.checkpoint)
    anat, why = anatomy(a.bench, dataset)
    log.info("lungs/body: %s", why)
    keep: set[tuple[str, int]] = set()
    labels = np.nan_to_num(np.asarray(dataset.labels), nan=0.0)
    if a.figure:
        for f in a.figure_findings:
            sel = groups(scores[f], labels[:, dataset.findings.index(f)], a.figure_n)
            keep |= {(f, int(i)) for i in np.flatnonzero(sel["top_neg"] | sel["low_pos"])}
    per, kept, err = analyse(pretrained, dataset, findings, scores, anat, keep, a.frac)
    if err > 1e-3:
        log.warning("recomputed zero-shot scores differ from --predictions by up to %.3g: are they from this checkpoint?", err)
    summary = {"checkpoint": str(a.checkpoint), "predictions": str(a.predictions), "top": a.top, "frac": a.frac,
               "anatomy": why, "max_score_difference": err, "findings": summarise(per, a.findings, a.top)}
    a.out.mkdir(parents=True, exist_ok=True)
    per.to_csv(a.out / "per_image.csv", index=False)
    (a.out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    (a.out / "tables.md").write_text(markdown(summary["findings"], a.top, a.frac))
    if a.figure:
        figure(a.figure, dataset, per, kept, anat, a.figure_findings, a.figure_n)
    return summary


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    a = parse(argv)
    try:
        summary = run(a)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print((a.out / "tables.md").read_text())
    print(f"anatomy: {summary['anatomy']}; max |score - saved| = {summary['max_score_difference']:.2g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
