"""Figures and pages of the audits: histograms, tables, the closest pairs (self-contained HTML)."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from syncxr.data.shards import write_text_atomic  # noqa: E402

if TYPE_CHECKING:
    from syncxr.audit.corpus import AuditSet
    from syncxr.audit.privacy import Match

THUMB = 160

CSS = ("body{font-family:sans-serif;max-width:1100px;margin:auto;padding:1em}"
       "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;"
       "vertical-align:top;font-size:13px}th{background:#f3f3f3}img{max-width:100%}")


def png_bytes(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


def thumbnail(img: np.ndarray, side: int = THUMB) -> bytes:
    im = Image.fromarray(img)
    im.thumbnail((side, side))
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def md_table(header: Sequence[str], rows: Sequence[Sequence]) -> str:
    lines = ["| " + " | ".join(map(str, header)) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c).replace("|", "/") for c in r) + " |" for r in rows]
    return "\n".join(lines)


def html_table(header: Sequence[str], rows: Sequence[Sequence], raw: bool = False) -> str:
    cell = (lambda c: str(c)) if raw else (lambda c: html.escape(str(c)))
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def page(title: str, parts: Sequence[str]) -> str:
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{CSS}</style></head><body><h1>{html.escape(title)}</h1>{''.join(parts)}</body></html>")


def histogram(name: str, what: str, scores: np.ndarray, baseline: np.ndarray, threshold: float | None) -> bytes:
    fig, ax = plt.subplots(figsize=(7, 3.5))
    s, b = scores[np.isfinite(scores)], baseline[np.isfinite(baseline)]
    lo = float(min(s.min() if len(s) else 1, b.min() if len(b) else 1))
    bins = np.linspace(min(lo, 0.999), 1.0, 41)
    if len(b):
        ax.hist(b, bins=bins, density=True, alpha=0.5, label=f"real -> nearest other real (n={len(b)})")
    ax.hist(s, bins=bins, density=True, histtype="step", lw=2, color="C3", label=f"synthetic -> nearest real (n={len(s)})")
    if threshold is not None:
        ax.axvline(threshold, color="k", ls="--", label=f"drop at >= {threshold:g}")
    ax.set_xlabel(what)
    ax.set_ylabel("density")
    ax.set_title(f"Nearest-neighbour similarity: {name}")
    ax.legend(fontsize=8)
    return png_bytes(fig)


def _stats_rows(summary: dict) -> list[list]:
    rows = []
    for m, d in summary["measures"].items():
        for side in ("synthetic_to_real", "real_to_real"):
            st = d[side]
            if not st.get("n"):
                continue
            q = st["quantiles"]
            rows.append([m, side, st["n"], q["q50"], q["q95"], q["q99"], q["q100"],
                         st["at_or_above"]["0.9"], st["at_or_above"]["0.99"], st["at_or_above"]["1"]])
    return rows


STATS_HEADER = ["measure", "side", "n", "median", "q95", "q99", "max", ">=0.9", ">=0.99", "exact"]


def write_privacy_report(out: Path, summary: dict, syn: "AuditSet", real: "AuditSet",
                         matches: dict[str, "Match"], top: int) -> None:
    """hist_<measure>.png, privacy.md and privacy.html (with the closest pairs, images inline)."""
    from syncxr.audit.privacy import nearest_pairs

    flt = summary.get("filter") or {}
    md = [f"# Privacy audit\n\nsynthetic `{syn.where}` ({len(syn)} samples) vs real `{real.where}` "
          f"({real.kind}, {len(real)} samples).\n\n{summary['reading']}\n",
          md_table(STATS_HEADER, _stats_rows(summary)), ""]
    parts = [f"<p>synthetic <code>{html.escape(syn.where)}</code> ({len(syn)} samples) vs real "
             f"<code>{html.escape(real.where)}</code> ({real.kind}, {len(real)} samples).</p>",
             f"<p>{html.escape(summary['reading'])}</p>", html_table(STATS_HEADER, _stats_rows(summary))]
    if flt:
        line = (f"Near-copy filter: {flt['dropped']} dropped, {flt['kept']} kept ({flt['measure']} "
                f"{flt['rule'].replace('threshold', str(flt['threshold']))}; list in dropped.csv)")
        md.append(line + "\n")
        parts.append(f"<p><b>{html.escape(line)}</b></p>")
    for m, match in matches.items():
        what = summary["measures"][m]["what"]
        thr = flt.get("threshold") if flt.get("measure") == m else None
        fig = histogram(m, what, match.score, match.baseline, thr)
        write_text_atomic(fig, out / f"hist_{m}.png")
        md += [f"## {m}: {what}\n", f"![{m}](hist_{m}.png)\n"]
        parts += [f"<h2>{m}: {html.escape(what)}</h2>", f"<img alt='hist {m}' src='{data_uri(fig)}'>"]
        rows_md, rows_html = [], []
        for i in nearest_pairs(match, top):
            j = int(match.real[i])
            s = f"{match.score[i]:.4f}"
            rows_md.append([s, syn.ids[i], real.ids[j], _short(syn.texts[i]), _short(real.texts[j])])
            if m == "image":
                pair = [_img_cell(syn, i), _img_cell(real, j)]
            else:
                pair = [html.escape(syn.texts[i]), html.escape(real.texts[j])]
            rows_html.append([s, html.escape(syn.ids[i]), html.escape(real.ids[j]), *pair])
        md.append(md_table(["score", "synthetic", "real", "synthetic text", "real text"], rows_md) + "\n")
        parts.append(f"<h3>The {len(rows_html)} closest pairs</h3>")
        parts.append(html_table(["score", "synthetic", "nearest real", "synthetic", "real"], rows_html, raw=True))
    write_text_atomic("\n".join(md), out / "privacy.md")
    write_text_atomic(page("Privacy audit", parts), out / "privacy.html")


def _short(text: str, n: int = 160) -> str:
    t = " ".join(text.split())
    return t if len(t) <= n else t[: n - 1] + "…"


def _img_cell(aset: "AuditSet", i: int) -> str:
    try:
        return f"<img alt='{html.escape(aset.ids[i])}' src='{data_uri(thumbnail(aset.load_image(i)))}'>"
    except (ValueError, FileNotFoundError) as e:
        return html.escape(f"(unreadable: {e})")


FIDELITY_HEADER = ["group", "real", "synthetic", "FD", "precision", "recall", "density", "coverage",
                   "classifier AUC (out of fold)", "fold AUC mean ± sd"]


def _fidelity_row(name: str, g: dict) -> list:
    c = g["classifier"]
    return [name, g["n_real"], g["n_synthetic"], f"{g['fd']:.4g}", g["precision"], g["recall"], g["density"],
            g["coverage"], c["auc"], f"{c['fold_mean']:.3f} ± {c['fold_std']:.3f}"]


def fidelity_figure(result: dict, real: np.ndarray, fake: np.ndarray) -> bytes:
    """Left: the first two principal components of both feature sets; right: precision and
    recall overall and per finding."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    both = np.concatenate([real, fake]).astype(np.float64)
    centred = both - both.mean(0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    p = centred @ vt[:2].T
    ax1.scatter(p[: len(real), 0], p[: len(real), 1], s=6, alpha=0.5, label=f"real (n={len(real)})")
    ax1.scatter(p[len(real):, 0], p[len(real):, 1], s=6, alpha=0.5, color="C3", label=f"synthetic (n={len(fake)})")
    ax1.set_title(f"{result['features']} features, first two principal components")
    ax1.legend(fontsize=8)
    groups = {"overall": result["overall"], **result["per_finding"]}
    x = np.arange(len(groups))
    for off, key, col in ((-0.3, "precision", "C0"), (-0.1, "recall", "C1"), (0.1, "coverage", "C2")):
        ax2.bar(x + off, [g[key] for g in groups.values()], width=0.2, color=col, label=key)
    ax2.bar(x + 0.3, [g["classifier"]["auc"] for g in groups.values()], width=0.2, color="C7", label="classifier AUC")
    ax2.axhline(0.5, color="k", lw=0.8, ls=":")
    ax2.set_xticks(x, list(groups), rotation=45, ha="right", fontsize=8)
    ax2.set_ylim(0, 1.05)
    ax2.set_title(f"k-NN precision / recall / coverage (k={result['k']}) and classifier AUC")
    ax2.legend(fontsize=7)
    return png_bytes(fig)


def write_fidelity_report(out: Path, result: dict, real: np.ndarray, fake: np.ndarray) -> None:
    """fidelity.md (tables) and fidelity.png."""
    write_text_atomic(fidelity_figure(result, real, fake), out / "fidelity.png")
    rows = [_fidelity_row("overall", result["overall"])]
    if result.get("real_halves"):
        rows.append(_fidelity_row("reference: real half vs real half", result["real_halves"]))
    rows += [_fidelity_row(f, g) for f, g in result["per_finding"].items()]
    md = [f"# Generative fidelity\n\nsynthetic `{result['synthetic']['path']}` ({result['synthetic']['images']} images) "
          f"vs real `{result['real']['path']}` ({result['real']['kind']}, {result['real']['images']} images); "
          f"features: {result['features']}, k = {result['k']}.\n", md_table(FIDELITY_HEADER, rows), "",
          result["reading"], ""]
    if result["skipped_findings"]:
        md.append("Findings skipped (too few images): " + "; ".join(f"{f}: {why}" for f, why in result["skipped_findings"].items()) + "\n")
    md.append("![fidelity](fidelity.png)\n")
    write_text_atomic("\n".join(md), out / "fidelity.md")
