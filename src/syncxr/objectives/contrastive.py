"""The only math shared by objectives: InfoNCE, masked softmax pieces and a differentiable
all-gather so a contrastive loss sees the global batch under DDP."""

from __future__ import annotations

import inspect
from typing import Any, Mapping, Optional

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from syncxr.models.base import EncoderOutput


class _AllGatherWithGrad(torch.autograd.Function):
    """Concatenate x from every rank along dim 0, keeping the gradient path to the local part.

    Every rank computes the same global loss L from the gathered tensor, so the gradient of the
    local slice is the SUM over ranks of dL/dslice; DDP then averages parameter gradients over
    ranks, which recovers exactly the gradient of one process over the global batch.
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        world = dist.get_world_size()
        parts = [torch.empty_like(x) for _ in range(world)]
        dist.all_gather(parts, x.contiguous())
        ctx.rank, ctx.n = dist.get_rank(), x.shape[0]
        return torch.cat(parts, dim=0)  # (world * B, ...)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad[ctx.rank * ctx.n : (ctx.rank + 1) * ctx.n]


def all_gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """(B, ...) per rank -> (world*B, ...), differentiable; identity when not distributed."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x
    return _AllGatherWithGrad.apply(x)


def info_nce(logits: torch.Tensor) -> torch.Tensor:
    """Cross-entropy with the diagonal as the positive: logits (N, N) rows = queries."""
    target = torch.arange(logits.shape[0], device=logits.device)
    return F.cross_entropy(logits, target)


def bidirectional_info_nce(
    img: torch.Tensor, txt: torch.Tensor, temperature: float, weight_i2t: float = 0.5
) -> tuple[torch.Tensor, dict[str, float]]:
    """img, txt: (N, D) un-normalised. Returns (w*L_i2t + (1-w)*L_t2i, logs)."""
    img, txt = F.normalize(img, dim=-1), F.normalize(txt, dim=-1)
    logits = img @ txt.t() / temperature  # (N, N): image i vs text j
    l_i2t, l_t2i = info_nce(logits), info_nce(logits.t())
    loss = weight_i2t * l_i2t + (1.0 - weight_i2t) * l_t2i
    with torch.no_grad():
        target = torch.arange(logits.shape[0], device=logits.device)
        acc = (logits.argmax(dim=1) == target).float().mean().item()
    return loss, {"loss_i2t": l_i2t.item(), "loss_t2i": l_t2i.item(), "acc_i2t": acc}


class Objective(nn.Module):
    """Base: forward(img_out, txt_out) -> (loss, logs). `gather_global` is switched on by the
    trainer under DDP so global (instance-level) terms see the whole batch."""

    log_keys: tuple[str, ...] = ()
    uses_local: bool = True  # False: the trainer freezes the encoders' local projections

    def __init__(self) -> None:
        super().__init__()
        self.gather_global = False

    def gather(self, x: torch.Tensor) -> torch.Tensor:
        return all_gather_with_grad(x) if self.gather_global else x

    def forward(self, img: EncoderOutput, txt: EncoderOutput) -> tuple[torch.Tensor, dict[str, float]]:
        raise NotImplementedError

    def before_optimizer_step(self, step: int, epoch: int) -> None:
        """Called by the training loop after backward (gradients already all-reduced under DDP) and
        before clipping and the optimizer step of optimizer step `step` (0-based) in `epoch`.
        An objective may set gradients to None here to keep parameters out of that step."""

    @classmethod
    def word_attention_sharpness(cls, params: Mapping[str, Any]) -> Optional[float]:
        """The factor on the word-to-region similarities inside this objective's attention softmax,
        given its config `params` (GLoRIA tau1, MGCA 1 / local_temperature), or None when it trains
        no such attention. Grounding evaluation attends as sharply as training did."""
        return None


def param_or_default(cls: type, params: Mapping[str, Any], name: str) -> Any:
    """`params[name]`, else the default of that parameter in `cls`'s constructor."""
    return params[name] if name in params else inspect.signature(cls).parameters[name].default


def masked_mean(x: torch.Tensor, mask: torch.Tensor | None, dim: int) -> torch.Tensor:
    """Mean of x over `dim` counting only mask==True entries (mask broadcastable to x)."""
    if mask is None:
        return x.mean(dim=dim)
    m = mask.to(x.dtype)
    return (x * m).sum(dim=dim) / m.sum(dim=dim).clamp_min(1.0)
