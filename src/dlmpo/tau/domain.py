"""A τ-bench domain on disk: database, policy, tool schemas and task lists.

Layout (that of `../shared/data/tau` and of `dlmpo data fetch tau`):

    <root>/<domain>/db/*.json           one JSON object per table
    <root>/<domain>/policy.md           the agent's system prompt
    <root>/<domain>/tools.json          OpenAI function schemas
    <root>/<domain>/tasks_<split>.json  [{user_id, instruction, actions: [{name, kwargs}], outputs}]"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from hashlib import sha256
from pathlib import Path
from typing import Any, Callable

from dlmpo.errors import UserError
from dlmpo.files import read_json, read_text
from dlmpo.paths import cache_dir
from dlmpo.tau.airline_tools import AIRLINE_TOOLS, AIRLINE_WRITE_TOOLS
from dlmpo.tau.retail_tools import RETAIL_TOOLS, RETAIL_WRITE_TOOLS

DOMAIN_TOOLS: dict[str, dict[str, Callable[..., str]]] = {"airline": AIRLINE_TOOLS, "retail": RETAIL_TOOLS}
WRITE_TOOLS: dict[str, frozenset[str]] = {"airline": AIRLINE_WRITE_TOOLS, "retail": RETAIL_WRITE_TOOLS}
TASK_SPLITS = ("train", "dev", "test")


@dataclass(frozen=True)
class Action:
    name: str
    kwargs: dict[str, Any]


@dataclass(frozen=True)
class TauTask:
    """One scenario: the hidden user goal, the gold database actions and the facts the agent must say."""

    domain: str
    split: str
    index: int
    user_id: str
    instruction: str
    actions: tuple[Action, ...]
    outputs: tuple[str, ...]

    @property
    def id(self) -> str:
        return f"{self.domain}-{self.split}-{self.index}"

    @classmethod
    def from_json(cls, domain: str, split: str, index: int, raw: dict[str, Any]) -> TauTask:
        """From upstream's task shape {user_id, instruction, actions: [{name, kwargs}], outputs}."""
        return cls(domain, split, index, raw["user_id"], raw["instruction"],
                   tuple(Action(a["name"], a.get("kwargs", {})) for a in raw["actions"]),
                   tuple(str(o) for o in raw.get("outputs", [])))


@dataclass
class Domain:
    name: str
    root: Path
    policy: str
    tool_schemas: list[dict[str, Any]]
    tasks: dict[str, list[TauTask]]
    pristine: dict[str, dict[str, Any]] = field(repr=False)
    """The initial database. Environments share its records until they change one, so these
    objects are never mutated (an Environment copies a record before a tool can touch it)."""

    @property
    def tools(self) -> dict[str, Callable[..., str]]:
        return DOMAIN_TOOLS[self.name]

    @property
    def write_tools(self) -> frozenset[str]:
        return WRITE_TOOLS[self.name]

    @cached_property
    def pristine_digests(self) -> dict[str, dict[str, str]]:
        """The digest of every initial record, per table."""
        return {t: {k: record_digest(v) for k, v in table.items()} for t, table in self.pristine.items()}


def record_digest(value: Any) -> str:
    """sha256 of the key-sorted JSON: two values get the same digest exactly when upstream's
    `consistent_hash(to_hashable(...))` would agree (both encodings keep 1 and 1.0 apart)."""
    return sha256(json.dumps(value, sort_keys=True).encode("utf-8")).hexdigest()


def _read_json(path: Path) -> Any:
    return read_json(path, "τ-bench", expect=None)


def default_tau_dir() -> Path:
    """Where `dlmpo data fetch tau` writes and tasks read by default."""
    return cache_dir() / "data"


def load_domain(name: str, data_dir: str | Path | None = None) -> Domain:
    """From `data_dir` (holding tau/<name> or <name>); by default from where `dlmpo data fetch tau` writes."""
    if name not in DOMAIN_TOOLS:
        raise UserError(f"Unknown τ-bench domain '{name}': use airline or retail.")
    if data_dir is None:
        data_dir = default_tau_dir()
    base = Path(data_dir).expanduser()
    root = base / name if (base / name).is_dir() else base / "tau" / name
    if not root.is_dir():
        raise UserError(f"No τ-bench {name} domain under {base} (expected {base}/tau/{name} or {base}/{name}); "
                        "run `dlmpo data fetch tau` to download it.")
    for needed in ("policy.md", "tools.json", "db"):
        if not (root / needed).exists():
            raise UserError(f"τ-bench {name} domain at {root} lacks {needed}.")
    tables = {p.stem: _read_json(p) for p in sorted((root / "db").glob("*.json"))}
    schemas = _read_json(root / "tools.json")
    unknown = sorted({s["function"]["name"] for s in schemas} - set(DOMAIN_TOOLS[name]))
    if unknown:
        raise UserError(f"{root / 'tools.json'} names tools dlmpo does not implement: {', '.join(unknown)}.")
    tasks: dict[str, list[TauTask]] = {}
    for split in TASK_SPLITS:
        path = root / f"tasks_{split}.json"
        if path.is_file():
            tasks[split] = [TauTask.from_json(name, split, i, t) for i, t in enumerate(_read_json(path))]
    if not tasks:
        raise UserError(f"τ-bench {name} domain at {root} has no tasks_<split>.json file.")
    return Domain(name, root, read_text(root / "policy.md", "τ-bench policy"), schemas, tasks, tables)
