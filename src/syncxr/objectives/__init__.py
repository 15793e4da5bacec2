"""Pretraining objectives. Each is an nn.Module: forward(img_out, txt_out) -> (loss, logs)."""

from syncxr.objectives import convirt, gloria, mgca  # noqa: F401  (register)
from syncxr.objectives.contrastive import Objective
from syncxr.objectives.registry import OBJECTIVES


def build_objective(name: str, embed_dim: int, **params: object) -> Objective:
    """Build a registered objective; `embed_dim` is passed to objectives that own parameters."""
    import inspect

    factory = OBJECTIVES.get(name)
    if "embed_dim" in inspect.signature(factory).parameters:
        params = {"embed_dim": embed_dim, **params}
    return factory(**params)


__all__ = ["OBJECTIVES", "Objective", "build_objective"]

