"""The runner's contract: n accepted pairs, failures that lose nothing, resume from the work
folder, a locked folder, and shards that are checked before they are trusted."""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from syncxr.config import load_config
from syncxr.data.shards import sha256_file
from syncxr.errors import InfrastructureError, SampleError, UserError
from syncxr.pipeline.config import GenerateConfig
from syncxr.pipeline.lock import FolderLock
from syncxr.pipeline.runner import RunFailed, run_generate
from syncxr.text.base import WRITERS
from syncxr.text.grammar_writer import GrammarWriter

BASE = [
    "entities.source=ontology", "image.size=128", "qc.enabled=false", "shard_size=10",
    "batch_size=4", "write.backend=test-writer", "early_stop.min_accept_rate=0",
]
CALLS: list[int] = []  # seeds the test writer was asked for, across a test
FAIL: dict[str, object] = {}  # what the test writer should do now


class FlakyWriter(GrammarWriter):
    """The grammar writer, plus: rejects ~30% of samples (a content failure), and raises an
    infrastructure failure for `FAIL["infra_at"]` attempt-0 seeds while FAIL is set."""

    backend_id = "grammar-test"

    def write(self, entities, seed, attempt=0, feedback=""):
        CALLS.append(seed)
        if FAIL.get("infra") and seed % 7 == 0:
            raise InfrastructureError("LLM server unreachable after 3 retries")
        if seed % 10 < 3:
            raise SampleError("test content failure")
        return super().write(entities, seed, attempt, feedback)


@pytest.fixture(autouse=True)
def test_writer():
    WRITERS.register("test-writer")(FlakyWriter)
    CALLS.clear()
    FAIL.clear()
    yield
    WRITERS.unregister("test-writer")


def cfg(*extra: str) -> GenerateConfig:
    return load_config(GenerateConfig, None, BASE + list(extra))


def hashes(out: Path) -> dict[str, str]:
    return {str(p.relative_to(out)): sha256_file(p) for sub in ("shards", "rejects") for p in sorted((out / sub).glob("*.parquet"))}


def rows(out: Path, column: str) -> list:
    return [v for p in sorted((out / "shards").glob("*.parquet")) for v in pq.read_table(p, columns=[column]).column(column).to_pylist()]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run of n=45 accepted pairs."""
    WRITERS.register("test-writer")(FlakyWriter)
    try:
        out = tmp_path_factory.mktemp("ref") / "ds"
        manifest = run_generate(cfg("n=45"), out, workers=1)
    finally:
        WRITERS.unregister("test-writer")
    return out, manifest


def test_n_counts_accepted_pairs_in_sample_order(reference):
    out, manifest = reference
    ids = rows(out, "index")
    assert len(ids) == 45 == manifest["counts"]["accepted"] and manifest["status"] == "complete"
    assert ids == sorted(ids) and manifest["counts"]["rejected"] > 0
    rejected = [i for p in sorted((out / "rejects").glob("*.parquet")) for i in pq.read_table(p).column("index").to_pylist()]
    assert max(rejected) < max(ids)  # rejects past the last kept pair are not counted
    assert sorted(ids + rejected) == list(range(max(ids) + 1))  # every sample up to the cut is accounted for
    assert not (out / "work").exists()


def test_short_plan_gets_one_deterministic_top_up_round(tmp_path):
    m1 = run_generate(cfg("n=30", "plan_margin=0"), tmp_path / "a", workers=1)
    m2 = run_generate(cfg("n=30", "plan_margin=0"), tmp_path / "b", workers=1)
    assert m1["counts"]["accepted"] == 30 and m1["plan"]["top_up"]["samples"] > 0
    assert m2["counts"] == m1["counts"] and m2["plan"]["top_up"] == m1["plan"]["top_up"]
    assert hashes(tmp_path / "a") == hashes(tmp_path / "b")


def test_infrastructure_failure_fails_the_shard_and_the_rerun_loses_nothing(reference, tmp_path):
    out = tmp_path / "ds"
    FAIL["infra"] = True
    with pytest.raises(RunFailed, match="rerun the same command"):
        run_generate(cfg("n=45"), out, workers=1)
    assert len(hashes(out)) < len(hashes(reference[0]))  # the failed shard left no final file
    FAIL.clear()
    run_generate(cfg("n=45"), out, workers=1)
    assert hashes(out) == hashes(reference[0])


def test_a_later_stage_failure_does_not_repeat_the_writer(reference, tmp_path, monkeypatch):
    from syncxr.image import stage as image_stage

    out = tmp_path / "ds"
    real = image_stage.ImageStage.process

    def broken(self, batch):
        raise InfrastructureError("CUDA out of memory at batch size 1")

    monkeypatch.setattr(image_stage.ImageStage, "process", broken)
    with pytest.raises(RunFailed):
        run_generate(cfg("n=45"), out, workers=1)
    assert (out / "work" / "shard-00000" / "after-label.json").is_file()
    written = len(CALLS)
    monkeypatch.setattr(image_stage.ImageStage, "process", real)
    manifest = run_generate(cfg("n=45"), out, workers=1)
    assert manifest["throughput_last_run"]["resumed_from_work_folder"] == ["label"]
    assert hashes(out) == hashes(reference[0])
    first_run_seeds = set(CALLS[:written])
    assert not first_run_seeds & set(CALLS[written:])  # shard 0's reports were not written again


def test_a_locked_folder_is_refused(tmp_path):
    out = tmp_path / "ds"
    out.mkdir()
    with FolderLock(out):
        with pytest.raises(UserError, match="being written by another syncxr run"):
            run_generate(cfg("n=12"), out, workers=1)


def test_damaged_or_swapped_shards_are_redone(reference, tmp_path):
    out = tmp_path / "ds"
    shutil.copytree(reference[0], out)
    shards = sorted((out / "shards").glob("*.parquet"))
    shards[0].write_bytes(shards[0].read_bytes()[:300])  # truncated
    shutil.copy(shards[2], shards[1])  # another shard's content under this name
    run_generate(cfg("n=45"), out, workers=1)
    assert hashes(out) == hashes(reference[0])


def test_a_run_that_cannot_succeed_stops_early_with_the_reasons(tmp_path):
    with pytest.raises(UserError, match=r"stopping early: the first 2 shards accepted \d+ of 20 .*write:sample_error"):
        run_generate(cfg("n=20", "early_stop.min_accept_rate=0.9"), tmp_path / "ds", workers=1)


class WeightedWriter(GrammarWriter):
    """The grammar writer, with a `model` folder it claims to load (for the fingerprint)."""

    def __init__(self, model: str, **kwargs):
        super().__init__(**kwargs)
        self.model = model


def test_resume_with_other_weights_is_refused(tmp_path):
    weights = tmp_path / "weights"
    weights.mkdir()
    (weights / "config.json").write_text('{"hidden_size": 8}')
    WRITERS.register("weighted-writer")(WeightedWriter)
    try:
        c = cfg("n=12", "write.backend=weighted-writer", f"write.options.model={weights}")
        manifest = run_generate(c, tmp_path / "ds", workers=1)
        assert manifest["weights"]["writer:weighted-writer"].startswith("sha256:")
        run_generate(c, tmp_path / "ds", workers=1)  # same weights: resumes (nothing to do)
        (weights / "config.json").write_text('{"hidden_size": 16}')
        with pytest.raises(UserError, match="(?s)started with other model weights.*writer:weighted-writer: sha256:"):
            run_generate(c, tmp_path / "ds", workers=1)
    finally:
        WRITERS.unregister("weighted-writer")


def test_an_impossible_n_is_refused_before_planning(tmp_path):
    with pytest.raises(UserError, match="plans 1,100,000,000,000 samples .* at most 5,000,000"):
        run_generate(cfg("n=1000000000000"), tmp_path / "ds", workers=1)
    assert not (tmp_path / "ds").exists()


def test_workers_are_capped_at_the_shards(monkeypatch, tmp_path):
    from syncxr.pipeline import local

    seen = {}
    real = local.LocalExecutor

    def spy(workers, **kw):
        seen["workers"] = workers
        return real(workers, **kw)

    monkeypatch.setattr(local, "LocalExecutor", spy)
    manifest = run_generate(cfg("n=5"), tmp_path / "ds", workers=1000)  # 6 planned samples: one shard of 10
    assert seen["workers"] == 1 and manifest["throughput_last_run"]["workers"] == 1


def test_the_executor_is_chosen_from_the_table(monkeypatch, tmp_path):
    """A new executor is one factory plus one line in EXECUTORS: the runner knows no names."""
    from syncxr.pipeline.executor import EXECUTORS, Executor
    from syncxr.pipeline.local import local_executor

    made = {}

    def inline(n_shards: int) -> Executor:  # asks the run for the shard count only
        made["n_shards"] = n_shards
        engine = local_executor(workers=1, gpus=[], n_shards=n_shards)
        engine.name = "inline"
        return engine

    EXECUTORS.register("inline")(inline)
    try:
        manifest = run_generate(cfg("n=5"), tmp_path / "ds", executor="inline")
    finally:
        EXECUTORS.unregister("inline")
    assert made == {"n_shards": 1} and manifest["throughput_last_run"]["executor"] == "inline"
    assert isinstance(local_executor(None, [], 3), Executor)
    with pytest.raises(UserError, match="unknown executor 'pigeon'; valid: local, ray"):
        run_generate(cfg("n=5"), tmp_path / "other", executor="pigeon")
    assert not (tmp_path / "other").exists()
