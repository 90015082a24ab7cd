"""The layout's rules, checked on the source: which package may import which, and no import circles.

Every import counts, the function-local ones too: a circle through a function body is still a circle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("recut", "engines", "toyworld", "tasks", "flows")


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def _imports(path: Path, known: dict[str, Path]) -> set[str]:
    """Every module of ours and every top-level package that ``path`` imports, anywhere in it."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{a.name}" for a in node.names]
            hits = [n for n in names if n in known]
            found.update(hits or [node.module])
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return found


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    known = _modules()
    return {name: _imports(path, known) for name, path in known.items()}


def _top(name: str) -> str:
    return name.split(".")[0]


def test_engines_import_neither_prefect_nor_ray(graph: dict[str, set[str]]) -> None:
    bad = {m: sorted(i for i in imps if _top(i) in ("prefect", "ray")) for m, imps in graph.items()}
    bad = {m: v for m, v in bad.items() if _top(m) == "engines" and v}
    assert not bad, bad


def test_the_core_reaches_engines_and_the_toy_world_only_through_the_registry(graph: dict[str, set[str]]) -> None:
    bad = {
        m: sorted(i for i in imps if _top(i) in ("engines", "toyworld"))
        for m, imps in graph.items()
        if _top(m) == "recut" and m != "recut.registry"
    }
    assert not {m: v for m, v in bad.items() if v}, bad


def test_engines_hold_no_toy_trainer(graph: dict[str, set[str]]) -> None:
    """Method code may use the toy scenes and judge (a toy input's preprocess and evaluation), never the zoo."""
    bad = {m: sorted(i for i in imps if i.startswith("toyworld.zoo")) for m, imps in graph.items()}
    assert not {m: v for m, v in bad.items() if _top(m) == "engines" and v}
    assert not (ROOT / "engines" / "common" / "zoo").exists()


def test_no_import_circles(graph: dict[str, set[str]]) -> None:
    edges = {m: {i for i in imps if i in graph and i != m} for m, imps in graph.items()}
    # a module imports its package's __init__ implicitly; the packages' __init__ files import nothing of ours here
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for n in sorted(edges[m]):
            if state.get(n) == 1:
                cycle = [*stack[stack.index(n) :], n]
                raise AssertionError("import circle: " + " -> ".join(cycle))
            if n not in state:
                visit(n)
        stack.pop()
        state[m] = 2

    for m in sorted(edges):
        if m not in state:
            visit(m)


def test_the_checker_finds_a_circle() -> None:
    """The circle check itself works: a made-up graph with a circle fails it."""
    with pytest.raises(AssertionError, match="a -> b -> a"):
        test_no_import_circles({"a": {"b"}, "b": {"a"}})
