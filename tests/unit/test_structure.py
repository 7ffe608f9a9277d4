"""The shape of the package: no import cycle anywhere in ``imgserver/`` (imports inside
functions and under ``TYPE_CHECKING`` count too), and every runtime implements exactly the ops
the registry says it does."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from imgserver.runtime.pillow.ops import OPERATIONS as PILLOW_OPERATIONS
from imgserver.runtime.registry import OPS, PILLOW, RUNTIMES, VIPS
from imgserver.runtime.vips.ops import OPERATIONS as VIPS_OPERATIONS

PACKAGE = Path(__file__).resolve().parents[2] / "imgserver"
IMPLEMENTATIONS = {VIPS: VIPS_OPERATIONS, PILLOW: PILLOW_OPERATIONS}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The package's modules ``name`` imports, anywhere in its file; importing ``a.b.c`` also
    imports the packages ``a`` and ``a.b``."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
        for target in targets:
            parts = target.split(".")
            for i in range(1, len(parts) + 1):
                candidate = ".".join(parts[:i])
                if candidate in known and candidate != name:
                    found.add(candidate)
    return found


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
        for w in sorted(graph[v]):
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


def test_the_walker_sees_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_walker_resolves_relative_and_parent_imports(tmp_path: Path) -> None:
    known = {"imgserver", "imgserver.web", "imgserver.web.state", "imgserver.errors"}
    path = PACKAGE / "web" / "graph.py"
    found = imports_of("imgserver.web.graph", path, known)
    assert {"imgserver.web.state", "imgserver.errors", "imgserver.web", "imgserver"} <= found


def test_no_import_cycle_in_the_package() -> None:
    mods = modules()
    known = set(mods)
    graph = {name: imports_of(name, path, known) for name, path in mods.items()}
    assert len(graph) > 40
    assert cycles(graph) == []


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_each_runtime_implements_exactly_the_ops_it_is_declared_for(runtime: str) -> None:
    declared = {name for name, op in OPS.items() if runtime in op.runtimes}
    assert set(IMPLEMENTATIONS[runtime]) == declared


def test_every_op_has_a_runtime_and_every_runtime_is_known() -> None:
    assert set(IMPLEMENTATIONS) == set(RUNTIMES)
    for op in OPS.values():
        assert op.runtimes and op.runtimes <= set(RUNTIMES), op.name
