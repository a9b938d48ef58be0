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
from dlmpo.tau.airline_tools import AIRLINE_TOOLS
from dlmpo.tau.retail_tools import RETAIL_TOOLS

DOMAIN_TOOLS: dict[str, dict[str, Callable[..., str]]] = {"airline": AIRLINE_TOOLS, "retail": RETAIL_TOOLS}
# the tables each tool may change; every other table stays as loaded (tests check this on every gold action)
MUTATES: dict[str, dict[str, frozenset[str]]] = {
    "airline": {
        "book_reservation": frozenset({"reservations", "users"}),
        "cancel_reservation": frozenset({"reservations"}),
        "send_certificate": frozenset({"users"}),
        "update_reservation_baggages": frozenset({"reservations", "users"}),
        "update_reservation_flights": frozenset({"reservations", "users"}),
        "update_reservation_passengers": frozenset({"reservations"}),
    },
    "retail": {
        "cancel_pending_order": frozenset({"orders", "users"}),
        "exchange_delivered_order_items": frozenset({"orders"}),
        "modify_pending_order_address": frozenset({"orders"}),
        "modify_pending_order_items": frozenset({"orders", "users"}),
        "modify_pending_order_payment": frozenset({"orders", "users"}),
        "modify_user_address": frozenset({"users"}),
        "return_delivered_order_items": frozenset({"orders"}),
    },
}
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


@dataclass
class Domain:
    name: str
    root: Path
    policy: str
    tool_schemas: list[dict[str, Any]]
    tasks: dict[str, list[TauTask]]
    _tables: dict[str, str] = field(repr=False, default_factory=dict)

    @property
    def tools(self) -> dict[str, Callable[..., str]]:
        return DOMAIN_TOOLS[self.name]

    @property
    def mutates(self) -> dict[str, frozenset[str]]:
        return MUTATES[self.name]

    @cached_property
    def mutable_tables(self) -> frozenset[str]:
        return frozenset().union(*self.mutates.values())

    @cached_property
    def pristine(self) -> dict[str, dict[str, Any]]:
        """The initial database, parsed once. Environments share its records until they change one,
        so these objects must never be mutated (Environment copies a record before a tool can touch it)."""
        return {t: json.loads(text) for t, text in self._tables.items()}

    @cached_property
    def pristine_digests(self) -> dict[str, dict[str, str]]:
        """Per table, the digest of every initial record (read-only tables: of the whole table)."""
        return {t: {k: record_digest(v) for k, v in table.items()} if t in self.mutable_tables
                else {"*": record_digest(table)} for t, table in self.pristine.items()}


def record_digest(value: Any) -> str:
    """sha256 of the key-sorted JSON: two values get the same digest exactly when upstream's
    `consistent_hash(to_hashable(...))` would agree (both encodings keep 1 and 1.0 apart)."""
    return sha256(json.dumps(value, sort_keys=True).encode("utf-8")).hexdigest()


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise UserError(f"{path} is not valid JSON ({exc.msg}, line {exc.lineno}).") from None


def load_domain(name: str, data_dir: str | Path) -> Domain:
    if name not in DOMAIN_TOOLS:
        raise UserError(f"Unknown τ-bench domain '{name}': use airline or retail.")
    base = Path(data_dir).expanduser()
    root = base / name if (base / name).is_dir() else base / "tau" / name
    if not root.is_dir():
        raise UserError(f"No τ-bench {name} domain under {base} (expected {base}/tau/{name} or {base}/{name}); "
                        "run `dlmpo data fetch tau` to download it.")
    for needed in ("policy.md", "tools.json", "db"):
        if not (root / needed).exists():
            raise UserError(f"τ-bench {name} domain at {root} lacks {needed}.")
    tables = {p.stem: p.read_text(encoding="utf-8") for p in sorted((root / "db").glob("*.json"))}
    schemas = _read_json(root / "tools.json")
    unknown = sorted({s["function"]["name"] for s in schemas} - set(DOMAIN_TOOLS[name]))
    if unknown:
        raise UserError(f"{root / 'tools.json'} names tools dlmpo does not implement: {', '.join(unknown)}.")
    tasks: dict[str, list[TauTask]] = {}
    for split in TASK_SPLITS:
        path = root / f"tasks_{split}.json"
        if path.is_file():
            tasks[split] = [
                TauTask(name, split, i, t["user_id"], t["instruction"],
                        tuple(Action(a["name"], a.get("kwargs", {})) for a in t["actions"]),
                        tuple(str(o) for o in t.get("outputs", [])))
                for i, t in enumerate(_read_json(path))
            ]
    if not tasks:
        raise UserError(f"τ-bench {name} domain at {root} has no tasks_<split>.json file.")
    return Domain(name, root, (root / "policy.md").read_text(encoding="utf-8"), schemas, tasks, tables)
