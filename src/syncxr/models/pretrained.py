"""Load a trained syncxr dual encoder for evaluation: THE contract the evaluation suite uses.

    pre = load_pretrained("runs/quick")          # run folder, checkpoint folder or model.safetensors
    x = torch.stack([pre.preprocess(img) for img in images])        # (B, 1, S, S)
    img_out = pre.model.encode_image(x)                             # EncoderOutput
    txt_out = pre.model.encode_text(**pre.tokenize(["no acute findings"]))

Checkpoint folder layout (written by syncxr.train.checkpoint):
    model.safetensors   dual-encoder weights          state.json   config, preprocess, step, ...
    text/               text model config + tokenizer optimizer.safetensors, objective.safetensors
A run folder holds config.yaml, metrics.csv, checkpoints/step-XXXXXXXX/ and latest.json.
Loading never unpickles: weights are safetensors, everything else JSON.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from syncxr.errors import UserError
from syncxr.fsio import read_json_object

MODEL_FILE = "model.safetensors"
STATE_FILE = "state.json"
TEXT_DIR = "text"
LATEST_FILE = "latest.json"
FORMAT = "syncxr-checkpoint/1"


@dataclass
class Preprocess:
    """uint8 (H, W) image -> normalised (1, S, S) float tensor: shorter side to S, center crop."""

    image_size: int
    mean: float
    std: float

    def __call__(self, img: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(np.array(img, dtype=np.uint8, copy=True)).unsqueeze(0)  # (1, H, W) uint8; copy: inputs may be read-only
        return self.normalize(resize_center_crop(x, self.image_size))

    def normalize(self, x_uint8: torch.Tensor) -> torch.Tensor:
        return (x_uint8.float() / 255.0 - self.mean) / self.std

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Preprocess":
        return cls(image_size=int(d["image_size"]), mean=float(d["mean"]), std=float(d["std"]))


def resize_center_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    """(1, H, W) uint8 -> (1, size, size) uint8: shorter side to `size`, then center crop."""
    from torchvision.transforms.v2 import functional as F

    x = F.resize(x, [size], antialias=True)
    return F.center_crop(x, [size, size])


@dataclass
class Pretrained:
    model: nn.Module  # DualEncoder: encode_image(x), encode_text(input_ids, attention_mask)
    preprocess: Preprocess
    checkpoint_id: str  # sha256 of model.safetensors, first 16 hex digits
    config: dict[str, Any]  # the resolved training config
    has_local_features: bool  # the encoders return local tokens at all (every built-in one does)
    # Whether the training objective had a local (patch/word) term: False for ConVIRT, whose local
    # projections stay at their random initial weights and must not be used for anything.
    local_head_trained: bool = False

    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        """-> {"input_ids": (B, L) long, "attention_mask": (B, L) long}."""
        return self.model.tokenize(list(texts))


def resolve_checkpoint(path: str | Path) -> Path:
    """Run folder (via latest.json), checkpoint folder, or its model.safetensors -> checkpoint folder."""
    p = Path(path)
    if p.is_file() and p.name == MODEL_FILE:
        p = p.parent
    if (p / LATEST_FILE).is_file():
        latest = read_json_object(p / LATEST_FILE, "latest-checkpoint pointer")
        if not isinstance(latest.get("checkpoint"), str):
            raise UserError(f"{p / LATEST_FILE}: no 'checkpoint' path in it; point at a checkpoint folder instead")
        p = p / latest["checkpoint"]
    if not (p / MODEL_FILE).is_file() or not (p / STATE_FILE).is_file():
        raise UserError(
            f"{path} is not a syncxr checkpoint: expected {MODEL_FILE} and {STATE_FILE} in it "
            f"(or {LATEST_FILE} in a run folder)"
        )
    return p


def read_state(ckpt: Path) -> dict[str, Any]:
    state = read_json_object(ckpt / STATE_FILE, "syncxr checkpoint state")
    if state.get("format") != FORMAT:
        raise UserError(f"{ckpt / STATE_FILE}: format {state.get('format')!r}, expected {FORMAT!r}")
    return state


def file_sha16(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def load_pretrained(path: str | Path, device: str | torch.device = "cpu") -> Pretrained:
    """Rebuild the dual encoder of a syncxr checkpoint and load its weights (eval mode)."""
    from safetensors.torch import load_model

    from syncxr.models.factory import ModelConfig, build_model

    ckpt = resolve_checkpoint(path)
    state = read_state(ckpt)
    model_cfg = ModelConfig.model_validate(state["config"]["model"])
    model = build_model(model_cfg, saved_text=ckpt / TEXT_DIR)
    try:
        load_model(model, str(ckpt / MODEL_FILE), strict=True, device=str(device))
    except (RuntimeError, Exception) as exc:  # safetensors raises several types on mismatch
        raise UserError(f"{ckpt / MODEL_FILE} does not match its config: {exc}") from exc
    model.to(device).eval()
    return Pretrained(
        model=model,
        preprocess=Preprocess.from_dict(state["preprocess"]),
        checkpoint_id=file_sha16(ckpt / MODEL_FILE),
        config=state["config"],
        has_local_features=True,  # every built-in image/text encoder returns local tokens
        local_head_trained=local_head_trained(state),
    )


def local_head_trained(state: dict[str, Any]) -> bool:
    """From state.json: `trained_heads.local` (written since the field exists), else whether the
    config's objective has local terms (older checkpoints)."""
    heads = state.get("trained_heads")
    if isinstance(heads, dict) and "local" in heads:
        return bool(heads["local"])
    # Checkpoints older than `trained_heads`: the objectives of that time, by name. A fixed table,
    # not the OBJECTIVES registry: importing objectives here made models -> objectives -> models a
    # cycle (tests/test_architecture.py), and new objectives always write trained_heads.
    name = state.get("config", {}).get("objective", {}).get("name", "")
    return name in _LEGACY_LOCAL_OBJECTIVES


_LEGACY_LOCAL_OBJECTIVES = frozenset({"gloria", "mgca"})  # convirt has no local term
