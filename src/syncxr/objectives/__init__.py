"""Pretraining objectives. Each is an nn.Module: forward(img_out, txt_out) -> (loss, logs).

Importing this package does not import torch: `OBJECTIVES` names the objectives lazily (see
`registry.py`); `Objective` itself lives in `contrastive.py`.
"""

from syncxr.objectives.registry import OBJECTIVES, build_objective, local_head_trained

__all__ = ["OBJECTIVES", "build_objective", "local_head_trained"]
