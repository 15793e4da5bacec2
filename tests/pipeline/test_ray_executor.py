"""The Ray executor writes the same bytes as the local one, and survives its driver being killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from syncxr.config import load_config
from syncxr.data.shards import sha256_file
from syncxr.pipeline.config import GenerateConfig
from syncxr.pipeline.runner import run_generate

ray = pytest.importorskip("ray", reason="Ray is an optional extra (syncxr[ray])")

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
QUICK = ROOT / "configs/generate/quick.yaml"
SMALL = ["image.size=128", "shard_size=20", "qc.bank_per_defect=4", "batch_size=8", "n=60"]
ENV = {"RAY_AUTH_MODE": "disabled", "RAY_DISABLE_USAGE_STATS": "1"}


def files(out: Path) -> dict[str, str]:
    return {f"{sub}/{p.name}": sha256_file(p) for sub in ("shards", "rejects", "qc")
            for p in sorted((out / sub).glob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def local_cluster():
    os.environ.update(ENV)
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1",
             object_store_memory=200 * 1024 * 1024, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def local_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("local") / "ds"
    run_generate(load_config(GenerateConfig, QUICK, SMALL), out, workers=2)
    return out


def test_ray_equals_local_byte_for_byte(local_cluster, local_run, tmp_path):
    cfg = load_config(GenerateConfig, QUICK, SMALL + ["executor.stages.image.concurrency=2"])
    manifest = run_generate(cfg, tmp_path / "ds", executor="ray")
    assert manifest["throughput_last_run"]["executor"] == "ray"
    assert manifest["counts"]["accepted"] == 60
    assert files(tmp_path / "ds") == files(local_run) and "shards/shard-00002.parquet" in files(local_run)


def test_killed_driver_then_rerun_gives_the_same_dataset(local_run, tmp_path):
    out = tmp_path / "killed"
    sets = [a for s in SMALL for a in ("--set", s)]
    args = [sys.executable, "-m", "syncxr", "generate", "--config", str(QUICK), "--out", str(out),
            "--executor", "ray", "--no-card", *sets]
    env = dict(os.environ, **ENV, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)
    first = out / "shards" / "shard-00000.parquet"
    deadline = time.time() + 240
    while not first.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, "run finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and the local Ray it started
    proc.wait()
    rerun = subprocess.run(args, capture_output=True, text=True, env=env, timeout=400)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert files(out) == files(local_run)
    assert not list(out.rglob("*.tmp")) and not (out / "work").exists()


def test_ray_equals_local_with_a_tiny_real_diffusion_backend(local_cluster, tmp_path):
    """The real-model path through both executors: a tiny random Stable Diffusion pipeline built
    offline draws the images (fp32 on CPU), so the bytes must agree exactly."""
    sys.path.insert(0, str(ROOT / "tests" / "backends"))
    from tiny import build_sd

    sd = build_sd(tmp_path / "sd")
    sets = ["image.size=128", "shard_size=4", "batch_size=4", "n=8", "qc.enabled=false", "image.backend=diffusion",
            f"image.options.model={sd}", "image.options.steps=2", "image.options.batch_size=4"]
    cfg = load_config(GenerateConfig, QUICK, sets)
    local = run_generate(cfg, tmp_path / "local", workers=1)
    remote = run_generate(cfg, tmp_path / "ray", executor="ray")
    assert files(tmp_path / "ray") == files(tmp_path / "local")
    assert local["counts"]["accepted"] == remote["counts"]["accepted"] == 8
    assert local["weights"]["generator:diffusion"].startswith("sha256:")
