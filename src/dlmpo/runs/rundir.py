"""The run directory: everything needed to resume and to audit a run.

    config.json      the settings (a re-run must match them to resume)
    events.jsonl     append-only log: every evaluation, candidate, decision and stop
    calls.sqlite     every paid target call (the cache that makes resume free)
    best_prompt.txt  the incumbent, rewritten after every round
    result.json      the final result; report.md / report.html / scores.png"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from dlmpo.errors import UserError
from dlmpo.files import append_line, atomic_write, check_out_dir, read_json


class RunDir:
    """Nothing is created on disk until a run binds its settings or logs (a dry run leaves no folder)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    config_file = property(lambda self: self.path / "config.json")
    events_file = property(lambda self: self.path / "events.jsonl")
    calls_db = property(lambda self: self.path / "calls.sqlite")
    best_prompt_file = property(lambda self: self.path / "best_prompt.txt")
    result_file = property(lambda self: self.path / "result.json")

    def bind_config(self, identity: dict[str, Any], full: dict[str, Any]) -> bool:
        """Write config.json, or check a resumed run against it. Returns True when resuming."""
        check_out_dir(self.path, "Run directory")
        if self.config_file.exists():
            saved = self.saved_config()
            if saved.get("identity") != identity:
                changed = sorted(k for k in identity if saved.get("identity", {}).get(k) != identity[k])
                raise UserError(
                    f"{self.path} holds a run with other settings ({', '.join(changed[:4])}): "
                    "use a new --out, or the same settings to resume it."
                )
            if saved.get("settings") != full:  # a continuation with more rounds or budget
                atomic_write(self.config_file, json.dumps({"identity": identity, "settings": full}, indent=2))
            return True
        atomic_write(self.config_file, json.dumps({"identity": identity, "settings": full}, indent=2))
        return False

    def saved_config(self) -> dict[str, Any]:
        """config.json, checked: an object with the 'identity' and 'settings' objects dlmpo writes."""
        try:
            saved = read_json(self.config_file, "Run config")
        except UserError as exc:
            raise UserError(f"The run's config.json is damaged ({str(exc).rstrip('.')}): restore it, "
                            "or use a new --out.") from None
        if not all(isinstance(saved.get(k), dict) for k in ("identity", "settings")):
            raise UserError(f"{self.config_file} is not a run config of dlmpo (it lacks 'identity' or 'settings'): "
                            "restore it, or use a new --out.")
        return saved

    def append(self, event: dict[str, Any]) -> None:
        line = json.dumps({"time": round(time.time(), 3), **event}, ensure_ascii=False)
        self.path.mkdir(parents=True, exist_ok=True)
        append_line(self.events_file, line)

    def events(self) -> list[dict[str, Any]]:
        if not self.events_file.is_file():
            return []
        out = []
        for line in self.events_file.read_bytes().decode("utf-8", errors="replace").splitlines():
            try:
                event = json.loads(line)
            except json.JSONDecodeError:  # a line cut by a kill: the rest of the log is still good
                continue
            if isinstance(event, dict):
                out.append(event)
        return out

    def write_best(self, prompt: str) -> None:
        atomic_write(self.best_prompt_file, prompt + "\n")


def default_run_dir(identity: dict) -> Path:
    """runs/<task>-<hash of the settings that define the result>."""
    import hashlib

    digest = hashlib.sha1(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:8]
    return Path("runs") / f"{identity['task'].replace('/', '_').replace('.', '_')}-{digest}"
