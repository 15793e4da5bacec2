"""The study's training steps: the per-run train config, and training in one process or under
torchrun (DDP) with the result read back from the run's files."""

from __future__ import annotations

import json
import logging
import shlex
from pathlib import Path
from typing import Any

from syncxr.errors import UserError
from syncxr.evaluate.results import atomic_write_text
from syncxr.study.config import ObjectiveSpec, StudyConfig
from syncxr.study.step import Step

log = logging.getLogger(__name__)


def train_config(cfg: StudyConfig, obj: ObjectiveSpec, seed: int, sources: list[dict[str, Any]], source: str) -> Any:
    """The run's TrainConfig: the shared train config with only objective, data, budget and seed set."""
    from syncxr.train.config import load_config, validate_config

    base = load_config(obj.config or cfg.train.config, [*cfg.train.overrides, *obj.overrides])
    raw = base.model_dump(mode="json")
    same = raw["objective"]["name"] == obj.name  # keep the config's params only for the objective they belong to
    params = obj.params if obj.params is not None else (raw["objective"]["params"] if same else {})
    raw["objective"] = {"name": obj.name, "params": params}
    data = {**raw["data"], "sources": sources, "mix": "concat", "ratios": None}
    if len(sources) > 1 and cfg.mix.mode == "weighted":
        data.update(mix="weighted", ratios=cfg.mix.ratios, samples_per_epoch=cfg.mix.samples_per_epoch)
    raw["data"] = data
    raw["train"]["seed"] = seed
    if cfg.train.budget == "steps":
        # total steps = min(steps_per_epoch * epochs, max_steps); epochs = steps makes max_steps the binding cap.
        raw["train"].update(max_steps=cfg.train.steps, epochs=max(int(cfg.train.steps or 1), 1))
    return validate_config(raw, f"{source}: train config of objective {obj.name!r}")


def train_step(name: str, tcfg: Any, upstream: list[Step], out: Path, nproc: int = 1) -> Step:
    conf = {"train": tcfg.model_dump(mode="json"), "upstream": {s.name: s.hash for s in upstream}}

    def act(folder: Path, resume: bool) -> dict[str, Any]:
        resume_latest = resume and (folder / "latest.json").is_file()
        if nproc > 1:
            step, losses, val = torchrun(tcfg, folder, nproc, resume_latest)
        else:
            from syncxr.train.api import run

            res = run(tcfg, folder, resume="latest" if resume_latest else None)
            step, losses, val = res.step, res.losses, dict(res.val)
        tail = losses[-10:]
        described = json.loads((folder / "data.json").read_text()) if (folder / "data.json").is_file() else {}
        return {"step": step, "final_loss": sum(tail) / len(tail) if tail else None,
                "val": val, "pairs": described.get("pairs")}

    launch = f"torchrun --standalone --nproc_per_node {nproc} -m " if nproc > 1 else ""
    return Step(name, "train", conf, act, "latest.json",
                f"{launch}syncxr train --config {out / name / 'config.yaml'} --out {out / name}")


def torchrun(tcfg: Any, folder: Path, nproc: int, resume: bool) -> tuple[int, list[float], dict[str, float]]:
    """Train in `nproc` DDP processes (torch.distributed.run); the result is read back from the
    run's files (rank 0 writes latest.json and metrics.csv)."""
    import subprocess
    import sys

    import pandas as pd

    from syncxr.train.config import dump_config

    launch = folder / "launch.yaml"
    atomic_write_text(launch, dump_config(tcfg))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           "-m", "syncxr", "train", "--config", str(launch), "--out", str(folder)]
    if resume:
        cmd += ["--resume", "latest"]
    log.info("launching: %s", shlex.join(cmd))
    code = subprocess.run(cmd).returncode
    if code != 0:
        raise UserError(f"{folder}: training under torchrun failed (exit {code}); its output is above. "
                        f"Rerun the study to resume from the last checkpoint, or run: {shlex.join(cmd)}")
    step = int(json.loads((folder / "latest.json").read_text())["step"])
    metrics = pd.read_csv(folder / "metrics.csv") if (folder / "metrics.csv").is_file() else pd.DataFrame()
    losses = metrics.loc[metrics["phase"] == "train", "loss"].dropna().tolist() if len(metrics) else []
    val_rows = metrics[metrics["phase"] == "val"] if len(metrics) else metrics
    val = {k: float(v) for k, v in val_rows.iloc[-1].dropna().items() if k.startswith(("val_", "i2t_", "t2i_"))} \
        if len(val_rows) else {}
    return step, losses, val
