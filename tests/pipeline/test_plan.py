"""The entity plan: chunked sampling equals one pass; reference counts come from the extractor."""

import json

from syncxr.config import load_config
from syncxr.pipeline import plan as P
from syncxr.pipeline.config import GenerateConfig


def test_chunked_plan_equals_single_pass(monkeypatch):
    cfg = load_config(GenerateConfig, None, ["n=700", "entities.source=ontology"])
    monkeypatch.setattr(P, "PLAN_CHUNK", 10**9)
    whole, info_whole = P.make_plan(cfg)
    monkeypatch.setattr(P, "PLAN_CHUNK", 64)
    chunked, info_chunked = P.make_plan(cfg)
    assert chunked == whole and len(whole) == 700
    assert info_chunked["sampled_counts"] == info_whole["sampled_counts"]
    assert max(info_whole["sampled_counts"].values()) <= info_whole["tau_max"]


def test_sim_source_gives_long_tailed_reference_counts():
    cfg = load_config(GenerateConfig, None, ["n=50", "entities.source=sim", "entities.sim_reports=300"])
    plan, info = P.make_plan(cfg)
    ref = info["reference_counts"]
    assert ref and max(ref.values()) / min(ref.values()) >= 20
    used = {f"{e['name']}|{e['type']}" for s in plan for e in json.loads(s)}
    assert used <= set(ref)  # the pool is what the reference corpus contains
