"""The lazy registries: one source of names per kind, options checked without building."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from syncxr.data.sources import PAIR_SOURCES, SourceConfig, open_source
from syncxr.data.sources.registry import DATASETS
from syncxr.errors import UserError
from syncxr.evaluate.tasks import TASKS
from syncxr.image.base import GENERATORS
from syncxr.models.registry import IMAGE_ENCODERS
from syncxr.objectives.registry import OBJECTIVES
from syncxr.pipeline.executor import EXECUTORS
from syncxr.transports.base import TRANSPORTS
from syncxr.qc.base import FEATURES
from syncxr.registry import Registry, UnknownName
from syncxr.text.base import EXTRACTORS, WRITERS

ALL = [EXTRACTORS, WRITERS, GENERATORS, FEATURES, TRANSPORTS, DATASETS, PAIR_SOURCES, TASKS, OBJECTIVES,
       IMAGE_ENCODERS, EXECUTORS]


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


def test_the_tables_name_everything_without_importing_a_backend():
    """CLI help and `syncxr doctor` read names() on a machine without torch or ray: declaring
    the tables must not import them (nor any registered module)."""
    import subprocess

    code = (
        "import sys\n"
        "from syncxr.objectives import OBJECTIVES\n"
        "from syncxr.models.registry import IMAGE_ENCODERS\n"
        "from syncxr.pipeline.executor import EXECUTORS\n"
        "from syncxr.transports.base import TRANSPORTS\n"
        "names = OBJECTIVES.names() + IMAGE_ENCODERS.names() + EXECUTORS.names() + TRANSPORTS.names()\n"
        "heavy = sorted(m for m in ('torch', 'timm', 'torchvision', 'ray', 'syncxr.objectives.mgca',\n"
        "               'syncxr.models.image', 'syncxr.pipeline.local', 'syncxr.transports.openai_http') if m in sys.modules)\n"
        "print(len(names), heavy)\n"
    )
    src = str(Path(__file__).resolve().parents[1] / "src")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": src}).stdout.split(maxsplit=1)
    assert out == [str(3 + 6 + 2 + 3), "[]\n"]
