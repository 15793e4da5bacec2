"""MGCA (Wang et al., NeurIPS 2022): multi-granularity cross-modal alignment.

- instance level (ITA): InfoNCE of global embeddings, image->text plus text->image (summed, as
  the released code does), temperature 0.07;
- token level (CTA): each word attends over the patches of its own image (by default the released
  code's parameter-free softmax of cosine / 0.1; `learned_attention=True` gives the paper's
  cross-attention with learned query/key/value/output projections, one head) and must
  match its own attended vector among all words of the report, in both directions, temperature
  0.1. Word losses are weighted by the text encoder's last-layer [CLS] attention averaged over
  heads (`EncoderOutput.attn_weights`), clipped to its 10th-90th percentile and renormalised over
  the valid words; symmetrically each patch attends over the words, weighted by the image
  encoder's [CLS] attention (ViT) or uniformly (CNNs, as in the released code). L_cta is the sum
  of the word and patch terms;
- prototype level (CPA): 500 learnable unit prototypes; Sinkhorn-Knopp codes (epsilon 0.05,
  3 iterations) of one modality are the targets for the prototype softmax (temperature 0.2) of
  the other. The prototypes are frozen for the first `freeze_prototypes_epochs` epochs (released
  default 1) and the first `freeze_prototypes_steps` optimizer steps: as in the released code their
  gradients are set to None after backward (and after the DDP all-reduce) and before the optimizer
  step, so AdamW leaves their state alone (no step count, no moments, no weight decay) and the bias
  correction after the warm-up is the one of a fresh parameter.
L = lambda_1 L_ita + lambda_2 L_cta + lambda_3 L_cpa; the released training script's defaults are
1 / 1 / 1 (its module's constructor says 1 / 0.7 / 0.5, which the script overrides).
Under DDP the instance term sees the global batch; token and prototype terms the local batch.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

import torch
import torch.nn.functional as F
from torch import nn

from syncxr.models.base import EncoderOutput
from syncxr.objectives.contrastive import Objective, bidirectional_info_nce, param_or_default


@torch.no_grad()
def sinkhorn(scores: torch.Tensor, epsilon: float = 0.05, iters: int = 3) -> torch.Tensor:
    """scores (B, K) -> soft codes (B, K), rows sum to 1, clusters equally used (SwAV)."""
    q = torch.exp((scores - scores.max()) / epsilon).t()  # (K, B); max-shift for stability
    q /= q.sum()
    k, b = q.shape
    for _ in range(iters):
        q /= q.sum(dim=1, keepdim=True) * k
        q /= q.sum(dim=0, keepdim=True) * b
    return (q * b).t()


@torch.no_grad()
def token_weights(
    attn: Optional[torch.Tensor], mask: torch.Tensor, clip: tuple[float, float] = (0.1, 0.9)
) -> torch.Tensor:
    """Per-token loss weights (B, L): zero outside `mask`, each row sums to 1.

    attn (B, L) [CLS]-to-token attention (or None -> uniform over the valid tokens). Valid values
    are clipped to their per-row `clip` quantiles so a few dominant tokens cannot take all the
    weight (MGCA does the same); a row whose clipped weights sum to 0 falls back to uniform.
    """
    valid = mask.float()
    if attn is None:
        w = valid
    else:
        a = attn.detach().float().masked_fill(~mask, float("nan"))
        lo = torch.nanquantile(a, clip[0], dim=1, keepdim=True)  # (B, 1); NaN for an all-invalid row
        hi = torch.nanquantile(a, clip[1], dim=1, keepdim=True)
        w = torch.minimum(torch.maximum(a, lo), hi).nan_to_num(0.0).clamp_min(0.0) * valid
        w = torch.where(w.sum(1, keepdim=True) > 0, w, valid)
    return w / w.sum(1, keepdim=True).clamp_min(1e-12)


def weighted_token_nce(sim: torch.Tensor, mask: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """sim (B, L, L): sim[b, i, j] = token i . attended output j (already / temperature).

    Token i's positive is its own attended output j == i, in both directions (rows: token vs all
    outputs; columns: output vs all tokens); invalid tokens are masked out of both and carry no
    weight. Returns the mean over the batch of the weight-averaged per-token NLL, averaged over
    the two directions.
    """
    b, n, _ = sim.shape
    target = torch.arange(n, device=sim.device).expand(b, n).flatten()
    losses = []
    for s in (sim, sim.transpose(1, 2)):
        s = s.masked_fill(~mask[:, None, :], float("-inf"))
        s = s.masked_fill(~mask[:, :, None], 0.0)  # invalid rows: finite, weighted 0 below
        nll = F.cross_entropy(s.flatten(0, 1), target, reduction="none").view(b, n)
        losses.append((nll * weights).sum(1).mean())
    return 0.5 * (losses[0] + losses[1])


class MGCA(Objective):
    log_keys = ("loss_ita", "loss_cta", "loss_cpa", "acc_i2t")

    def __init__(
        self, embed_dim: int = 128, temperature: float = 0.07, local_temperature: float = 0.1,
        num_prototypes: int = 500, proto_temperature: float = 0.2, epsilon: float = 0.05,
        sinkhorn_iters: int = 3, lambda_ita: float = 1.0, lambda_cta: float = 1.0, lambda_cpa: float = 1.0,
        learned_attention: bool = False, num_heads: int = 1, attention_weights: bool = True,
        freeze_prototypes_epochs: int = 1, freeze_prototypes_steps: int = 0,
    ) -> None:
        """learned_attention=False (default) is the released code's default parameter-free attention
        (softmax of cosine / local_temperature); True adds the paper's learned one-head cross-attention
        layers. attention_weights=False weights tokens uniformly.
        The prototypes are frozen while epoch < freeze_prototypes_epochs or optimizer step <
        freeze_prototypes_steps (see `before_optimizer_step`)."""
        super().__init__()
        if min(temperature, local_temperature, proto_temperature, epsilon) <= 0:
            raise ValueError("mgca needs positive temperatures and epsilon")
        if freeze_prototypes_steps < 0 or freeze_prototypes_epochs < 0:
            raise ValueError("mgca needs freeze_prototypes_epochs >= 0 and freeze_prototypes_steps >= 0")
        self.temperature, self.local_temperature = temperature, local_temperature
        self.proto_temperature, self.epsilon, self.sinkhorn_iters = proto_temperature, epsilon, sinkhorn_iters
        self.lambdas = (lambda_ita, lambda_cta, lambda_cpa)
        self.attention_weights = attention_weights
        self.freeze_prototypes_epochs, self.freeze_prototypes_steps = freeze_prototypes_epochs, freeze_prototypes_steps
        self.prototypes = nn.Linear(embed_dim, num_prototypes, bias=False)
        self.word_attn: Optional[nn.MultiheadAttention] = None
        self.patch_attn: Optional[nn.MultiheadAttention] = None
        if learned_attention:
            self.word_attn = nn.MultiheadAttention(embed_dim, num_heads, batch_first=True)  # words -> patches
            self.patch_attn = nn.MultiheadAttention(embed_dim, num_heads, batch_first=True)  # patches -> words

    @classmethod
    def word_attention_sharpness(cls, params: Mapping[str, Any]) -> float:
        return 1.0 / float(param_or_default(cls, params, "local_temperature"))

    def forward(self, img: EncoderOutput, txt: EncoderOutput) -> tuple[torch.Tensor, dict[str, float]]:
        if img.local is None or txt.local is None:
            raise ValueError("mgca needs local features from both encoders")
        loss_ita, logs = bidirectional_info_nce(
            self.gather(img.global_emb), self.gather(txt.global_emb), self.temperature, 0.5
        )
        loss_ita = 2.0 * loss_ita  # L(i->t) + L(t->i), as in the released code
        loss_cta = self._cta(img, txt)
        loss_cpa = self._cpa(img.global_emb, txt.global_emb)
        a, b, c = self.lambdas
        loss = a * loss_ita + b * loss_cta + c * loss_cpa
        return loss, {"loss_ita": loss_ita.item(), "loss_cta": loss_cta.item(),
                      "loss_cpa": loss_cpa.item(), "acc_i2t": logs["acc_i2t"]}

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args, **kwargs) -> None:  # type: ignore[override]
        # Older checkpoints counted warm-up forward passes in a buffer; the warm-up now follows the
        # loop's step and epoch, which a resumed run restores.
        state_dict.pop(prefix + "steps_seen", None)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def prototypes_frozen(self, step: int, epoch: int) -> bool:
        """Whether the optimizer step `step` (0-based) in `epoch` is part of the prototype warm-up."""
        return epoch < self.freeze_prototypes_epochs or step < self.freeze_prototypes_steps

    def before_optimizer_step(self, step: int, epoch: int) -> None:
        """Loop hook, after backward (and DDP's gradient all-reduce), before clipping and the
        optimizer step: during the warm-up the prototypes' gradients become None, so the optimizer
        skips them entirely. DDP still saw a gradient for them during backward."""
        if self.prototypes_frozen(step, epoch):
            for p in self.prototypes.parameters():
                p.grad = None

    # -- token level --------------------------------------------------------------------------
    def _cta(self, img: EncoderOutput, txt: EncoderOutput) -> torch.Tensor:
        b, r = img.local.shape[:2]
        patch_mask = img.mask if img.mask is not None else torch.ones(b, r, dtype=torch.bool, device=img.local.device)
        word_mask = txt.mask if txt.mask is not None else torch.ones(txt.local.shape[:2], dtype=torch.bool,
                                                                     device=txt.local.device)
        # A text with no word tokens (empty after specials) falls back to all its tokens.
        word_mask = torch.where(word_mask.any(1, keepdim=True), word_mask, torch.ones_like(word_mask))
        words, patches = F.normalize(txt.local, dim=-1), F.normalize(img.local, dim=-1)  # (B, L, D), (B, R, D)
        word_w = token_weights(txt.attn_weights if self.attention_weights else None, word_mask)
        patch_w = token_weights(img.attn_weights if self.attention_weights else None, patch_mask)
        loss_word = self._align(words, word_mask, word_w, patches, patch_mask, self.word_attn)
        loss_patch = self._align(patches, patch_mask, patch_w, words, word_mask, self.patch_attn)
        return loss_word + loss_patch

    def _align(
        self, queries: torch.Tensor, q_mask: torch.Tensor, q_weights: torch.Tensor,
        keys: torch.Tensor, k_mask: torch.Tensor, layer: Optional[nn.MultiheadAttention],
    ) -> torch.Tensor:
        """queries (B, Q, D) attend over their own pair's keys (B, K, D); each query must pick its
        own attended vector among all the pair's queries (weighted_token_nce)."""
        if layer is not None:
            pad = None if bool(k_mask.all()) else ~k_mask  # True = ignore
            ctx, _ = layer(queries, keys, keys, key_padding_mask=pad, need_weights=False)
        else:
            att = torch.einsum("bqd,bkd->bqk", queries, keys) / self.local_temperature
            att = torch.softmax(att.masked_fill(~k_mask[:, None, :], float("-inf")), dim=-1)
            ctx = torch.einsum("bqk,bkd->bqd", att, keys)
        ctx = F.normalize(ctx, dim=-1)  # (B, Q, D)
        sim = torch.einsum("bqd,bpd->bqp", queries, ctx) / self.local_temperature  # query q vs output p
        return weighted_token_nce(sim, q_mask, q_weights)

    # -- prototype level ----------------------------------------------------------------------
    def _cpa(self, zi: torch.Tensor, zt: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():  # keep prototypes on the unit sphere (SwAV)
            self.prototypes.weight.copy_(F.normalize(self.prototypes.weight, dim=1))
        protos = self.prototypes.weight  # (K, D)
        si = F.normalize(zi, dim=-1) @ protos.t()  # (B, K)
        st = F.normalize(zt, dim=-1) @ protos.t()
        qi = sinkhorn(si.detach().float(), self.epsilon, self.sinkhorn_iters)
        qt = sinkhorn(st.detach().float(), self.epsilon, self.sinkhorn_iters)
        li = -(qt * F.log_softmax(si / self.proto_temperature, dim=1)).sum(1).mean()
        lt = -(qi * F.log_softmax(st / self.proto_temperature, dim=1)).sum(1).mean()
        return 0.5 * (li + lt)
