"""Privacy audit: how close does each synthetic sample come to the real corpus?

For every synthetic report, its nearest real report by
  text_ngram  word n-gram overlap (default: Jaccard of the word 3-gram sets, |A∩B| / |A∪B|;
              `ngram_metric="containment"`: |A∩B| / |A|, the share of the synthetic report's
              n-grams found in the real one)
  text_emb    cosine similarity of text embeddings (default TF-IDF of word 1-2 grams; any
              TEXT_EMBEDDERS entry, e.g. a transformers sentence encoder, when named)
and for every synthetic image its nearest real image by
  image       cosine similarity of image features (the QC feature registry: builtin | rad-dino).
All three are 1.0 for an exact copy. To read them, the same nearest-neighbour scores are measured
within the real corpus (a sample of real rows against the other real rows): synthetic data no
closer to the real corpus than real studies are to each other shows no sign of copying.

Writes privacy.json (the summary returned), closest.csv (one row per synthetic sample),
hist_<measure>.png, privacy.md / privacy.html (distributions and the closest pairs) and, with
`drop_above`, dropped.csv and optionally a filtered copy of the dataset (audit/filtered.py).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from syncxr.audit.corpus import AuditSet, feature_extractor, image_features, open_set
from syncxr.audit.neighbours import cosine_block, nearest, overlap_block
from syncxr.audit.text import ngram_sets, text_embedder
from syncxr.errors import UserError
from syncxr.fsio import ensure_dir

log = logging.getLogger(__name__)

MEASURES = ("text_ngram", "text_emb", "image")
THRESHOLDS = (0.5, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)
QUANTILES = (0.0, 0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99, 1.0)
EXACT = 1.0 - 1e-6  # float rounding of a cosine of identical rows


@dataclass
class Match:
    """Nearest real row per synthetic row (-1 / NaN where not measured) and the real-to-real baseline."""

    real: np.ndarray
    score: np.ndarray
    baseline: np.ndarray


def run_privacy_audit(synthetic_dir: str | Path, real_dir: str | Path, real_kind: str = "mimic",
                      out_dir: str | Path = "privacy-audit", **options: Any) -> dict:
    """Audit `synthetic_dir` (a syncxr dataset) against the real corpus; returns privacy.json.

    options: section (findings | impression | both), real_options (dict for the corpus reader:
    mimic views/split/reports, csv image_col/text_col/label_col), ngram (3), ngram_metric
    (jaccard | containment), text_embedder (tfidf), text_model, features (builtin | rad-dino),
    feature_model, device, measures (subset of MEASURES), chunk (2048), baseline (real rows in
    the real-to-real reference, 500), top (closest pairs shown, 12), drop_above (a score),
    drop_measure (text_ngram), filtered (folder for the dataset without the dropped samples)."""
    opts = _options(options)
    out = ensure_dir(Path(out_dir))
    t0 = time.perf_counter()
    syn = open_set(synthetic_dir, "syncxr", opts["section"])
    real = open_set(real_dir, real_kind, opts["section"], **opts["real_options"])
    seconds = {"read": time.perf_counter() - t0}
    base = _baseline_rows(len(real), opts["baseline"])
    matches: dict[str, Match] = {}
    for m in opts["measures"]:
        t = time.perf_counter()
        matches[m] = _MEASURE_FNS[m](syn, real, base, opts)
        seconds[m] = time.perf_counter() - t
    summary = _summary(syn, real, matches, opts, seconds)
    _write_closest(out / "closest.csv", syn, real, matches)
    if opts["drop_above"] is not None:
        summary["filter"] = _apply_filter(syn, real, matches, opts, Path(synthetic_dir), out)
    from syncxr.audit.render import write_privacy_report

    write_privacy_report(out, summary, syn, real, matches, opts["top"])
    summary["seconds"]["total"] = round(time.perf_counter() - t0, 3)
    from syncxr.fsio import write_json_atomic

    write_json_atomic(out / "privacy.json", summary)
    return summary


def check_options(options: dict[str, Any]) -> dict[str, Any]:
    """The privacy audit's options with defaults filled in; a UserError names an unknown or bad one."""
    return _options(options)


def _options(options: dict[str, Any]) -> dict[str, Any]:
    defaults: dict[str, Any] = {
        "section": "both", "real_options": {}, "ngram": 3, "ngram_metric": "jaccard",
        "text_embedder": "tfidf", "text_model": None, "features": "builtin", "feature_model": None,
        "device": "cpu", "measures": MEASURES, "chunk": 2048, "baseline": 500, "top": 12,
        "drop_above": None, "drop_measure": "text_ngram", "filtered": None,
    }
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        raise UserError(f"privacy audit: unknown option(s) {unknown}; valid: {sorted(defaults)}")
    opts = {**defaults, **{k: v for k, v in options.items() if v is not None or k == "drop_above"}}
    opts["measures"] = tuple(opts["measures"])
    bad = [m for m in opts["measures"] if m not in MEASURES]
    if bad or not opts["measures"]:
        raise UserError(f"privacy audit: measures {list(opts['measures'])}; choose from {', '.join(MEASURES)}")
    if opts["ngram_metric"] not in ("jaccard", "containment"):
        raise UserError(f"--ngram-metric must be jaccard or containment; got {opts['ngram_metric']!r}")
    if opts["drop_above"] is not None:
        if opts["drop_measure"] not in opts["measures"]:
            raise UserError(f"--drop-measure {opts['drop_measure']!r} is not one of the measures computed "
                            f"({', '.join(opts['measures'])})")
        if not -1.0 <= float(opts["drop_above"]) <= 1.0:
            raise UserError(f"--drop-above is a similarity in [-1, 1]; got {opts['drop_above']}")
    elif opts["filtered"] is not None:
        raise UserError("--filtered needs --drop-above (the score at or above which a sample is a near copy)")
    if int(opts["chunk"]) < 1 or int(opts["baseline"]) < 0 or int(opts["top"]) < 0:
        raise UserError("chunk must be >= 1, baseline and top >= 0")
    return opts


def _baseline_rows(m: int, k: int) -> np.ndarray:
    """A fixed random sample of real rows for the real-to-real reference."""
    if m < 2 or k == 0:
        return np.zeros(0, dtype=np.int64)
    return np.sort(np.random.default_rng(0).choice(m, size=min(k, m), replace=False))


def _text_ngram(syn: AuditSet, real: AuditSet, base: np.ndarray, opts: dict) -> Match:
    a, b = ngram_sets(syn.texts, real.texts, int(opts["ngram"]))
    idx, score = nearest(overlap_block(a, b, opts["ngram_metric"]), a.shape[0], b.shape[0], opts["chunk"])
    _, ref = nearest(overlap_block(b[base], b, opts["ngram_metric"]), len(base), b.shape[0], opts["chunk"], skip=base)
    return Match(idx, score, ref)


def _text_emb(syn: AuditSet, real: AuditSet, base: np.ndarray, opts: dict) -> Match:
    emb = text_embedder(opts["text_embedder"], opts["text_model"], opts["device"])
    emb.fit(syn.texts + real.texts)
    a, b = emb.embed(syn.texts), emb.embed(real.texts)
    idx, score = nearest(cosine_block(a, b), a.shape[0], b.shape[0], opts["chunk"])
    _, ref = nearest(cosine_block(b[base], b), len(base), b.shape[0], opts["chunk"], skip=base)
    return Match(idx, score, ref)


def _image(syn: AuditSet, real: AuditSet, base: np.ndarray, opts: dict) -> Match:
    ext = feature_extractor(opts["features"], opts["feature_model"], opts["device"])
    fs, rs = image_features(syn, ext)
    fr, rr = image_features(real, ext)
    j, s = nearest(cosine_block(fs, fr), len(fs), len(fr), opts["chunk"])
    idx = np.full(len(syn), -1, dtype=np.int64)
    score = np.full(len(syn), np.nan)
    idx[rs], score[rs] = rr[j], s
    pos = np.flatnonzero(np.isin(rr, base))  # baseline rows whose image was readable
    _, ref = nearest(cosine_block(fr[pos], fr), len(pos), len(fr), opts["chunk"], skip=pos)
    return Match(idx, score, ref)


_MEASURE_FNS = {"text_ngram": _text_ngram, "text_emb": _text_emb, "image": _image}


def describe_measure(m: str, opts: dict) -> str:
    if m == "text_ngram":
        what = "Jaccard |A∩B|/|A∪B|" if opts["ngram_metric"] == "jaccard" else "containment |A∩B|/|A| (A synthetic)"
        return f"word {opts['ngram']}-gram {what} of the lower-cased report"
    if m == "text_emb":
        return f"cosine similarity of {opts['text_embedder']} text embeddings" + (
            f" ({opts['text_model']})" if opts["text_model"] else "")
    return f"cosine similarity of {opts['features']} image features" + (
        f" ({opts['feature_model']})" if opts["feature_model"] else "")


def score_stats(scores: np.ndarray, thresholds: tuple[float, ...] = THRESHOLDS) -> dict[str, Any]:
    """n, mean, quantiles and counts at or above each threshold of the finite scores."""
    s = scores[np.isfinite(scores)]
    if len(s) == 0:
        return {"n": 0}
    q = np.quantile(s, QUANTILES)
    return {
        "n": len(s), "mean": round(float(s.mean()), 4),
        "quantiles": {f"q{int(round(p * 100)):02d}": round(float(v), 4) for p, v in zip(QUANTILES, q)},
        "at_or_above": {f"{t:g}": int((s >= min(t, EXACT)).sum()) for t in thresholds},
    }


def _summary(syn: AuditSet, real: AuditSet, matches: dict[str, Match], opts: dict, seconds: dict) -> dict:
    return {
        "synthetic": {"path": syn.where, "samples": len(syn), "skipped": syn.skipped},
        "real": {"path": real.where, "kind": real.kind, "samples": len(real), "skipped": real.skipped},
        "section": opts["section"],
        "measures": {
            m: {
                "what": describe_measure(m, opts),
                "synthetic_to_real": score_stats(match.score),
                "real_to_real": score_stats(match.baseline),
                "exact_copies": int((match.score >= EXACT).sum()),
            }
            for m, match in matches.items()
        },
        "thresholds": list(THRESHOLDS),
        "reading": ("synthetic_to_real: each synthetic sample's best match in the real corpus; real_to_real: "
                    "the same for a sample of real rows against the other real rows (the reference: "
                    "how close independent real studies come to each other). Scores at or above a "
                    "threshold are counted; 1.0 counts exact copies."),
        "seconds": {k: round(v, 3) for k, v in seconds.items()},
    }


def _write_closest(path: Path, syn: AuditSet, real: AuditSet, matches: dict[str, Match]) -> None:
    from syncxr.data.shards import write_csv_atomic

    header = ["synthetic_id"]
    for m in matches:
        header += [f"{m}_real_id", m]
    rows = []
    for i, sid in enumerate(syn.ids):
        row: list = [sid]
        for match in matches.values():
            j, s = int(match.real[i]), float(match.score[i])
            row += [real.ids[j] if j >= 0 else "", f"{s:.6f}" if np.isfinite(s) else ""]
        rows.append(row)
    write_csv_atomic(path, header, rows)


def _apply_filter(syn: AuditSet, real: AuditSet, matches: dict[str, Match], opts: dict,
                  dataset: Path, out: Path) -> dict:
    """Drop the synthetic samples at or above the threshold on the chosen measure."""
    from syncxr.data.shards import write_csv_atomic

    m, thr = opts["drop_measure"], float(opts["drop_above"])
    match = matches[m]
    hits = np.flatnonzero(np.nan_to_num(match.score, nan=-np.inf) >= min(thr, EXACT))
    drop = {syn.ids[i]: ("near_copy", f"{m}={match.score[i]:.4f} >= {thr:g} to real {real.ids[match.real[i]]}")
            for i in hits}
    write_csv_atomic(out / "dropped.csv", ["synthetic_id", "measure", "score", "threshold", "real_id"],
                     [[syn.ids[i], m, f"{match.score[i]:.6f}", thr, real.ids[match.real[i]]] for i in hits])
    record: dict[str, Any] = {"measure": m, "threshold": thr, "rule": "score >= threshold",
                              "dropped": len(drop), "kept": len(syn) - len(drop), "list": "dropped.csv"}
    if opts["filtered"] is not None:
        from syncxr.audit.filtered import write_filtered

        write_filtered(dataset, Path(opts["filtered"]), drop, {"measure": m, "threshold": thr})
        record["filtered"] = str(opts["filtered"])
    return record


def nearest_pairs(match: Match, top: int) -> list[int]:
    """Synthetic rows with the highest scores, best first."""
    s = np.nan_to_num(match.score, nan=-np.inf)
    order = np.argsort(-s, kind="stable")
    return [int(i) for i in order[:top] if np.isfinite(s[i])]

