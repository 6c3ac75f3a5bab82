"""The layout of docs/ARCHITECTURE.md, held against the code's own imports.

Every ``import`` and ``from ... import`` of ``twin`` and ``estimators`` is read with
:mod:`ast`, at module level and inside functions alike (a lazy import hides a cycle, it
does not remove it), and checked: no cycle; data moves one way (``estimators`` never
imports ``twin``); each paper is one package that imports no other paper; the shared
rooms never import a paper; a paper's synthetic setting (``scenario``) is never imported
by the runtime path; ``twin`` imports only the shared rooms it is allowed.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("twin", "estimators")
PAPERS = ("slab", "daun", "locman", "miso", "ris_cd")
#: The four rooms every paper has (docs/ARCHITECTURE.md).
PAPER_ROOMS = ("model", "scenario", "bound", "estimators")
#: What ``twin`` may import from ``estimators``: the shared rooms (types, forward model,
#: observation machinery, registry and its base) and, for training DAUN's network, the
#: DAUN rooms the training needs.
TWIN_MAY_IMPORT = {
    "estimators", "estimators.arrays", "estimators.base", "estimators.observe",
    "estimators.types", "estimators.typing",
}
TWIN_MAY_IMPORT_BY_MODULE = {
    "twin.train": {"estimators.daun.admm", "estimators.daun.checkpoint",
                   "estimators.daun.model"},
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            found[module_name(path)] = path
    return found


def _imported(tree: ast.AST, name: str, is_package: bool) -> Iterator[str]:
    """Every project module named by an import in ``tree`` (``from a import b`` names
    ``a.b`` where that is a module, else ``a``)."""
    package = name if is_package else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)


def import_graph() -> dict[str, set[str]]:
    known = modules()
    graph: dict[str, set[str]] = {}
    for name, path in known.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        targets = {t for t in _imported(tree, name, path.name == "__init__.py") if t in known}
        # A module's own package faces are executed by the import system, not imported.
        graph[name] = {t for t in targets if not name.startswith(t + ".") and t != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def paper_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "estimators" and parts[1] in PAPERS \
        else None


GRAPH = import_graph()
EDGES = sorted((a, b) for a, targets in GRAPH.items() for b in targets)


def test_the_graph_is_read() -> None:
    # The reader must see the imports this test is about, or every check below is vacuous.
    assert ("twin.simulate", "twin.trace") in EDGES
    assert ("estimators.slab.estimators", "estimators.base") in EDGES
    assert any(a.startswith("twin.") and b.startswith("estimators.") for a, b in EDGES)
    assert len(GRAPH) > 60


def test_no_import_cycle() -> None:
    assert cycles(GRAPH) == []


def test_the_cycle_finder_finds_cycles() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_estimators_never_import_twin() -> None:
    assert [(a, b) for a, b in EDGES if a.startswith("estimators") and
            b.split(".")[0] == "twin"] == []


@pytest.mark.parametrize("paper", PAPERS)
def test_each_paper_has_the_four_rooms(paper: str) -> None:
    folder = ROOT / "estimators" / paper
    assert sorted(room for room in PAPER_ROOMS if not (folder / f"{room}.py").is_file()) == []


def test_no_paper_imports_another() -> None:
    crossing = [(a, b) for a, b in EDGES
                if paper_of(a) and paper_of(b) and paper_of(a) != paper_of(b)]
    assert crossing == []


def test_shared_rooms_never_import_a_paper() -> None:
    shared = [(a, b) for a, b in EDGES if a.startswith("estimators") and paper_of(a) is None
              and a != "estimators" and paper_of(b)]
    assert shared == []


def test_the_synthetic_setting_stays_out_of_the_runtime_path() -> None:
    def is_scenario(module: str) -> bool:
        return module == "estimators.scenario" or (
            paper_of(module) is not None and module.endswith(".scenario"))

    leaks = [(a, b) for a, b in EDGES if is_scenario(b) and not is_scenario(a)]
    assert leaks == []


def test_twin_imports_only_the_shared_rooms() -> None:
    allowed = {a: TWIN_MAY_IMPORT | TWIN_MAY_IMPORT_BY_MODULE.get(a, set()) for a in GRAPH}
    extra = [(a, b) for a, b in EDGES if a.startswith("twin") and b.startswith("estimators")
             and b not in allowed[a]]
    assert extra == []
