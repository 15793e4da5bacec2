"""Exact resume on CPU, and a 2-process torchrun (gloo) run that matches one process."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from fixture_shards import write_shards  # noqa: E402

from syncxr.train.api import train  # noqa: E402
from syncxr.train.metrics import read_metrics  # noqa: E402

QUICK = Path(__file__).parents[2] / "configs" / "train" / "quick.yaml"
SMALL = ["train.progress=false", "train.epochs=2", "train.batch_size=16", "train.log_every=1",
         "model.image.image_size=32", "model.text.max_length=24"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return write_shards(tmp_path_factory.mktemp("ds"), 100, seed=2, size=48)


def _train_losses(out: Path) -> list[tuple[int, str]]:
    return [(int(r["step"]), r["loss"]) for r in read_metrics(out / "metrics.csv") if r["phase"] == "train"]


def _final_weights(out: Path) -> dict[str, torch.Tensor]:
    latest = json.loads((out / "latest.json").read_text())["checkpoint"]
    return load_file(str(out / latest / "model.safetensors"))


def test_resume_equals_uninterrupted(dataset, tmp_path):
    # 90 train pairs / 16 = 5 steps per epoch; halt at step 3 (mid-epoch 0) and resume.
    full, part = tmp_path / "full", tmp_path / "part"
    train(QUICK, str(dataset), full, SMALL)
    train(QUICK, str(dataset), part, [*SMALL, "train.halt_after_steps=3", "train.ckpt_every=3"])
    assert [s for s, _ in _train_losses(part)] == [1, 2, 3]
    train(QUICK, str(dataset), part, SMALL, resume="latest")
    assert _train_losses(part) == _train_losses(full)  # same values, printed to 6 digits
    a, b = _final_weights(full), _final_weights(part)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _torchrun(dataset: Path, out: Path, args: list[str], port: int, resume: str = "") -> None:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(Path(__file__).parents[2] / "src"),
               SYNCXR_TEST_RESUME=resume)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(port),
           str(Path(__file__).parent / "ddp_worker.py"), str(QUICK), str(out),
           f"data.sources=[{{kind: syncxr, path: '{dataset}'}}]", *args]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_torchrun_resume_restores_each_ranks_rng(dataset, tmp_path):
    # Dropout on: each rank draws its own masks from its own RNG, so an exact DDP resume needs every
    # rank's RNG state, not rank 0's copied to all.
    args = [*SMALL, "train.epochs=1", "train.eval_each_epoch=false", "model.text.dropout=0.3"]
    full, part = tmp_path / "full", tmp_path / "part"
    _torchrun(dataset, full, args, 29541)
    _torchrun(dataset, part, [*args, "train.halt_after_steps=3", "train.ckpt_every=3"], 29542)
    state = json.loads((part / "checkpoints" / "step-00000003" / "state.json").read_text())
    per_rank = state["rng_per_rank"]
    assert len(per_rank) == 2 and per_rank[0]["torch"] != per_rank[1]["torch"]
    _torchrun(dataset, part, args, 29543, resume="latest")
    assert _train_losses(part) == _train_losses(full)  # steps 4-5 draw the same masks as uninterrupted
    a, b = _final_weights(full), _final_weights(part)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_torchrun_two_ranks_match_single_process(dataset, tmp_path):
    # No dropout: ranks draw different dropout masks than one process would.
    args = [*SMALL, "model.text.dropout=0.0", "train.epochs=1", "train.eval_each_epoch=false"]
    single = tmp_path / "single"
    train(QUICK, str(dataset), single, args)
    ddp = tmp_path / "ddp"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(Path(__file__).parents[2] / "src"))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29533",
           str(Path(__file__).parent / "ddp_worker.py"), str(QUICK), str(ddp), f"data.sources=[{{kind: syncxr, path: '{dataset}'}}]",
           *args]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0, r1 = (json.loads((ddp / f"rank{r}.json").read_text()) for r in (0, 1))
    assert r0["digest"] == r1["digest"]  # ranks hold identical weights
    assert r0["losses"] == pytest.approx(r1["losses"], abs=1e-6)
    single_losses = [float(v) for _, v in _train_losses(single)]
    assert len(single_losses) == len(r0["losses"]) == 5
    assert r0["losses"] == pytest.approx(single_losses, rel=1e-4, abs=1e-4)
    assert not (ddp / "rank1").exists() and (ddp / "metrics.csv").is_file()
    a, b = _final_weights(single), _final_weights(ddp)
    # Adam turns float-rounding-level gradient differences of near-zero gradients into up to
    # lr-sized steps, so compare the bulk of the weights, not every element.
    diffs = torch.cat([(a[k] - b[k]).abs().flatten() for k in a])
    assert float(diffs.mean()) < 1e-4 and float(diffs.max()) < 5 * 1e-3 * 5
