"""`syncxr verify DIR` finds what differs from the manifest."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from syncxr.cli import app
from syncxr.config import load_config
from syncxr.pipeline.config import GenerateConfig
from syncxr.pipeline.runner import run_generate

runner = CliRunner()


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("v") / "ds"
    cfg = load_config(GenerateConfig, None, ["n=24", "shard_size=8", "image.size=128", "qc.enabled=false",
                                             "entities.source=ontology"])
    run_generate(cfg, out, workers=1)
    return out


def test_a_sound_dataset_verifies(dataset):
    result = runner.invoke(app, ["verify", str(dataset)])
    assert result.exit_code == 0 and "matches its manifest" in result.output


@pytest.mark.parametrize("damage, needle", [
    (lambda d: (d / "shards/shard-00001.parquet").write_bytes(b"PAR1 not really"), "shard-00001.parquet: unreadable"),
    (lambda d: shutil.copy(d / "shards/shard-00000.parquet", d / "shards/shard-00002.parquet"), "outside its range"),
    (lambda d: (d / "shards/shard-00001.parquet").unlink(), "listed in the manifest but missing"),
    (lambda d: shutil.copy(d / "shards/shard-00000.parquet", d / "shards/shard-00009.parquet"), "on disk but not in the manifest"),
    (lambda d: (d / "manifest.json").write_text("[1, 2]"), "expected a JSON object"),
])
def test_damage_is_found(dataset, tmp_path, damage, needle):
    copy = tmp_path / "ds"
    shutil.copytree(dataset, copy)
    damage(copy)
    result = runner.invoke(app, ["verify", str(copy)])
    assert result.exit_code == 2 and needle in result.output, result.output


def test_a_rewritten_shard_differs_from_its_recorded_hash(dataset, tmp_path):
    import pyarrow.parquet as pq

    copy = tmp_path / "ds"
    shutil.copytree(dataset, copy)
    path = copy / "shards/shard-00000.parquet"
    pq.write_table(pq.read_table(path), path, compression="snappy")  # same rows, other bytes
    result = runner.invoke(app, ["verify", str(copy)])
    assert result.exit_code == 2 and "differs from the hash the manifest recorded" in result.output
    assert json.loads((copy / "manifest.json").read_text())["status"] == "complete"
