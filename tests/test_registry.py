"""The lazy registries: one source of names per kind, options checked without building."""

from __future__ import annotations

import sys

import pytest

from syncxr.data.sources import PAIR_SOURCES, SourceConfig, open_source
from syncxr.data.sources.registry import DATASETS
from syncxr.errors import UserError
from syncxr.evaluate.tasks import TASKS
from syncxr.image.base import GENERATORS
from syncxr.transports.base import TRANSPORTS
from syncxr.qc.base import FEATURES
from syncxr.registry import Registry, UnknownName
from syncxr.text.base import EXTRACTORS, WRITERS

ALL = [EXTRACTORS, WRITERS, GENERATORS, FEATURES, TRANSPORTS, DATASETS, PAIR_SOURCES, TASKS]


def make(size: int, label: str = "x", ontology: object = None) -> dict:
    return {"size": size, "label": label, "ontology": ontology}


def test_lazy_target_is_imported_only_when_used(tmp_path, monkeypatch):
    (tmp_path / "late_plugin_mod.py").write_text("def factory(n: int = 1):\n    return ['built', n]\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    reg: Registry = Registry("thing", {"late": "late_plugin_mod:factory"})
    assert reg.names() == ["late"] and "late_plugin_mod" not in sys.modules
    assert reg.build("late", n=3) == ["built", 3]
    assert "late_plugin_mod" in sys.modules


def test_unknown_name_lists_valid_names():
    reg: Registry = Registry("widget", {"b": "m:b", "a": "m:a"})
    with pytest.raises(UnknownName, match=r"unknown widget 'c'; valid names: a, b"):
        reg.get("c")
    with pytest.raises(KeyError):  # still a KeyError for callers that expect one
        reg.get("c")
    with pytest.raises(ValueError, match="twice"):
        reg.add("a", "m:a2")


def test_check_refuses_unknown_missing_and_mistyped_options_without_building():
    calls = []
    reg: Registry = Registry("maker")
    reg.register("m")(lambda size, label="x": calls.append(size))
    with pytest.raises(UserError, match=r"unknown option\(s\) \['colour'\]; accepted options: size, label"):
        reg.check("m", {"size": 1, "colour": "red"})
    with pytest.raises(UserError, match=r"missing required option\(s\) \['size'\]"):
        reg.check("m", {})
    typed: Registry = Registry("typed")
    typed.register("t")(make)
    with pytest.raises(UserError, match=r"option 'size': .*integer.*got 'big'"):
        typed.check("t", {"size": "big"})
    assert typed.check("t", {"size": "3"})["size"] == 3  # YAML strings of numbers are accepted
    assert calls == []  # nothing was built


def test_context_reaches_only_factories_that_name_it_and_never_overrides_options():
    reg: Registry = Registry("typed")
    reg.register("t")(make)
    context = {"ontology": "ONTO", "extractor": "EXTRACTOR", "size": 64}
    assert reg.create("t", {}, context) == {"size": 64, "label": "x", "ontology": "ONTO"}
    assert reg.create("t", {"size": 128}, context)["size"] == 128


@pytest.mark.parametrize("registry", ALL, ids=lambda r: r.kind)
def test_every_registered_name_resolves_to_a_callable(registry):
    assert registry.names(), registry.kind
    for name in registry.names():
        assert callable(registry.get(name)), f"{registry.kind} {name} -> {registry.target(name)}"


def test_llm_writer_options_are_checked_against_the_chosen_transport():
    WRITERS.check("llm", {"transport": "openai", "base_url": "http://x/v1", "model": "m"})
    with pytest.raises(UserError, match=r"LLM transport 'openai': unknown option\(s\) \['max_new_tokens'\]"):
        WRITERS.check("llm", {"transport": "openai", "base_url": "http://x/v1", "model": "m", "max_new_tokens": 3})
    with pytest.raises(UserError, match="unknown LLM transport 'pigeon'"):
        WRITERS.check("llm", {"transport": "pigeon"})


def test_a_source_option_its_kind_does_not_take_is_refused(tmp_path):
    with pytest.raises(UserError, match=r"kind 'csv' takes no option\(s\) \['views'\]"):
        open_source(SourceConfig(kind="csv", path=str(tmp_path / "p.csv"), views=["PA"]))
    with pytest.raises(ValueError, match="unknown source kind 'dicom'; valid kinds: csv, mimic, syncxr"):
        SourceConfig(kind="dicom", path="x")
