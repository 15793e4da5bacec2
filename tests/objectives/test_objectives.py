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


def test_objective_params_are_checked_against_the_signature():
    from syncxr.errors import UserError

    with pytest.raises(UserError, match=r"objective 'convirt': unknown option\(s\) \['temprature'\]; accepted options: "
                                        r"temperature, lambda_i2t"):
        build_objective("convirt", D, temprature=0.2)
    with pytest.raises(UserError, match=r"objective 'gloria': option 'tau1': .*number.*got 'warm'"):
        build_objective("gloria", D, tau1="warm")
    assert build_objective("convirt", D, temperature="0.2").temperature == 0.2  # YAML strings of numbers


def test_a_plugin_objective_is_one_factory_and_one_registration():
    from syncxr.objectives.contrastive import Objective

    class Scaled(Objective):
        def __init__(self, embed_dim: int, scale: float = 1.0) -> None:
            super().__init__()
            self.proj = torch.nn.Linear(embed_dim, embed_dim)
            self.scale = scale

        def forward(self, img, txt):
            loss = self.scale * (self.proj(img.global_emb) - txt.global_emb).pow(2).mean()
            return loss, {"loss": float(loss)}

    OBJECTIVES.register("scaled")(Scaled)
    try:
        obj = build_objective("scaled", D, scale=2.0)
        assert "scaled" in OBJECTIVES.names() and obj.proj.in_features == D and obj.scale == 2.0
    finally:
        OBJECTIVES.unregister("scaled")
    assert "scaled" not in OBJECTIVES.names()


# -- MGCA ------------------------------------------------------------------------------------

from syncxr.objectives.mgca import MGCA, token_weights, weighted_token_nce  # noqa: E402


def test_token_weights_sum_to_one_over_valid_tokens_and_clip_outliers():
    mask = torch.tensor([[1, 1, 1, 1, 1, 0], [1, 1, 0, 0, 0, 0], [1, 1, 1, 0, 0, 0]], dtype=torch.bool)
    attn = torch.tensor([[0.01, 0.02, 0.03, 0.04, 0.90, 0.5], [0.3, 0.7, 0.0, 0.0, 0.0, 0.0], [0.0] * 6])
    w = token_weights(attn, mask)
    assert torch.allclose(w.sum(1), torch.ones(3)) and (w[~mask] == 0).all()
    # row 0: the 0.90 outlier is clipped to the 90th percentile of the valid values (0.556)
    lo, hi = torch.quantile(attn[0, :5], 0.1), torch.quantile(attn[0, :5], 0.9)
    want = attn[0, :5].clamp(lo, hi)
    assert torch.allclose(w[0, :5], want / want.sum())
    assert (w[0, 4] / w[0, 3]).item() == pytest.approx((hi / 0.04).item(), rel=1e-5)
    assert torch.allclose(w[2, :3], torch.full((3,), 1 / 3))  # all-zero attention -> uniform
    assert torch.allclose(token_weights(None, mask)[1], torch.tensor([0.5, 0.5, 0, 0, 0, 0]))


def test_weighted_token_nce_matches_a_loop():
    g = torch.Generator().manual_seed(5)
    sim = torch.randn(2, 4, 4, generator=g)
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]], dtype=torch.bool)
    w = token_weights(torch.rand(2, 4, generator=g), mask)
    want = 0.0
    for b in range(2):
        idx = mask[b].nonzero().flatten()
        s = sim[b][idx][:, idx]
        for i in range(len(idx)):
            rows = -torch.log_softmax(s[i], 0)[i]
            cols = -torch.log_softmax(s[:, i], 0)[i]
            want += w[b, idx[i]] * 0.5 * (rows + cols) / 2
    assert torch.allclose(weighted_token_nce(sim, mask, w), torch.as_tensor(want), atol=1e-6)


def test_mgca_uses_the_encoders_attention_weights():
    obj = build_objective("mgca", D).eval()
    (img, txt), _ = _outputs(2)
    base = obj(img, txt)[0]
    peaked = torch.zeros(B, 7)
    peaked[:, 1] = 1.0  # all attention on one word
    txt.attn_weights = peaked
    assert not torch.allclose(obj(img, txt)[0], base)
    no_weights = build_objective("mgca", D, attention_weights=False)
    no_weights.load_state_dict(obj.state_dict())
    assert torch.allclose(no_weights.eval()(img, txt)[0], base)


def _mgca_step(obj, opt, seed, step, epoch=1):
    """One optimizer step the way the training loop does it: backward, hook, step."""
    (img, txt), leaves = _outputs(seed)
    loss, _ = obj(img, txt)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    obj.before_optimizer_step(step, epoch)
    grads = {n: (None if p.grad is None else p.grad.clone()) for n, p in obj.named_parameters()}
    opt.step()
    return grads, leaves


def test_mgca_prototypes_frozen_during_warmup_then_trained():
    torch.manual_seed(0)
    obj = MGCA(embed_dim=D, num_prototypes=10, freeze_prototypes_epochs=0, freeze_prototypes_steps=2,
               learned_attention=True)
    opt = torch.optim.AdamW(obj.parameters(), lr=0.05, weight_decay=0.05)
    proto = obj.prototypes.weight
    start = F.normalize(proto.detach(), dim=1).clone()
    for step in range(2):
        grads, _ = _mgca_step(obj, opt, seed=10 + step, step=step)
        assert grads["prototypes.weight"] is None  # out of the optimizer step entirely
        assert grads["word_attn.in_proj_weight"].abs().sum() > 0  # the rest trains
        assert torch.allclose(proto.detach(), start, rtol=0, atol=1e-7)  # only re-normalised, no decay step
    assert proto not in opt.state  # no AdamW step count, no moments
    grads, leaves = _mgca_step(obj, opt, seed=12, step=2)
    # AdamW's first prototype step is a fresh parameter's first step (bias correction of step 1).
    assert int(opt.state[proto]["step"]) == 1
    assert all(g is not None and g.abs().sum() > 0 and torch.isfinite(g).all() for g in grads.values()), \
        [n for n, g in grads.items() if g is None or g.abs().sum() == 0]
    assert all(t.grad is not None and t.grad.abs().sum() > 0 for t in leaves)
    assert not torch.allclose(F.normalize(proto.detach(), dim=1), start, atol=1e-4)


def test_mgca_freezes_the_first_epoch_by_default_like_the_released_code():
    obj = MGCA(embed_dim=D, num_prototypes=10)
    assert obj.prototypes_frozen(step=500, epoch=0) and not obj.prototypes_frozen(step=501, epoch=1)
    assert obj.lambdas == (1.0, 1.0, 1.0)
    steps = MGCA(embed_dim=D, num_prototypes=10, freeze_prototypes_epochs=0, freeze_prototypes_steps=3)
    assert [steps.prototypes_frozen(s, 0) for s in range(5)] == [True, True, True, False, False]


def test_mgca_parameter_free_attention_variant():
    obj = build_objective("mgca", D, learned_attention=False, num_prototypes=10)
    assert [n for n, _ in obj.named_parameters()] == ["prototypes.weight"]
    (img, txt), leaves = _outputs(3)
    loss, logs = obj(img, txt)
    loss.backward()
    assert torch.isfinite(loss) and all(t.grad.abs().sum() > 0 for t in leaves)
    assert logs["loss_ita"] == pytest.approx(2 * bidirectional_info_nce(img.global_emb, txt.global_emb, 0.07)[0].item(),
                                             rel=1e-5)


def test_gloria_released_scores_match_a_loop_over_the_reference_steps():
    # The released recipe, step by step: dot products, softmax over the text's words, x tau1, softmax
    # over regions, context from raw regions, cosine, log sum exp(tau2 cos) (no / tau2).
    g = torch.Generator().manual_seed(5)
    w, r = torch.randn(2, 4, D, generator=g), torch.randn(3, 5, D, generator=g)
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]], dtype=torch.bool)
    scores, _ = word_region_scores(w, mask, r, 4.0, 5.0, variant="released")
    for t in range(2):
        words = w[t][mask[t]]  # (L_t, D)
        for i in range(3):
            dots = r[i] @ words.t()  # (R, L_t)
            a = torch.softmax(4.0 * torch.softmax(dots, dim=1), dim=0)  # words, then regions
            c = a.t() @ r[i]  # (L_t, D)
            cos = F.cosine_similarity(words, c, dim=-1)
            assert torch.allclose(scores[t, i], torch.log(torch.exp(5.0 * cos).sum()), atol=1e-5)


def test_gloria_released_sums_the_two_directions():
    (img, txt), _ = _outputs(6)
    rel = build_objective("gloria", D)
    paper = build_objective("gloria", D, variant="paper")
    _, logs_r = rel(img, txt)
    _, logs_p = paper(img, txt)
    zi, zt = F.normalize(img.global_emb, dim=-1), F.normalize(txt.global_emb, dim=-1)
    logits = 10.0 * zi @ zt.t()
    both = (F.cross_entropy(logits, torch.arange(B)) + F.cross_entropy(logits.t(), torch.arange(B))).item()
    assert logs_r["loss_global"] == pytest.approx(both, rel=1e-5)
    assert logs_p["loss_global"] == pytest.approx(both / 2, rel=1e-5)
    with pytest.raises(ValueError, match="released or paper"):
        build_objective("gloria", D, variant="other")


def test_mgca_loads_objective_state_with_the_old_warmup_counter(tmp_path):
    from safetensors.torch import load_model, save_file

    old = {k: v.contiguous() for k, v in MGCA(embed_dim=D, num_prototypes=10).state_dict().items()}
    old["steps_seen"] = torch.tensor(7)  # written by versions that counted warm-up passes
    save_file(old, str(tmp_path / "objective.safetensors"))
    fresh = MGCA(embed_dim=D, num_prototypes=10)
    load_model(fresh, str(tmp_path / "objective.safetensors"), strict=True)
    assert torch.equal(fresh.prototypes.weight, old["prototypes.weight"])


def test_each_objective_states_its_word_attention_sharpness():
    """Grounding attends as sharply as training did; the objective, not the evaluator, knows how."""
    gloria, mgca, convirt = (OBJECTIVES.get(n) for n in ("gloria", "mgca", "convirt"))
    assert gloria.word_attention_sharpness({}) == 4.0 and gloria.word_attention_sharpness({"tau1": 6}) == 6.0
    assert mgca.word_attention_sharpness({}) == pytest.approx(10.0)
    assert mgca.word_attention_sharpness({"local_temperature": 0.25}) == 4.0
    assert convirt.word_attention_sharpness({"temperature": 0.1}) is None


def test_grounding_takes_the_sharpness_from_the_checkpoints_objective():
    from types import SimpleNamespace

    from syncxr.evaluate.grounding import DEFAULT_LOCAL_TEMPERATURE, GroundingOptions, local_temperature

    def pre(name, params):
        return SimpleNamespace(config={"objective": {"name": name, "params": params}})

    opts = GroundingOptions()
    assert local_temperature(pre("mgca", {"local_temperature": 0.05}), opts) == 20.0
    assert local_temperature(pre("gloria", {"tau1": 3.0}), opts) == 3.0
    assert local_temperature(pre("convirt", {}), opts) == DEFAULT_LOCAL_TEMPERATURE
    assert local_temperature(pre("not-registered", {}), opts) == DEFAULT_LOCAL_TEMPERATURE
