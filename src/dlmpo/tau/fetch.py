"""`dlmpo data fetch tau`: download τ-bench (sierra-research/tau-bench, MIT) at a pinned commit and
convert it to the plain layout of `domain.py`.

Upstream keeps tasks and tool schemas in Python source. They are converted by reading the syntax
tree (Task(...)/Action(...) calls and get_info() dict literals): nothing downloaded is executed."""

from __future__ import annotations

import ast
import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Callable

from dlmpo.errors import UserError
from dlmpo.tau.domain import DOMAIN_TOOLS, default_tau_dir

UPSTREAM = "https://raw.githubusercontent.com/sierra-research/tau-bench"
PINNED_REF = "1c8f8378879012d72009101c14e6e25c83bbfa00"
TABLES = {"airline": ("flights", "reservations", "users"), "retail": ("orders", "products", "users")}
TASK_FILES = {"airline": ("test",), "retail": ("train", "dev", "test")}


def _literal(node: ast.AST) -> Any:
    """A Python literal, where Task(...) and Action(...) calls become dicts of their keywords."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("Task", "Action"):
        if node.args:
            raise ValueError(f"{node.func.id}(...) with positional arguments at line {node.lineno}")
        return {kw.arg: _literal(kw.value) for kw in node.keywords}
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_literal(e) for e in node.elts]
    if isinstance(node, ast.Dict):
        return {_literal(k): _literal(v) for k, v in zip(node.keys, node.values)}
    return ast.literal_eval(node)


def tasks_from_source(source: str) -> list[dict[str, Any]]:
    """The task list of an upstream tasks_*.py file, as [{user_id, instruction, actions, outputs}]."""
    for statement in ast.parse(source).body:
        value = getattr(statement, "value", None)
        if isinstance(statement, (ast.Assign, ast.AnnAssign)) and isinstance(value, ast.List):
            tasks = _literal(value)
            return [{"annotator": t.get("annotator", ""), "user_id": t["user_id"], "instruction": t["instruction"],
                     "actions": [{"name": a["name"], "kwargs": a.get("kwargs", {})} for a in t.get("actions", [])],
                     "outputs": t.get("outputs", [])} for t in tasks]
    raise ValueError("no task list found")


def tool_schema_from_source(source: str) -> dict[str, Any]:
    """The dict literal that an upstream tool's get_info() returns."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef) and node.name == "get_info":
            for inner in ast.walk(node):
                if isinstance(inner, ast.Return) and inner.value is not None:
                    return ast.literal_eval(inner.value)
    raise ValueError("no get_info() returning a literal")


def _download(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=60) as response:  # noqa: S310 - a fixed https host
            return response.read().decode("utf-8")
    except (urllib.error.URLError, TimeoutError) as exc:
        raise UserError(f"Cannot download {url}: {getattr(exc, 'reason', exc)}.") from None


def fetch_tau(dest: str | Path | None = None, ref: str = PINNED_REF, *,
              download: Callable[[str], str] = _download, on_file: Callable[[str], None] | None = None) -> Path:
    """Write <dest>/tau/{airline,retail}/ and return <dest>/tau."""
    root = Path(dest).expanduser() if dest else default_tau_dir()
    out = root / "tau"
    for domain, tables in TABLES.items():
        base = f"{UPSTREAM}/{ref}/tau_bench/envs/{domain}"
        target = out / domain
        (target / "db").mkdir(parents=True, exist_ok=True)

        def get(path: str) -> str:
            if on_file:
                on_file(f"{domain}/{path}")
            return download(f"{base}/{path}")

        for table in tables:
            text = get(f"data/{table}.json")
            json.loads(text)  # fail here, not at first use, on a truncated download
            (target / "db" / f"{table}.json").write_text(text, encoding="utf-8")
        (target / "policy.md").write_text(get("wiki.md"), encoding="utf-8")
        schemas = []
        for tool in sorted(DOMAIN_TOOLS[domain]):
            try:
                schemas.append(tool_schema_from_source(get(f"tools/{tool}.py")))
            except (ValueError, SyntaxError) as exc:
                raise UserError(f"Cannot read the schema of upstream tool {domain}/{tool}: {exc}.") from None
        (target / "tools.json").write_text(json.dumps(schemas, indent=1), encoding="utf-8")
        for split in TASK_FILES[domain]:
            try:
                tasks = tasks_from_source(get(f"tasks_{split}.py"))
            except (ValueError, SyntaxError) as exc:
                raise UserError(f"Cannot read upstream {domain}/tasks_{split}.py: {exc}.") from None
            (target / f"tasks_{split}.json").write_text(json.dumps(tasks, indent=1), encoding="utf-8")
    (out / "SOURCE.txt").write_text(f"sierra-research/tau-bench at {ref} (MIT licence), converted by dlmpo\n")
    return out
