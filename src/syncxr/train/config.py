"""Training config: YAML -> pydantic (extra="forbid"), dotted --set overrides, resolved dump.

Every validation problem becomes one UserError naming the file and the key path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from syncxr.data.sources import DataConfig
from syncxr.errors import UserError
from syncxr.fsio import load_yaml, parse_yaml
from syncxr.models.factory import ModelConfig
from syncxr.train.augment import AugmentConfig


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ObjectiveConfig(_Strict):
    name: str = "convirt"
    params: dict[str, Any] = Field(default_factory=dict)  # keyword args of the objective class


class OptimConfig(_Strict):
    lr: float = Field(1e-4, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_steps: Optional[int] = Field(None, ge=0)  # default: warmup_fraction of all steps
    warmup_fraction: float = Field(0.05, ge=0, lt=1)
    min_lr_ratio: float = Field(0.0, ge=0, le=1)  # cosine floor as a fraction of lr


class LoopConfig(_Strict):
    epochs: int = Field(10, ge=1)
    batch_size: int = Field(32, ge=2)  # GLOBAL batch (split over DDP ranks) per micro-step
    grad_accum: int = Field(1, ge=1)
    amp: Literal["auto", "bf16", "off"] = "auto"  # auto: bf16 on a GPU that supports it
    clip_grad: Optional[float] = Field(1.0, gt=0)
    num_workers: int = Field(0, ge=0)
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    log_every: int = Field(10, ge=1)
    ckpt_every: int = Field(0, ge=0)  # optimizer steps between checkpoints; 0 = end of epoch only
    keep_checkpoints: int = Field(2, ge=1)
    max_steps: Optional[int] = Field(None, ge=1)  # cap on optimizer steps (sets the schedule length)
    halt_after_steps: Optional[int] = Field(None, ge=1)  # stop early; schedule unchanged (time boxes)
    eval_each_epoch: bool = True  # validation loss + retrieval recall on the held-out split
    progress: bool = True

    @field_validator("amp", mode="before")
    @classmethod
    def _yaml_off(cls, v: Any) -> Any:
        return {False: "off", True: "bf16"}.get(v, v) if isinstance(v, bool) else v  # YAML reads off as false


class TrainConfig(_Strict):
    model: ModelConfig = ModelConfig()
    objective: ObjectiveConfig = ObjectiveConfig()
    data: DataConfig = DataConfig()
    optim: OptimConfig = OptimConfig()
    train: LoopConfig = LoopConfig()
    augment: AugmentConfig = AugmentConfig()

    @model_validator(mode="after")
    def _check(self) -> "TrainConfig":
        from syncxr.objectives.registry import OBJECTIVES

        # Names and parameter types now, from the objective's signature: a typo in
        # objective.params fails at load, not after the data and the model are built.
        try:
            OBJECTIVES.check(self.objective.name, self.objective.params, {"embed_dim": self.model.embed_dim})
        except UserError as e:
            raise ValueError(str(e)) from None
        return self


def set_dotted(raw: dict[str, Any], assignment: str) -> None:
    """Apply 'a.b.c=value' to a nested dict; the value is parsed as YAML (numbers, lists, null)."""
    key, sep, value = assignment.partition("=")
    if not sep or not key.strip():
        raise UserError(f"--set {assignment!r}: expected key.path=value, e.g. train.epochs=3")
    parts = key.strip().split(".")
    node = raw
    for p in parts[:-1]:
        nxt = node.setdefault(p, {})
        if not isinstance(nxt, dict):
            raise UserError(f"--set {assignment!r}: {p!r} is a value, not a section")
        node = nxt
    node[parts[-1]] = parse_yaml(value, f"--set {assignment!r}: value") if value.strip() else None


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> TrainConfig:
    """Read YAML (or start from defaults when path is None), apply overrides, validate."""
    raw: dict[str, Any] = {}
    where = str(path) if path else "<defaults>"
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise UserError(f"config {p} not found; see configs/train/*.yaml for presets")
        raw = load_yaml(p)
        if not isinstance(raw, dict):
            raise UserError(f"config {p}: expected a mapping at the top level")
    for assignment in overrides or []:
        set_dotted(raw, assignment)
    return validate_config(raw, where)


def validate_config(raw: dict[str, Any], where: str = "<config>") -> TrainConfig:
    try:
        return TrainConfig.model_validate(raw)
    except ValidationError as exc:
        lines = [
            f"  {'.'.join(str(x) for x in err['loc']) or '(top level)'}: {err['msg']}"
            + (f" (got {err['input']!r})" if err["type"] != "missing" and not isinstance(err["input"], dict) else "")
            for err in exc.errors()
        ]
        raise UserError(f"config {where}: invalid\n" + "\n".join(lines)) from None


def dump_config(cfg: TrainConfig) -> str:
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
