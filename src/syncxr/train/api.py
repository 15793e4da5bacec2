"""`train(...)`: the library function behind `syncxr train` (also under torchrun)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Optional

import torch

from syncxr.data.sources import DataConfig, open_data, parse_data_spec
from syncxr.errors import UserError
from syncxr.fsio import ensure_dir, write_text_atomic
from syncxr.train import distributed as D
from syncxr.models.pretrained import read_state
from syncxr.train.checkpoint import check_same_config, find_resume
from syncxr.train.config import TrainConfig, dump_config, load_config
from syncxr.train.loop import Trainer, TrainResult

log = logging.getLogger(__name__)


def resolve_data(cfg: TrainConfig, data: Optional[str]) -> TrainConfig:
    """--data (a dataset folder, mimic:<dir>, csv:<file>) replaces the config's data.sources."""
    if not data:
        return cfg
    src = parse_data_spec(data, section=cfg.data.section)
    new_data = DataConfig.model_validate({**cfg.data.model_dump(), "sources": [src.model_dump()],
                                          "mix": "concat", "ratios": None})
    return cfg.model_copy(update={"data": new_data})


def run(cfg: TrainConfig, out: Path, resume: Optional[str] = None) -> TrainResult:
    """Train with a validated config (data already resolved). Returns the result of this process."""
    info = D.setup(cfg.train.device)
    try:
        if out.exists() and not out.is_dir():
            raise UserError(f"--out {out} is an existing file; give a folder for the run")
        ckpt = find_resume(out, resume) if resume else None
        if resume == "latest" and ckpt is None:
            log.warning("--resume latest: no checkpoint in %s yet; starting a fresh run", out)
        if ckpt is not None:  # a checkpoint of another model/objective config: say which keys differ, write nothing
            check_same_config(ckpt, read_state(ckpt), cfg.model_dump(mode="json"))
        if ckpt is None and (out / "checkpoints").is_dir() and any((out / "checkpoints").glob("step-*")):
            raise UserError(f"{out} already holds checkpoints; pass --resume latest to continue or pick a new --out")
        torch.manual_seed(cfg.train.seed + info.rank)  # the one global seed (dropout); resume restores RNG
        source = open_data(cfg.data, seed=cfg.train.seed)
        ensure_dir(out)  # only once the data is usable: invalid input leaves no empty --out folder
        if info.main:
            write_text_atomic(out / "config.yaml", dump_config(cfg))
            write_text_atomic(out / "data.json", json.dumps(source.describe(), indent=1))
            log.info("data: %s", source.describe())
        trainer = Trainer(cfg, source, out, resume=ckpt, dist=info)
        return trainer.fit()
    finally:
        D.cleanup(info)


def allow_outside_root(cfg: TrainConfig) -> TrainConfig:
    """Every mimic/csv source may read image paths outside its root (--allow-outside-root)."""
    sources = [s.model_copy(update={"allow_outside_root": True}) if s.kind in ("mimic", "csv") else s
               for s in cfg.data.sources]
    return cfg.model_copy(update={"data": cfg.data.model_copy(update={"sources": sources})})


def train(config_path: Optional[str | Path], data: Optional[str], out: str | Path,
          overrides: Optional[list[str]] = None, resume: Optional[str] = None,
          outside_root: bool = False) -> Path:
    """Load + validate the YAML config (with --set overrides), train, return the run folder.

    data: a syncxr dataset folder, "mimic:<dir>", "csv:<file>", or None for the config's data section.
    resume: "latest" or a checkpoint path.
    """
    cfg = resolve_data(load_config(config_path, overrides), data)
    if outside_root:
        cfg = allow_outside_root(cfg)
    run(cfg, Path(out), resume)
    return Path(out)
