"""Contract tests over the objective registry plus value checks of the shared math."""

import math

import pytest
import torch
import torch.nn.functional as F

from syncxr.models.base import EncoderOutput
from syncxr.objectives import OBJECTIVES, build_objective
from syncxr.objectives.contrastive import all_gather_with_grad, bidirectional_info_nce
from syncxr.objectives.gloria import word_region_scores
from syncxr.objectives.mgca import sinkhorn

D, B = 16, 6


def _outputs(seed: int, aligned: bool = False):
    g = torch.Generator().manual_seed(seed)
    img_g = torch.randn(B, D, generator=g, requires_grad=True)
    txt_g = (img_g.detach().clone() if aligned else torch.randn(B, D, generator=g)).requires_grad_(True)
    img_l = torch.randn(B, 9, D, generator=g, requires_grad=True)
    txt_l = torch.randn(B, 7, D, generator=g, requires_grad=True)
    mask = torch.ones(B, 7, dtype=torch.bool)
    mask[:, 5:] = False
    mask[0] = False  # a text with no word tokens must not give NaN
    return (EncoderOutput(img_g, img_l, None, (3, 3)), EncoderOutput(txt_g, txt_l, mask)), (img_g, txt_g, img_l, txt_l)


@pytest.mark.parametrize("name", OBJECTIVES.names())
def test_objective_contract(name):
    obj = build_objective(name, D)
    (img, txt), leaves = _outputs(0)
    loss, logs = obj(img, txt)
    assert loss.ndim == 0 and torch.isfinite(loss) and all(math.isfinite(v) for v in logs.values())
    assert set(obj.log_keys) <= set(logs)
    loss.backward()
    used = leaves if obj.uses_local else leaves[:2]
    assert all(t.grad is not None and torch.isfinite(t.grad).all() and t.grad.abs().sum() > 0 for t in used)
    assert all(p.grad is not None for p in obj.parameters() if p.requires_grad)


@pytest.mark.parametrize("name", ["convirt", "gloria"])
def test_aligned_pairs_have_lower_loss(name):
    obj = build_objective(name, D)
    (img_a, txt_a), _ = _outputs(1, aligned=True)
    txt_a.local = img_a.local[:, :7].detach().clone()  # words equal to some regions
    (img_r, txt_r), _ = _outputs(1, aligned=False)
    assert obj(img_a, txt_a)[0] < obj(img_r, txt_r)[0]


def test_convirt_value_matches_formula():
    g = torch.Generator().manual_seed(3)
    zi, zt = torch.randn(5, D, generator=g), torch.randn(5, D, generator=g)
    logits = F.normalize(zi, dim=1) @ F.normalize(zt, dim=1).t() / 0.1
    target = torch.arange(5)
    want = 0.75 * F.cross_entropy(logits, target) + 0.25 * F.cross_entropy(logits.t(), target)
    got = build_objective("convirt", D)(EncoderOutput(zi), EncoderOutput(zt))[0]
    assert torch.allclose(got, want) and torch.allclose(bidirectional_info_nce(zi, zt, 0.1, 0.75)[0], want)


def test_gloria_scores_match_naive_context():
    g = torch.Generator().manual_seed(4)
    w, r = torch.randn(2, 4, D, generator=g), torch.randn(3, 5, D, generator=g)
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]], dtype=torch.bool)
    scores, attn = word_region_scores(w, mask, r, 4.0, 5.0)
    wn, rn = F.normalize(w, dim=-1), F.normalize(r, dim=-1)
    for t in range(2):
        for i in range(3):
            a = torch.softmax(4.0 * wn[t] @ rn[i].t(), dim=-1)  # (L, R)
            c = a @ rn[i]
            cos = F.cosine_similarity(c, wn[t], dim=-1)[mask[t]]
            assert torch.allclose(scores[t, i], torch.logsumexp(5.0 * cos, 0) / 5.0, atol=1e-5)


def test_sinkhorn_marginals():
    q = sinkhorn(torch.randn(8, 4), epsilon=0.5, iters=50)
    assert torch.allclose(q.sum(1), torch.ones(8), atol=1e-4)
    assert torch.allclose(q.sum(0), torch.full((4,), 2.0), atol=1e-3)  # equal cluster use


def test_all_gather_is_identity_without_process_group():
    x = torch.randn(3, 2)
    assert all_gather_with_grad(x) is x


def test_unknown_objective_lists_names():
    with pytest.raises(KeyError, match="convirt"):
        build_objective("clip", D)
