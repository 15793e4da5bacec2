"""Checkpoints: safetensors for tensors (model, objective, optimizer) + state.json for the rest.

Folder: <out>/checkpoints/step-XXXXXXXX/ (layout in syncxr.models.pretrained), written to a temp
folder and renamed; <out>/latest.json names the newest. Nothing is ever unpickled.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, load_model, save_file, save_model
from torch import nn

from syncxr.errors import UserError
from syncxr.fsio import ensure_dir, fs_error, write_text_atomic
from syncxr.models.pretrained import FORMAT, LATEST_FILE, MODEL_FILE, STATE_FILE, TEXT_DIR, read_state, resolve_checkpoint

log = logging.getLogger(__name__)

OPTIM_FILE = "optimizer.safetensors"
OBJECTIVE_FILE = "objective.safetensors"


def rng_state() -> dict[str, Any]:
    """Global torch RNG states (dropout draws from them) as JSON lists."""
    state: dict[str, Any] = {"torch": torch.get_rng_state().tolist()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = [s.tolist() for s in torch.cuda.get_rng_state_all()]
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(torch.tensor(state["torch"], dtype=torch.uint8))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([torch.tensor(s, dtype=torch.uint8) for s in state["cuda"]])


def rank_rng_state(state: dict[str, Any], rank: int, world: int, seed: int) -> dict[str, Any]:
    """This rank's RNG state from a checkpoint's state.json.

    Checkpoints hold one state per rank (`rng_per_rank`). Resuming with another number of ranks (or
    from an old checkpoint with rank 0's state only) cannot be exact: rank 0 takes the saved rank-0
    state and every other rank a fresh generator seeded from (seed, rank, step), so no two ranks
    share dropout masks.
    """
    per_rank = state.get("rng_per_rank")
    if per_rank and int(state.get("world_size", len(per_rank))) == world and rank < len(per_rank):
        return per_rank[rank]
    log.warning("checkpoint RNG states are for %s rank(s), this run has %d: dropout draws will not repeat "
                "the uninterrupted run exactly", len(per_rank) if per_rank else 1, world)
    if rank == 0:
        return state["rng"]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 1_000_003 * rank + int(state.get("step", 0)))
        return rng_state()


def optimizer_to_flat(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split the optimizer state into tensors ('<param id>.<key>') and JSON metadata."""
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for pid, st in sd["state"].items():
        for key, val in st.items():
            if torch.is_tensor(val):
                tensors[f"{pid}.{key}"] = val.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(pid), {})[key] = val
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def optimizer_from_flat(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    state: dict[int, dict[str, Any]] = {}
    for name, val in tensors.items():
        pid, _, key = name.partition(".")
        state.setdefault(int(pid), {})[key] = val
    for pid, extra in meta["scalars"].items():
        state.setdefault(int(pid), {}).update(extra)
    groups = [dict(g, betas=tuple(g["betas"])) if "betas" in g else g for g in meta["param_groups"]]
    opt.load_state_dict({"state": state, "param_groups": groups})


def save_checkpoint(
    out: Path, model: nn.Module, objective: nn.Module, optimizer: torch.optim.Optimizer,
    state: dict[str, Any], keep: int,
) -> Path:
    """Write checkpoints/step-N atomically, point latest.json at it, prune old ones."""
    root = ensure_dir(out / "checkpoints")
    name = f"step-{state['step']:08d}"
    final, tmp = root / name, root / f".tmp-{name}"
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        save_model(model, str(tmp / MODEL_FILE))
        if any(True for _ in objective.state_dict()):
            save_model(objective, str(tmp / OBJECTIVE_FILE))
        tensors, meta = optimizer_to_flat(optimizer)
        save_file(tensors, str(tmp / OPTIM_FILE))
        model.text.save(tmp / TEXT_DIR)
        (tmp / STATE_FILE).write_text(json.dumps({"format": FORMAT, **state, "optimizer": meta}, indent=1))
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
    except BaseException as e:  # no half-written checkpoint folder is left behind
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(e, OSError):
            raise fs_error(e, final) from None
        raise
    write_text_atomic(out / LATEST_FILE, json.dumps({"checkpoint": f"checkpoints/{name}", "step": state["step"]}))
    for old in sorted(p for p in root.glob("step-*") if p.is_dir())[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def find_resume(out: Path, resume: str) -> Path | None:
    """'latest' -> the run's newest checkpoint (None when there is none yet); else a path."""
    if resume == "latest":
        return resolve_checkpoint(out) if (out / LATEST_FILE).is_file() else None
    return resolve_checkpoint(resume)


def config_changes(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two plain-data configs, with both values."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for k in sorted(set(old) | set(new), key=str):
            out += config_changes(old.get(k), new.get(k), f"{prefix}.{k}" if prefix else str(k))
        return out
    return [] if old == new else [f"{prefix} ({old!r} in the checkpoint, {new!r} now)"]


# The config sections that decide the shapes of what a checkpoint holds.
SHAPE_SECTIONS = ("model", "objective")


def check_same_config(ckpt: Path, state: dict[str, Any], config: dict[str, Any]) -> None:
    """Refuse, in one line, a checkpoint whose model/objective config differs from this run's."""
    saved = state.get("config")
    if not isinstance(saved, dict):
        return
    changes = [c for s in SHAPE_SECTIONS for c in config_changes(saved.get(s), config.get(s), s)]
    if changes:
        more = f" and {len(changes) - 4} more" if len(changes) > 4 else ""
        raise UserError(
            f"cannot resume from {ckpt}: it was written with a different config: {'; '.join(changes[:4])}{more}. "
            "Resume with the checkpoint's config or start a new --out"
        )


def load_training_state(
    ckpt: Path, model: nn.Module, objective: nn.Module, optimizer: torch.optim.Optimizer,
    config: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Load weights and optimizer state in place; returns state.json (step, epoch, rng, ...).

    `config` (this run's config as plain data) is compared with the checkpoint's first, so a
    mismatch is named key by key instead of as a list of tensor-size errors."""
    state = read_state(ckpt)
    if config is not None:
        check_same_config(ckpt, state, config)
    if not isinstance(state.get("optimizer"), dict):
        raise UserError(f"cannot resume from {ckpt}: {STATE_FILE} has no optimizer state; it is not a training checkpoint")
    try:
        load_model(model, str(ckpt / MODEL_FILE), strict=True)
        if (ckpt / OBJECTIVE_FILE).is_file():
            load_model(objective, str(ckpt / OBJECTIVE_FILE), strict=True)
        optimizer_from_flat(optimizer, load_file(str(ckpt / OPTIM_FILE)), state["optimizer"])
    except (RuntimeError, ValueError, KeyError, TypeError, OSError, SafetensorError) as exc:
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise UserError(
            f"cannot resume from {ckpt}: {first}. The checkpoint files are damaged or do not belong to this "
            "model/objective config; resume from another checkpoint or start a new --out"
        ) from None
    return state
