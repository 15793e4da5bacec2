"""The fidelity metrics on cases with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from syncxr.audit.metrics import classifier_auc, frechet_distance, knn_radii, prdc
from syncxr.audit.neighbours import cosine_block, nearest, overlap_block
from syncxr.errors import UserError


def test_frechet_distance_is_zero_for_identical_sets_and_analytic_for_shifted_gaussians():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4000, 3))
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-8)
    shift = np.array([3.0, 0.0, -1.0])
    # Same covariance, shifted mean: FD = ||shift||^2 exactly (the sample covariances are equal).
    assert frechet_distance(x, x + shift) == pytest.approx(10.0, rel=1e-9)
    # Different scales: N(0, I) vs N(mu, 4I) -> ||mu||^2 + d (1 + 4 - 2*2) = ||mu||^2 + 3.
    y = rng.normal(size=(20000, 3)) * 2.0 + shift
    z = rng.normal(size=(20000, 3))
    assert frechet_distance(z, y) == pytest.approx(10.0 + 3.0, rel=0.03)


def test_prdc_identical_sets_are_perfect_and_disjoint_sets_score_zero():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 4))
    same = prdc(x, x, k=5)
    assert same["precision"] == 1.0 and same["recall"] == 1.0 and same["coverage"] == 1.0
    assert same["density"] >= 1.0  # each point sits in its own ball and in k others' at least
    far = prdc(x, x + 100.0, k=5)
    assert far == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}


def test_prdc_same_distribution_is_near_one_and_a_narrow_fake_loses_recall_not_precision():
    rng = np.random.default_rng(2)
    real, fake = rng.normal(size=(1000, 2)), rng.normal(size=(1000, 2))
    m = prdc(real, fake, k=5, chunk=128)  # several blocks
    assert m["precision"] > 0.9 and m["recall"] > 0.9 and 0.8 < m["density"] < 1.2 and m["coverage"] > 0.9
    collapsed = prdc(real, rng.normal(size=(1000, 2)) * 0.2, k=5)
    assert collapsed["precision"] > 0.95 and collapsed["recall"] < 0.4 and collapsed["coverage"] < 0.4


def test_knn_radii_match_a_brute_force_computation():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(50, 3))
    d = np.linalg.norm(x[:, None] - x[None], axis=2)
    want = np.sort(d, axis=1)[:, 3]  # column 0 is the point itself
    assert np.allclose(knn_radii(x, 3, chunk=7), want)
    with pytest.raises(UserError, match="more than k"):
        knn_radii(x[:3], 3)


def test_classifier_auc_is_chance_for_one_distribution_and_one_for_separated_ones():
    rng = np.random.default_rng(4)
    same = classifier_auc(rng.normal(size=(200, 5)), rng.normal(size=(200, 5)))
    assert abs(same["auc"] - 0.5) < 0.1 and same["folds"] == 5 and len(same["fold_aucs"]) == 5
    apart = classifier_auc(rng.normal(size=(200, 5)), rng.normal(size=(200, 5)) + 3.0)
    assert apart["auc"] > 0.99


def test_nearest_by_blocks_equals_the_full_argmax_and_can_skip_self():
    rng = np.random.default_rng(5)
    a = rng.normal(size=(37, 8))
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    b = np.concatenate([rng.normal(size=(20, 8)), a[:5]])
    b /= np.linalg.norm(b, axis=1, keepdims=True)
    idx, score = nearest(cosine_block(a, b), len(a), len(b), chunk=6)
    full = a @ b.T
    assert (idx == full.argmax(1)).all() and np.allclose(score, full.max(1))
    assert (idx[:5] == np.arange(20, 25)).all() and np.allclose(score[:5], 1.0)
    own, s2 = nearest(cosine_block(a, a), len(a), len(a), chunk=6, skip=np.arange(len(a)))
    assert (own != np.arange(len(a))).all() and (s2 < 1 - 1e-9).all()


def test_overlap_jaccard_and_containment():
    import scipy.sparse as sp

    a = sp.csr_matrix(np.array([[1, 1, 1, 0], [0, 0, 0, 0]], dtype=np.float32))
    b = sp.csr_matrix(np.array([[1, 1, 0, 1], [1, 1, 1, 1]], dtype=np.float32))
    jac = overlap_block(a, b)(slice(0, 2), slice(0, 2))
    con = overlap_block(a, b, "containment")(slice(0, 2), slice(0, 2))
    assert np.allclose(jac, [[2 / 4, 3 / 4], [0, 0]]) and np.allclose(con, [[2 / 3, 1.0], [0, 0]])


def test_trace_sqrt_product_equals_scipy_sqrtm_also_for_singular_covariances():
    import scipy.linalg

    from syncxr.audit.metrics import trace_sqrt_product

    rng = np.random.default_rng(6)
    for n in (200, 8):  # full rank, then rank 7 in 12 dimensions
        a, b = np.cov(rng.normal(size=(n, 12)), rowvar=False), np.cov(rng.normal(size=(n, 12)) * 2, rowvar=False)
        want = np.trace(scipy.linalg.sqrtm(a @ b)).real
        assert trace_sqrt_product(a, b) == pytest.approx(want, rel=1e-6)
