"""Generative fidelity of a synthetic dataset against a real corpus, on image features.

Overall and per finding (synthetic images grouped by the dataset's positive CheXpert-14 labels,
real ones by the corpus's labels where it has them): Fréchet distance, k-NN precision / recall,
density / coverage, and how well a classifier tells synthetic from real (audit/metrics.py);
and, as the reference to read them against, the same metrics between two random halves of the
real images (what two samples of one distribution reach at that size: the Fréchet distance has
no absolute scale and k-NN metrics depend on the sample sizes).
A finding with fewer than `min_per_finding` images on either side is skipped and listed with
the counts. The Fréchet distance of small groups is biased upwards (it grows as 1/n), so compare
groups of similar size only.

Writes fidelity.json (returned), fidelity.md (tables) and fidelity.png (a 2-D PCA of the
features and the per-finding precision / recall).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from syncxr.audit.corpus import AuditSet, feature_extractor, image_features, open_set
from syncxr.audit.metrics import classifier_auc, frechet_distance, prdc
from syncxr.errors import UserError
from syncxr.fsio import ensure_dir


def run_fidelity_audit(synthetic_dir: str | Path, real_dir: str | Path, real_kind: str = "mimic",
                       out_dir: str | Path = "fidelity-audit", **options: Any) -> dict:
    """Fidelity of `synthetic_dir` (a syncxr dataset) against the real corpus; returns fidelity.json.

    options: real_options (dict for the corpus reader), features (builtin | rad-dino),
    feature_model, device, k (5), min_per_finding (20), folds (5), max_images (per side; a fixed
    random subset when larger, None = all), chunk (2048), seed (0)."""
    opts = _options(options)
    out = ensure_dir(Path(out_dir))
    t0 = time.perf_counter()
    syn = open_set(synthetic_dir, "syncxr", "both")
    real = open_set(real_dir, real_kind, "both", **opts["real_options"])
    ext = feature_extractor(opts["features"], opts["feature_model"], opts["device"])
    fs, rs = _features(syn, ext, opts)
    fr, rr = _features(real, ext, opts)
    result: dict[str, Any] = {
        "synthetic": {"path": syn.where, "images": len(fs), "skipped": syn.skipped},
        "real": {"path": real.where, "kind": real.kind, "images": len(fr), "skipped": real.skipped,
                 "has_labels": real.has_labels},
        "features": getattr(ext, "backend_id", opts["features"]),
        "k": opts["k"],
        "overall": group_metrics(fr, fs, opts),
        "real_halves": _real_halves(fr, opts),
    }
    result["per_finding"], result["skipped_findings"] = _per_finding(syn, rs, fs, real, rr, fr, opts)
    result["reading"] = (
        "fd: Fréchet distance (0 = same mean and covariance; grows with the number of dimensions and "
        "as 1/n for small groups). precision: share of synthetic images inside the real manifold "
        "(realism); recall: share of real images inside the synthetic manifold (diversity); density ~1 "
        "and coverage ~1 when the two match. classifier auc: 0.5 = indistinguishable, 1.0 = always told apart; well below 0.5 when synthetic "
        "images duplicate real ones (a held-out image's twin is in training with the other label).")
    result["seconds"] = round(time.perf_counter() - t0, 3)
    from syncxr.audit.render import write_fidelity_report
    from syncxr.fsio import write_json_atomic

    write_fidelity_report(out, result, fr, fs)
    write_json_atomic(out / "fidelity.json", result)
    return result


def check_options(options: dict[str, Any]) -> dict[str, Any]:
    """The fidelity audit's options with defaults filled in; a UserError names an unknown or bad one."""
    return _options(options)


def _options(options: dict[str, Any]) -> dict[str, Any]:
    defaults: dict[str, Any] = {"real_options": {}, "features": "builtin", "feature_model": None, "device": "cpu",
                                "k": 5, "min_per_finding": 20, "folds": 5, "max_images": None, "chunk": 2048, "seed": 0}
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        raise UserError(f"fidelity audit: unknown option(s) {unknown}; valid: {sorted(defaults)}")
    opts = {**defaults, **{k: v for k, v in options.items() if v is not None}}
    if int(opts["k"]) < 1 or int(opts["folds"]) < 2:
        raise UserError(f"--k must be >= 1 and --folds >= 2; got k={opts['k']}, folds={opts['folds']}")
    opts["min_per_finding"] = max(int(opts["min_per_finding"]), int(opts["k"]) + 1)
    return opts


def _features(aset: AuditSet, ext, opts: dict) -> tuple[np.ndarray, np.ndarray]:
    """Features and row numbers of (a fixed random subset of) the readable images."""
    cap = opts["max_images"]
    if cap is not None and len(aset) > cap:
        keep = np.sort(np.random.default_rng(opts["seed"]).choice(len(aset), size=int(cap), replace=False))
        sub = AuditSet(aset.where, aset.kind, [aset.ids[i] for i in keep], [aset.texts[i] for i in keep],
                       [aset.labels[i] for i in keep], lambda j: aset.load_image(int(keep[j])), aset.has_labels,
                       aset.skipped)
        f, r = image_features(sub, ext)
        return f, keep[r]
    return image_features(aset, ext)


def group_metrics(real: np.ndarray, fake: np.ndarray, opts: dict) -> dict[str, Any]:
    """Every metric for one group of real and synthetic features."""
    k = int(opts["k"])
    if min(len(real), len(fake)) <= k:
        raise UserError(f"fidelity needs more than k={k} images per side; got {len(real)} real, "
                        f"{len(fake)} synthetic (lower --k or give more images)")
    out: dict[str, Any] = {"n_real": len(real), "n_synthetic": len(fake),
                           "fd": round(frechet_distance(real, fake), 6)}
    out.update({m: round(v, 4) for m, v in prdc(real, fake, k, int(opts["chunk"])).items()})
    out["classifier"] = classifier_auc(real, fake, int(opts["folds"]), int(opts["seed"]))
    return out


def _real_halves(fr: np.ndarray, opts: dict) -> dict[str, Any] | None:
    """The metrics of one random half of the real images against the other: the values two
    samples of the same distribution reach at this size (the floor to read `overall` against)."""
    if len(fr) < 2 * (int(opts["k"]) + 1) + 1:
        return None
    order = np.random.default_rng(opts["seed"]).permutation(len(fr))
    half = len(fr) // 2
    return group_metrics(fr[order[:half]], fr[order[half:]], opts)


def _per_finding(syn: AuditSet, rs: np.ndarray, fs: np.ndarray, real: AuditSet, rr: np.ndarray,
                 fr: np.ndarray, opts: dict) -> tuple[dict, dict]:
    if not real.has_labels:
        return {}, {"(all)": f"the real corpus {real.where} has no finding labels"}
    syn_lab = [syn.labels[i] for i in rs]
    real_lab = [real.labels[i] for i in rr]
    findings = sorted(set().union(*syn_lab, *real_lab)) if syn_lab or real_lab else []
    done, skipped = {}, {}
    for f in findings:
        a = np.array([f in lab for lab in real_lab], bool)
        b = np.array([f in lab for lab in syn_lab], bool)
        if min(a.sum(), b.sum()) < opts["min_per_finding"]:
            skipped[f] = f"{int(a.sum())} real, {int(b.sum())} synthetic images (< {opts['min_per_finding']})"
            continue
        done[f] = group_metrics(fr[a], fs[b], opts)
    return done, skipped
