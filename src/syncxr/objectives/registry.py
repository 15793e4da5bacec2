"""Registry of pretraining objectives (name -> Objective factory taking keyword params)."""

from syncxr.objectives.contrastive import Objective
from syncxr.registry import Registry

OBJECTIVES: Registry[Objective] = Registry("objective")


def local_head_trained(state: dict) -> bool:
    """From a checkpoint's state.json: `trained_heads.local` (written since the field exists),
    else whether the config's objective has local terms (older checkpoints)."""
    heads = state.get("trained_heads")
    if isinstance(heads, dict) and "local" in heads:
        return bool(heads["local"])
    import syncxr.objectives  # noqa: F401  (registers every objective)

    name = state.get("config", {}).get("objective", {}).get("name", "")
    return name in OBJECTIVES and bool(getattr(OBJECTIVES.get(name), "uses_local", True))
