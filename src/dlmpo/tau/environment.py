"""One episode's database and the tool dispatcher: every call the model makes ends in a string.

Malformed arguments, unknown tools and exceptions inside a tool become tool output that starts
with "Error:" (or "Unknown action"), as upstream returns them, so a bad call never ends a run."""

from __future__ import annotations

import json
from hashlib import sha256
from typing import Any

from dlmpo.tau.common_tools import TERMINAL_TOOLS
from dlmpo.tau.domain import Action, Domain, table_digest


class Environment:
    def __init__(self, domain: Domain):
        self.domain = domain
        self.db = domain.fresh_db()
        self.actions: list[Action] = []
        self.dirty: set[str] = set()  # tables a tool may have changed

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
        self.dirty |= self.domain.mutates.get(name, frozenset())
        try:
            return tool(self.db, **arguments)
        except Exception as exc:  # noqa: BLE001 - as upstream: the agent sees the error and may retry
            return f"Error: {exc}"

    def is_terminal(self, name: str) -> bool:
        return name in TERMINAL_TOOLS

    def hash(self) -> str:
        """Equal for two environments exactly when their databases are equal (types included)."""
        digests = self.domain.pristine_digests
        parts = [f"{t}:{table_digest(self.db[t]) if t in self.dirty else digests[t]}" for t in sorted(self.db)]
        return sha256("\n".join(parts).encode()).hexdigest()
