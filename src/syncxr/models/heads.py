"""Projection heads from backbone features to the joint embedding space, as each method has them.

- "linear": one linear layer (GLoRIA's embedders; a 1x1 conv is a linear map per patch/word).
- "mlp": linear -> ReLU -> linear (ConVIRT's two-layer projections g_v and g_u).
- "mlp_bn": linear -> BatchNorm -> ReLU -> linear -> BatchNorm without affine (MGCA's global and
  local embedding heads; per patch/word for tokens).
Every head maps (..., C) to (..., D): global vectors (B, C) and tokens (B, L, C) alike.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

HeadKind = Literal["linear", "mlp", "mlp_bn"]


class TokenBatchNorm(nn.Module):
    """BatchNorm1d over the last dimension of (..., C): statistics over every leading position."""

    def __init__(self, dim: int, affine: bool = True) -> None:
        super().__init__()
        self.bn = nn.BatchNorm1d(dim, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        return self.bn(x.reshape(-1, shape[-1])).reshape(shape)  # (N, C) through BN, back to (..., C)


def make_head(kind: str, in_dim: int, out_dim: int, hidden: int = 2048) -> nn.Module:
    """A projection head (see the module docstring)."""
    if kind == "linear":
        return nn.Linear(in_dim, out_dim)
    if kind == "mlp":
        return nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, out_dim))
    if kind == "mlp_bn":
        return nn.Sequential(
            nn.Linear(in_dim, hidden), TokenBatchNorm(hidden), nn.ReLU(inplace=True),
            nn.Linear(hidden, out_dim), TokenBatchNorm(out_dim, affine=False),
        )
    raise ValueError(f"projection head {kind!r}: expected linear, mlp or mlp_bn")


def head_in_features(head: nn.Module) -> int:
    """Input width of a head built by make_head (or a plain nn.Linear)."""
    first = head if isinstance(head, nn.Linear) else next(m for m in head.modules() if isinstance(m, nn.Linear))
    return first.in_features
