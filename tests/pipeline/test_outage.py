"""An LLM server outage mid-run fails the affected shard; the rerun completes, and the dataset
equals an uninterrupted run: no pair lost, none duplicated."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from syncxr.config import load_config
from syncxr.data.shards import sha256_file
from syncxr.pipeline.config import GenerateConfig
from syncxr.pipeline.runner import RunFailed, run_generate
from syncxr.vocab import load_ontology

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "backends"))
from chat_stub import ChatStub, completion  # noqa: E402

ONTO = load_ontology()
PHRASE = {c.synonyms[0]: c for c in ONTO.concepts if c.synonyms}


def radiologist(body: dict) -> tuple:
    """A deterministic 'LLM': one sentence per listed entity, read back from the prompt."""
    prompt = body["messages"][-1]["content"]
    block = prompt.split("Entities, grouped by type:")[1].split("Rules:")[0]
    sentences, typ = [], ""
    for line in block.splitlines():
        line = line.strip()
        if line.endswith(":"):
            typ = line[:-1]
        elif line.startswith("- "):
            phrase = re.sub(r"\s*\[.*\]$", "", line[2:])
            concept = PHRASE.get(phrase)
            negated = typ.startswith("NON-") and concept is not None and concept.negatable
            sentences.append(f"No {phrase}." if negated else f"{phrase[0].upper()}{phrase[1:]}.")
    text = " ".join(sentences)
    return 200, completion(f"FINDINGS: {text}\nIMPRESSION: {text}")


@pytest.fixture
def stub():
    s = ChatStub()
    s.responder = radiologist
    yield s
    s.stop()


def cfg(url: str) -> GenerateConfig:
    return load_config(GenerateConfig, None, [
        "n=30", "shard_size=10", "batch_size=5", "image.size=128", "qc.enabled=false",
        "entities.source=ontology", "entities.m=0", "write.backend=llm", "write.max_attempts=2",
        "verify.check_attributes=false", "early_stop.min_accept_rate=0",
        "write.options.transport=openai", f"write.options.base_url={url}", "write.options.model=m",
        "write.options.max_retries=1", "write.options.retry_backoff_s=0.01", "write.options.timeout=10",
        "write.options.concurrency=4",
    ])


def files(out: Path) -> dict[str, str]:
    return {f"{d}/{p.name}": sha256_file(p) for d in ("shards", "rejects") for p in sorted((out / d).glob("*.parquet"))}


def test_outage_fails_the_shard_and_the_rerun_loses_nothing(stub, tmp_path):
    reference = tmp_path / "reference"
    run_generate(cfg(stub.base_url), reference, workers=1)
    ids = [i for p in sorted((reference / "shards").glob("*.parquet")) for i in pq.read_table(p).column("sample_id").to_pylist()]
    assert len(ids) == len(set(ids)) == 30

    down = {"after": len(stub.requests) + 14}  # the server answers 14 more chat requests, then 503s

    def flaky(body: dict) -> tuple:
        if len(stub.requests) > down["after"]:
            return 503, {"error": {"message": "server overloaded"}}
        return radiologist(body)

    stub.responder = flaky
    out = tmp_path / "ds"
    with pytest.raises(RunFailed, match="rerun the same command"):
        run_generate(cfg(stub.base_url), out, workers=1)
    assert 0 < len(list((out / "shards").glob("*.parquet"))) < len(list((reference / "shards").glob("*.parquet")))
    stub.responder = radiologist  # the server is back
    run_generate(cfg(stub.base_url), out, workers=1)
    assert files(out) == files(reference)
