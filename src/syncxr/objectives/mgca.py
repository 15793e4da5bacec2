"""MGCA (Wang et al. 2022): multi-granularity cross-modal alignment.

- instance level (ITA): bidirectional InfoNCE of global embeddings (temperature 0.1);
- token level (CTA): each word attends over the image patches of its own pair; the word must
  pick out its own attended vector among all words of that report (and symmetrically each patch
  among the patches via attention over words), InfoNCE with temperature 0.1. The paper weights
  words by [CLS] attention; here valid tokens are weighted uniformly;
- prototype level (CPA): learnable prototypes; Sinkhorn-Knopp soft cluster codes of one modality
  are the targets for the prototype softmax of the other (swapped prediction, temperature 0.2).
Under DDP the instance term sees the global batch; token and prototype terms the local batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from syncxr.models.base import EncoderOutput
from syncxr.objectives.contrastive import Objective, bidirectional_info_nce
from syncxr.objectives.registry import OBJECTIVES


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


def token_alignment(
    queries: torch.Tensor, q_mask: torch.Tensor, keys: torch.Tensor, k_mask: torch.Tensor, temperature: float
) -> torch.Tensor:
    """Within-pair cross-attention alignment loss.

    queries (B, Q, D), keys (B, K, D), masks bool. Each query attends over its pair's keys; the
    attended vector of query q must be closest to q among all valid queries of that pair.
    """
    qn, kn = F.normalize(queries, dim=-1), F.normalize(keys, dim=-1)
    att = torch.einsum("bqd,bkd->bqk", qn, kn) / temperature
    att = torch.softmax(att.masked_fill(~k_mask[:, None, :], float("-inf")), dim=-1)
    ctx = F.normalize(torch.einsum("bqk,bkd->bqd", att, kn), dim=-1)  # (B, Q, D)
    logits = torch.einsum("bqd,bpd->bqp", ctx, qn) / temperature  # attended q vs every query p
    logits = logits.masked_fill(~q_mask[:, None, :], float("-inf"))
    logits = logits.masked_fill(~q_mask[:, :, None], 0.0)  # padding rows: finite, weighted 0 below
    target = torch.arange(logits.shape[1], device=logits.device).expand(logits.shape[0], -1)
    nll = F.cross_entropy(logits.flatten(0, 1), target.flatten(), reduction="none")  # (B*Q,)
    valid = q_mask.flatten().to(nll.dtype)
    return (nll * valid).sum() / valid.sum().clamp_min(1.0)


@OBJECTIVES.register("mgca")
class MGCA(Objective):
    log_keys = ("loss_ita", "loss_cta", "loss_cpa", "acc_i2t")

    def __init__(
        self, embed_dim: int = 128, temperature: float = 0.1, local_temperature: float = 0.1,
        num_prototypes: int = 500, proto_temperature: float = 0.2, epsilon: float = 0.05,
        sinkhorn_iters: int = 3, lambda_ita: float = 1.0, lambda_cta: float = 1.0, lambda_cpa: float = 1.0,
    ) -> None:
        super().__init__()
        self.temperature, self.local_temperature = temperature, local_temperature
        self.proto_temperature, self.epsilon, self.sinkhorn_iters = proto_temperature, epsilon, sinkhorn_iters
        self.lambdas = (lambda_ita, lambda_cta, lambda_cpa)
        self.prototypes = nn.Linear(embed_dim, num_prototypes, bias=False)

    def forward(self, img: EncoderOutput, txt: EncoderOutput) -> tuple[torch.Tensor, dict[str, float]]:
        if img.local is None or txt.local is None:
            raise ValueError("mgca needs local features from both encoders")
        loss_ita, logs = bidirectional_info_nce(
            self.gather(img.global_emb), self.gather(txt.global_emb), self.temperature, 0.5
        )
        loss_cta = self._cta(img, txt)
        loss_cpa = self._cpa(img.global_emb, txt.global_emb)
        a, b, c = self.lambdas
        loss = a * loss_ita + b * loss_cta + c * loss_cpa
        return loss, {"loss_ita": loss_ita.item(), "loss_cta": loss_cta.item(),
                      "loss_cpa": loss_cpa.item(), "acc_i2t": logs["acc_i2t"]}

    def _cta(self, img: EncoderOutput, txt: EncoderOutput) -> torch.Tensor:
        b, r = img.local.shape[:2]
        patch_mask = img.mask if img.mask is not None else torch.ones(b, r, dtype=torch.bool, device=img.local.device)
        word_mask = txt.mask if txt.mask is not None else torch.ones(txt.local.shape[:2], dtype=torch.bool,
                                                                     device=txt.local.device)
        word_mask = torch.where(word_mask.any(1, keepdim=True), word_mask, torch.ones_like(word_mask))
        t2i = token_alignment(txt.local, word_mask, img.local, patch_mask, self.local_temperature)
        i2t = token_alignment(img.local, patch_mask, txt.local, word_mask, self.local_temperature)
        return 0.5 * (t2i + i2t)

    def _cpa(self, zi: torch.Tensor, zt: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():  # keep prototypes on the unit sphere (SwAV)
            self.prototypes.weight.copy_(F.normalize(self.prototypes.weight, dim=1))
        si = self.prototypes(F.normalize(zi, dim=-1))  # (B, K)
        st = self.prototypes(F.normalize(zt, dim=-1))
        qi = sinkhorn(si.detach().float(), self.epsilon, self.sinkhorn_iters)
        qt = sinkhorn(st.detach().float(), self.epsilon, self.sinkhorn_iters)
        li = -(qt * F.log_softmax(si / self.proto_temperature, dim=1)).sum(1).mean()
        lt = -(qi * F.log_softmax(st / self.proto_temperature, dim=1)).sum(1).mean()
        return 0.5 * (li + lt)
