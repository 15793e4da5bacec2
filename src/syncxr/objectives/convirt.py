"""ConVIRT (Zhang et al. 2020): bidirectional InfoNCE on global embeddings.

L = lambda * L(image->text) + (1 - lambda) * L(text->image), temperature 0.1, lambda 0.75.
"""

from __future__ import annotations

import torch

from syncxr.models.base import EncoderOutput
from syncxr.objectives.contrastive import Objective, bidirectional_info_nce


class ConVIRT(Objective):
    log_keys = ("loss_i2t", "loss_t2i", "acc_i2t")
    uses_local = False

    def __init__(self, temperature: float = 0.1, lambda_i2t: float = 0.75) -> None:
        super().__init__()
        if not 0.0 <= lambda_i2t <= 1.0 or temperature <= 0:
            raise ValueError("convirt needs temperature > 0 and 0 <= lambda_i2t <= 1")
        self.temperature = temperature
        self.lambda_i2t = lambda_i2t

    def forward(self, img: EncoderOutput, txt: EncoderOutput) -> tuple[torch.Tensor, dict[str, float]]:
        zi, zt = self.gather(img.global_emb), self.gather(txt.global_emb)  # (N, D) global batch
        return bidirectional_info_nce(zi, zt, self.temperature, self.lambda_i2t)
