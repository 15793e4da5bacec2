"""Distribution metrics between real and synthetic image features.

- Fréchet distance (the FID formula on any features): ||mu_r - mu_s||^2 + Tr(S_r + S_s - 2 (S_r S_s)^1/2).
  The trace of the matrix square root is taken by eigendecomposition (trace_sqrt_product).
- k-NN precision / recall (Kynkäänniemi et al., NeurIPS 2019): the real (synthetic) manifold is the
  union of balls around each real (synthetic) feature reaching its k-th nearest neighbour in its own
  set; precision = share of synthetic samples inside the real manifold, recall = share of real
  samples inside the synthetic manifold.
- density / coverage (Naeem et al., ICML 2020): density = mean number of real balls a synthetic
  sample falls in, divided by k (about 1 when the two match, above 1 when synthetic samples crowd
  dense real regions); coverage = share of real balls holding at least one synthetic sample.
- A synthetic-vs-real classifier: logistic regression on standardised features, stratified k-fold
  cross-validation, ROC AUC per fold and out of fold (0.5: indistinguishable, 1.0: always told apart).

Distances are Euclidean, computed in blocks (`chunk` rows at a time), never the full matrix.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.linalg

from syncxr.errors import UserError


def frechet_distance(real: np.ndarray, fake: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to the two feature sets (rows = samples)."""
    if len(real) < 2 or len(fake) < 2:
        raise UserError(f"Fréchet distance needs >= 2 samples per side; got {len(real)} real, {len(fake)} synthetic")
    real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    mu_r, mu_f = real.mean(0), fake.mean(0)
    s_r, s_f = np.atleast_2d(np.cov(real, rowvar=False)), np.atleast_2d(np.cov(fake, rowvar=False))
    fd = float(((mu_r - mu_f) ** 2).sum() + np.trace(s_r) + np.trace(s_f) - 2.0 * trace_sqrt_product(s_r, s_f))
    return max(fd, 0.0)  # rounding can leave -1e-12 for identical sets


def trace_sqrt_product(a: np.ndarray, b: np.ndarray) -> float:
    """Tr((A B)^1/2) of two covariance matrices, as Tr((A^1/2 B A^1/2)^1/2): the same number
    (A B and A^1/2 B A^1/2 are similar), from two symmetric eigendecompositions, exact also when
    A or B is singular (fewer samples than dimensions) and much faster than scipy.linalg.sqrtm(A @ B)."""
    w, v = scipy.linalg.eigh(a)
    root_a = (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T
    m = root_a @ b @ root_a
    return float(np.sqrt(np.clip(scipy.linalg.eigvalsh((m + m.T) / 2.0), 0.0, None)).sum())


def _sq_norms(x: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", x, x)


def _dist_block(a: np.ndarray, b: np.ndarray, na: np.ndarray, nb: np.ndarray) -> np.ndarray:
    d2 = na[:, None] + nb[None, :] - 2.0 * (a @ b.T)
    return np.sqrt(np.maximum(d2, 0.0))


def knn_radii(x: np.ndarray, k: int, chunk: int = 2048) -> np.ndarray:
    """Distance of each row to its k-th nearest other row of x."""
    if len(x) <= k:
        raise UserError(f"k-NN radii need more than k={k} samples; got {len(x)}")
    x = np.asarray(x, np.float64)
    nx = _sq_norms(x)
    out = np.empty(len(x))
    for r0 in range(0, len(x), chunk):
        rows = slice(r0, min(len(x), r0 + chunk))
        keep = None  # the k+1 smallest distances so far (the row itself is one of them, at 0)
        for c0 in range(0, len(x), chunk):
            cols = slice(c0, min(len(x), c0 + chunk))
            d = _dist_block(x[rows], x[cols], nx[rows], nx[cols])
            d = d if keep is None else np.concatenate([keep, d], axis=1)
            keep = np.partition(d, k, axis=1)[:, : k + 1] if d.shape[1] > k + 1 else d
        out[rows] = np.sort(keep, axis=1)[:, k]
    return out


def prdc(real: np.ndarray, fake: np.ndarray, k: int = 5, chunk: int = 2048) -> dict[str, float]:
    """k-NN precision, recall, density and coverage of `fake` against `real`."""
    if k < 1:
        raise UserError(f"k must be >= 1; got {k}")
    real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    r_real, r_fake = knn_radii(real, k, chunk), knn_radii(fake, k, chunk)
    nr, nf = _sq_norms(real), _sq_norms(fake)
    in_real_balls = np.zeros(len(fake))  # how many real balls hold each synthetic sample
    covered = np.zeros(len(real), bool)  # real ball holds a synthetic sample
    in_fake = np.zeros(len(real), bool)  # real sample inside a synthetic ball
    for r0 in range(0, len(real), chunk):
        rows = slice(r0, min(len(real), r0 + chunk))
        for c0 in range(0, len(fake), chunk):
            cols = slice(c0, min(len(fake), c0 + chunk))
            d = _dist_block(real[rows], fake[cols], nr[rows], nf[cols])
            inside = d <= r_real[rows, None]
            in_real_balls[cols] += inside.sum(axis=0)
            covered[rows] |= inside.any(axis=1)
            in_fake[rows] |= (d <= r_fake[None, cols]).any(axis=1)
    return {
        "precision": float((in_real_balls > 0).mean()),
        "recall": float(in_fake.mean()),
        "density": float(in_real_balls.sum() / (k * len(fake))),
        "coverage": float(covered.mean()),
    }


def classifier_auc(real: np.ndarray, fake: np.ndarray, folds: int = 5, seed: int = 0) -> dict[str, Any]:
    """How well logistic regression tells synthetic (1) from real (0), by stratified k-fold CV."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    folds = min(folds, len(real), len(fake))
    if folds < 2:
        raise UserError(f"the classifier needs >= 2 samples per side; got {len(real)} real, {len(fake)} synthetic")
    x = np.concatenate([real, fake]).astype(np.float64)
    y = np.r_[np.zeros(len(real)), np.ones(len(fake))]
    oof = np.zeros(len(y))
    aucs = []
    for train, test in StratifiedKFold(folds, shuffle=True, random_state=seed).split(x, y):
        clf = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000, class_weight="balanced"))
        clf.fit(x[train], y[train])
        oof[test] = clf.predict_proba(x[test])[:, 1]
        aucs.append(float(roc_auc_score(y[test], oof[test])))
    a = np.asarray(aucs)
    return {
        "auc": round(float(roc_auc_score(y, oof)), 4),  # out of fold, all samples
        "fold_mean": round(float(a.mean()), 4), "fold_std": round(float(a.std(ddof=1)), 4),
        "fold_aucs": [round(v, 4) for v in aucs], "folds": folds,
        "n_real": len(real), "n_synthetic": len(fake),
        "model": "standardise + logistic regression (C=0.1, balanced class weights)",
    }
