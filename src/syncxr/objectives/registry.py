"""The pretraining objectives by name: one line per objective, its module imported only when chosen.

Adding an objective is one module in `objectives/` with an `Objective` subclass (its keyword
parameters are the config's `objective.params`, checked against its signature) plus one line here.
`embed_dim` reaches the objectives that name it (those with projection layers of their own).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from syncxr.registry import Registry

if TYPE_CHECKING:
    from syncxr.objectives.contrastive import Objective

OBJECTIVES: "Registry[Objective]" = Registry(
    "objective",
    {
        "convirt": "syncxr.objectives.convirt:ConVIRT",
        "gloria": "syncxr.objectives.gloria:GLoRIA",
        "mgca": "syncxr.objectives.mgca:MGCA",
    },
    requires={"convirt": ("torch",), "gloria": ("torch",), "mgca": ("torch",)},
)


def build_objective(name: str, embed_dim: int, **params: Any) -> "Objective":
    """Build objective `name` with `params` (checked against its signature: an unknown or
    mistyped parameter is a UserError naming the accepted ones)."""
    return OBJECTIVES.create(name, params, context={"embed_dim": embed_dim})


def local_head_trained(state: dict) -> bool:
    """From a checkpoint's state.json: `trained_heads.local` (written since the field exists),
    else whether the config's objective has local terms (older checkpoints)."""
    heads = state.get("trained_heads")
    if isinstance(heads, dict) and "local" in heads:
        return bool(heads["local"])
    name = state.get("config", {}).get("objective", {}).get("name", "")
    return name in OBJECTIVES and bool(getattr(OBJECTIVES.get(name), "uses_local", True))
