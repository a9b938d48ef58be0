"""One episode's database and the tool dispatcher: every call the model makes ends in a string.

Malformed arguments, unknown tools and exceptions inside a tool become tool output that starts
with "Error:" (or "Unknown action"), as upstream returns them, so a bad call never ends a run.

The database is copy-on-write at the record level: an episode starts from shallow copies of the
domain's tables and deep-copies a record (a reservation, an order, a user) just before a write
tool may change it. Every write tool names its record by id, and reaches at most that record's
user besides, so those are the records copied. A fresh environment and its hash cost about a
millisecond instead of ~0.1 s for a full parse and hash of the airline database."""

from __future__ import annotations

import json
from copy import deepcopy
from hashlib import sha256
from typing import Any

from dlmpo.tau.common_tools import TERMINAL_TOOLS
from dlmpo.tau.domain import Action, Domain, record_digest

LINKED = ("reservations", "orders")  # records that name the user a tool may also charge or refund


class Environment:
    def __init__(self, domain: Domain):
        self.domain = domain
        self.db: dict[str, dict[str, Any]] = {t: dict(table) for t, table in domain.pristine.items()}
        self.owned: dict[str, set[str]] = {t: set() for t in self.db}  # records copied out of the pristine db
        self.actions: list[Action] = []  # every call with parsed arguments, in order

    def _own(self, table: str, key: str) -> Any:
        rows = self.db.get(table, {})
        if key not in rows:
            return None
        if key not in self.owned[table]:
            rows[key] = deepcopy(rows[key])
            self.owned[table].add(key)
        return rows[key]

    def _copy_before(self, name: str, arguments: dict[str, Any]) -> None:
        if name not in self.domain.write_tools:
            return
        for value in arguments.values():
            if not isinstance(value, str):
                continue
            for table in (*LINKED, "users"):
                record = self._own(table, value)
                if table in LINKED and isinstance(record, dict) and isinstance(record.get("user_id"), str):
                    self._own("users", record["user_id"])

    def execute(self, name: str, arguments: str | dict[str, Any] | None) -> str:
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments) if arguments.strip() else {}
            except json.JSONDecodeError as exc:
                return f"Error: the arguments are not valid JSON ({exc.msg})"
        arguments = arguments or {}
        if not isinstance(arguments, dict):
            return "Error: the arguments must be a JSON object"
        self.actions.append(Action(name, arguments))
        tool = self.domain.tools.get(name)
        if tool is None:
            return f"Unknown action {name}"
        self._copy_before(name, arguments)
        try:
            return tool(self.db, **arguments)
        except Exception as exc:  # noqa: BLE001 - as upstream: the agent sees the error and may retry
            return f"Error: {exc}"

    def is_terminal(self, name: str) -> bool:
        return name in TERMINAL_TOOLS

    def hash(self) -> str:
        """Equal for two environments exactly when their databases are equal (value types included)."""
        digests = self.domain.pristine_digests
        lines = []
        for t in sorted(self.db):
            rows, pristine, owned = self.db[t], self.domain.pristine[t], self.owned[t]
            for key in sorted(rows):
                same = key not in owned and key in pristine and rows[key] is pristine[key]
                lines.append(f"{t}/{key}:{digests[t][key] if same else record_digest(rows[key])}")
        return sha256("\n".join(lines).encode()).hexdigest()
