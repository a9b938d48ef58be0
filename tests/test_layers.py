"""Data flows one way: no two packages of dlmpo import each other, no module of dlmpo is part of
an import cycle (not even lazily, inside a function), and the library never imports the command
line."""

import ast
from collections import defaultdict
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def _package(module: str) -> str:
    return ".".join(module.split(".")[:2])  # dlmpo.tasks.base -> dlmpo.tasks


def _imports() -> dict[str, set[str]]:
    """Module -> dlmpo modules it imports anywhere in its body."""
    graph: dict[str, set[str]] = defaultdict(set)
    for path in (SRC / "dlmpo").rglob("*.py"):
        parts = path.relative_to(SRC).with_suffix("").parts
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("dlmpo."):
                graph[module].add(node.module)
            elif isinstance(node, ast.Import):
                graph[module].update(a.name for a in node.names if a.name.startswith("dlmpo."))
    return graph


def _modules() -> set[str]:
    found = set()
    for path in (SRC / "dlmpo").rglob("*.py"):
        parts = path.relative_to(SRC).with_suffix("").parts
        found.add(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return found


def _module_imports() -> dict[str, set[str]]:
    """Module -> the dlmpo modules it imports anywhere in its body: `from dlmpo.a import b` names
    the module dlmpo.a.b when there is one, else dlmpo.a."""
    modules = _modules()
    graph: dict[str, set[str]] = defaultdict(set)
    for path in (SRC / "dlmpo").rglob("*.py"):
        parts = path.relative_to(SRC).with_suffix("").parts
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "dlmpo":
                for alias in node.names:
                    sub = f"{node.module}.{alias.name}"
                    graph[module].add(sub if sub in modules else node.module)
            elif isinstance(node, ast.Import):
                graph[module].update(a.name for a in node.names if a.name.startswith("dlmpo."))
        graph[module].discard(module)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
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

    for v in list(graph):
        if v not in index:
            visit(v)
    return found


def test_no_module_is_part_of_an_import_cycle():
    assert not _cycles(_module_imports())


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_two_packages_import_each_other():
    packages: dict[str, set[str]] = defaultdict(set)
    for module, targets in _imports().items():
        packages[_package(module)].update(_package(t) for t in targets if _package(t) != _package(module))
    circles = sorted(f"{a} <-> {b}" for a in packages for b in packages[a] if a < b and a in packages.get(b, ()))
    assert not circles, circles


def test_the_library_never_imports_the_cli():
    cli = {"dlmpo.cli", "dlmpo.cli_ddpt", "dlmpo.cli_options", "dlmpo.__main__", "dlmpo.console"}
    offenders = sorted(m for m, targets in _imports().items() if m not in cli and targets & cli)
    assert not offenders, offenders
