"""Import rules of the package (docs/architecture.md): no cycles between sub-packages, and the
training/evaluation side never reaches into the generator."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "syncxr"

# Packages that must never import the generator (training reads shards and sources only).
NEVER_IMPORT_GENERATOR = ("evaluate", "train", "models", "objectives")
GENERATOR = ("text", "image", "pipeline")
# The shared core, and the neutral units that may import nothing else (docs/architecture.md).
CORE = {"errors", "records", "registry", "stage", "config", "progress", "fsio", "imread"}
CORE_ONLY = ("transports", "vocab", *sorted(CORE))


def _unit(module: str) -> str:
    """'syncxr.text.lexicon_extractor' -> 'text'; top-level modules ('syncxr.records') are their own unit."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def _imports(path: Path) -> set[str]:
    """Every syncxr module a file imports, at any depth (late imports count too)."""
    tree = ast.parse(path.read_text(), str(path))
    here = "syncxr." + ".".join(path.relative_to(SRC).with_suffix("").parts)
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("syncxr.")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative import
                base = here.rsplit(".", node.level)[0]
                out.add(f"{base}.{node.module}" if node.module else base)
            elif node.module and node.module.startswith("syncxr."):
                out.add(node.module)
    return out


def unit_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = defaultdict(set)
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC)
        src_unit = rel.parts[0] if len(rel.parts) > 1 else rel.stem
        for mod in _imports(path):
            dst = _unit(mod)
            if dst != src_unit:
                graph[src_unit].add(dst)
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_cycle_finder_finds_a_planted_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": {"c"}}) is None


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return unit_graph()  # parsing every source file once per module, not once per test


def test_no_import_cycles_between_packages(graph):
    assert "text" in graph and "pipeline" in graph  # the scan sees the package
    assert _cycle(graph) is None, f"import cycle: {' -> '.join(_cycle(graph) or [])}"


@pytest.mark.parametrize("package", NEVER_IMPORT_GENERATOR)
def test_training_and_evaluation_never_import_the_generator(package, graph):
    reached = graph.get(package, set())
    assert not reached & set(GENERATOR), f"{package}/ imports {sorted(reached & set(GENERATOR))}"


@pytest.mark.parametrize("unit", CORE_ONLY)
def test_neutral_units_import_only_the_core(unit, graph):
    """The LLM transports serve both the writer (text/) and the judge (qc/): neither may be
    reached back from them; the core is imported by everything and imports only itself."""
    assert unit in graph or (SRC / f"{unit}.py").is_file() or (SRC / unit).is_dir()
    assert graph.get(unit, set()) <= CORE, f"{unit} imports {sorted(graph.get(unit, set()) - CORE)}"
