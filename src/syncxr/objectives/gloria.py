"""GLoRIA (Huang et al. 2021): global contrast + word-region attention local contrast.

Local score of (text t, image i): each word attends over image regions, its attention-weighted
region context is compared with the word (cosine), and the word scores are aggregated with a
log-sum-exp of sharpness tau2; the (t, i) scores are scaled by tau3 and go through InfoNCE in both
directions. Paper values: tau1=4, tau2=5, tau3=10. Two variants (`variant`):

- "released" (default; the authors' code): attention = softmax over regions of tau1 x (softmax over
  the text's words of the region.word dot products) -- a double softmax on raw dot products; the
  context is the attended raw regions; score = log sum_words exp(tau2 cos); the two directions'
  losses are summed, for the global term too.
- "paper": attention = softmax over regions of tau1 x cosine; score = log sum exp(tau2 cos) / tau2;
  the two directions' losses are averaged.
Under DDP the global term sees the global batch; the local term uses the local batch.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
import torch.nn.functional as F

from syncxr.models.base import EncoderOutput
from syncxr.objectives.contrastive import Objective, info_nce, param_or_default


def word_region_scores(
    words: torch.Tensor, word_mask: torch.Tensor, regions: torch.Tensor, tau1: float, tau2: float,
    variant: str = "paper",
) -> tuple[torch.Tensor, torch.Tensor]:
    """words (T, L, D), word_mask (T, L) bool, regions (I, R, D) -> (scores (T, I), attn (T, I, L, R)).

    Uses |c|^2 = a^T G a with the region Gram matrix G, so the (T, I, L, D) context tensor is
    never materialised: memory is O(T*I*L*R) instead of O(T*I*L*D). See the module docstring for
    the two variants.
    """
    if variant == "paper":
        w, r = F.normalize(words, dim=-1), F.normalize(regions, dim=-1)
        sim = torch.einsum("tld,ird->tilr", w, r)  # (T, I, L, R) cosine word-region
        attn = torch.softmax(tau1 * sim, dim=-1)  # over regions
    elif variant == "released":
        w, r = F.normalize(words, dim=-1), regions  # the context is built from the raw regions
        dots = torch.einsum("tld,ird->tilr", words, regions)  # (T, I, L, R) raw dot products
        over_words = torch.softmax(dots.masked_fill(~word_mask[:, None, :, None], float("-inf")), dim=2)
        attn = torch.softmax(tau1 * over_words, dim=-1)  # then over regions
        sim = torch.einsum("tld,ird->tilr", w, r)  # (T, I, L, R) unit word . raw region
    else:
        raise ValueError(f"gloria variant {variant!r}: expected released or paper")
    gram = torch.einsum("ird,isd->irs", r, r)  # (I, R, R)
    dot = (attn * sim).sum(-1)  # (T, I, L) = w . c
    c_norm2 = torch.einsum("tilr,irs,tils->til", attn, gram, attn)
    word_cos = dot / c_norm2.clamp_min(1e-8).sqrt()  # (T, I, L) cos(w, c)
    # log-sum-exp over valid words only (GLoRIA's aggregation); the paper variant divides by tau2.
    masked = (tau2 * word_cos).masked_fill(~word_mask[:, None, :], float("-inf"))
    scores = torch.logsumexp(masked, dim=-1)  # (T, I)
    return (scores / tau2 if variant == "paper" else scores), attn


class GLoRIA(Objective):
    log_keys = ("loss_global", "loss_local", "acc_i2t")

    def __init__(
        self, tau1: float = 4.0, tau2: float = 5.0, tau3: float = 10.0,
        local_weight: float = 1.0, global_weight: float = 1.0, variant: str = "released",
    ) -> None:
        super().__init__()
        if variant not in ("released", "paper"):
            raise ValueError(f"gloria variant {variant!r}: expected released or paper")
        self.tau1, self.tau2, self.tau3 = tau1, tau2, tau3
        self.local_weight, self.global_weight = local_weight, global_weight
        self.variant = variant
        # released: L(i->t) + L(t->i); paper: their mean.
        self.direction_weight = 1.0 if variant == "released" else 0.5

    @classmethod
    def word_attention_sharpness(cls, params: Mapping[str, Any]) -> float:
        return float(param_or_default(cls, params, "tau1"))

    def forward(self, img: EncoderOutput, txt: EncoderOutput) -> tuple[torch.Tensor, dict[str, float]]:
        if img.local is None or txt.local is None:
            raise ValueError("gloria needs local features from both encoders")
        zi = F.normalize(self.gather(img.global_emb), dim=-1)
        zt = F.normalize(self.gather(txt.global_emb), dim=-1)
        g_logits = self.tau3 * zi @ zt.t()  # (N, N) image x text
        loss_g = self.direction_weight * (info_nce(g_logits) + info_nce(g_logits.t()))

        mask = txt.mask if txt.mask is not None else torch.ones(txt.local.shape[:2], dtype=torch.bool,
                                                                 device=txt.local.device)
        # A text with no word tokens (empty after specials) falls back to all attended tokens.
        mask = torch.where(mask.any(dim=1, keepdim=True), mask, torch.ones_like(mask))
        scores, _ = word_region_scores(txt.local, mask, img.local, self.tau1, self.tau2, self.variant)  # (T, I)
        l_logits = self.tau3 * scores
        loss_l = self.direction_weight * (info_nce(l_logits) + info_nce(l_logits.t()))
        loss = self.global_weight * loss_g + self.local_weight * loss_l
        with torch.no_grad():
            acc = (g_logits.argmax(1) == torch.arange(len(g_logits), device=g_logits.device)).float().mean()
        return loss, {"loss_global": loss_g.item(), "loss_local": loss_l.item(), "acc_i2t": acc.item()}
