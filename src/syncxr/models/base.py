"""Typed encoder output shared by every image and text encoder, objective and evaluator."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch


@dataclass
class EncoderOutput:
    """global_emb: (B, D) projected embedding (not normalised).
    local: (B, L, D) projected local features (image patches/regions or word tokens), or None.
    mask: (B, L) bool, True = valid token/patch, or None when all are valid.
    grid: (h, w) of the image patch grid when `local` holds image patches (L == h*w), else None.
    attn_weights: (B, L) detached [CLS]-to-token attention of the encoder's last layer, averaged
        over heads (MGCA's token importance), or None when the encoder does not expose it.
    """

    global_emb: torch.Tensor
    local: Optional[torch.Tensor] = None
    mask: Optional[torch.Tensor] = None
    grid: Optional[tuple[int, int]] = None
    attn_weights: Optional[torch.Tensor] = None
