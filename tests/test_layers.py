"""Data flows one way: no two packages of dlmpo import each other (not even lazily, inside a
function), and the library never imports the command line."""

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


def test_no_two_packages_import_each_other():
    packages: dict[str, set[str]] = defaultdict(set)
    for module, targets in _imports().items():
        packages[_package(module)].update(_package(t) for t in targets if _package(t) != _package(module))
    circles = sorted(f"{a} <-> {b}" for a in packages for b in packages[a] if a < b and a in packages.get(b, ()))
    assert not circles, circles


def test_the_library_never_imports_the_cli():
    cli = {"dlmpo.cli", "dlmpo.cli_ddpt", "dlmpo.__main__", "dlmpo.console"}
    offenders = sorted(m for m, targets in _imports().items() if m not in cli and targets & cli)
    assert not offenders, offenders
