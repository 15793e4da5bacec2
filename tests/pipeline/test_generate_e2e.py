"""End-to-end generation on the built-in backends: content, determinism, resume, refusal, CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from syncxr.config import load_config
from syncxr.data.shards import sha256_file
from syncxr.errors import UserError
from syncxr.pipeline.config import GenerateConfig
from syncxr.pipeline.runner import run_generate
from syncxr.records import CHEXPERT14_SNAKE

pytestmark = pytest.mark.slow  # end to end: `pytest -m 'not slow'` skips it for a fast loop

ROOT = Path(__file__).resolve().parents[2]
QUICK = ROOT / "configs/generate/quick.yaml"
SMALL = ["image.size=128", "shard_size=50", "qc.bank_per_defect=4", "batch_size=25"]


def small_cfg(n: int, *extra: str) -> GenerateConfig:
    return load_config(GenerateConfig, QUICK, [*SMALL, f"n={n}", *extra])


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("gen") / "ds"
    run_generate(small_cfg(200), out, workers=2)
    from syncxr.report.card import write_card

    write_card(out)
    return out


def test_dataset_folder_layout_and_counts(dataset):
    manifest = json.loads((dataset / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    c = manifest["counts"]
    assert c["accepted"] == 200 == c["requested"]  # n counts accepted pairs
    assert c["rejected"] <= 20, manifest["rejects_by_reason"]
    # 220 planned (10% margin) in shards of 50: the cut lands in the shard holding the 200th
    # accepted pair, after the rejects before it (none: exactly four shards)
    assert len(manifest["shards"]) == -(-(c["accepted"] + c["rejected"]) // 50)
    for entry in manifest["shards"]:
        assert sha256_file(dataset / entry["file"]) == entry["sha256"]
    assert (dataset / "card.md").is_file() and (dataset / "card.html").stat().st_size > 10_000


def test_rows_hold_images_reports_entities_labels(dataset):
    df = pd.read_parquet(dataset / "shards")
    rej = pd.read_parquet(dataset / "rejects")
    assert len(df) == 200
    assert set(df["index"]).isdisjoint(set(rej["index"]))
    last = int(df["index"].max())
    assert sorted(set(df["index"]) | set(rej["index"])) == list(range(last + 1))  # every sample up to the cut
    assert (df["image_png"].str[:8] == b"\x89PNG\r\n\x1a\n").all()
    assert (df["width"] == 128).all()
    assert df["impression"].str.len().min() > 0 and df["findings"].str.len().min() > 0
    ents = df["entities"].map(json.loads)
    assert ents.map(len).min() >= 3  # k >= 2 non-anatomy + m >= 1 anatomy
    labelled = df[list(CHEXPERT14_SNAKE)].notna().any(axis=1)
    assert labelled.all()
    if len(rej):
        assert rej["reason"].str.len().min() > 0 and rej["stage"].isin(["write", "image"]).all()


def test_same_seed_same_bytes_different_seed_differs(dataset, tmp_path):
    again = tmp_path / "again"
    run_generate(small_cfg(200), again, workers=1)
    for a in sorted((dataset / "shards").glob("*.parquet")):
        assert sha256_file(a) == sha256_file(again / "shards" / a.name)
    other = tmp_path / "other"
    run_generate(small_cfg(50, "seed=7"), other, workers=1)
    assert sha256_file(other / "shards/shard-00000.parquet") != sha256_file(dataset / "shards/shard-00000.parquet")


def test_different_config_in_same_folder_is_refused(dataset):
    with pytest.raises(UserError, match=r"different config[\s\S]*image\.size"):
        run_generate(small_cfg(200, "image.size=256"), dataset, workers=1)


def test_foreign_folder_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="not empty"):
        run_generate(small_cfg(10), tmp_path, workers=1)


def _cli(*args: str, **kw) -> subprocess.Popen:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "-m", "syncxr", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, **kw)


def test_resume_after_sigkill_equals_uninterrupted(dataset, tmp_path):
    out = tmp_path / "killed"
    sets = [a for s in SMALL + ["n=200"] for a in ("--set", s)]
    args = ["generate", "--config", str(QUICK), "--out", str(out), "--workers", "1", "--no-card", *sets]
    proc = _cli(*args)
    first = out / "shards" / "shard-00000.parquet"
    deadline = time.time() + 120
    while not first.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, "run finished before it could be killed; make it longer"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "shards" / "shard-00003.parquet").exists()
    done = _cli(*args)
    _, err = done.communicate(timeout=300)
    assert done.returncode == 0, err
    for a in sorted((dataset / "shards").glob("*.parquet")):
        assert sha256_file(a) == sha256_file(out / "shards" / a.name)
    for a in sorted((dataset / "rejects").glob("*.parquet")):
        assert sha256_file(a) == sha256_file(out / "rejects" / a.name)
    assert not list((out / "shards").glob(".*.tmp"))


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--set", "image.sise=3"], "image.sise: unknown key"),
        (["--set", "write.max_attempts=0"], "write.max_attempts"),
        (["--set", "image.backend=dalle"], "unknown generator backend 'dalle'"),
        (["--workers", "0"], "--workers"),
    ],
)
def test_cli_bad_config_exits_2_with_message(tmp_path, args, needle):
    proc = _cli("generate", "--config", str(QUICK), "--out", str(tmp_path / "o"), "--n", "5", *args)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 2, (out, err)
    assert needle in err
    assert "Traceback" not in err
    assert not (tmp_path / "o" / "shards").exists()
