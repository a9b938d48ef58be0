"""Run directories: what optimize, train and DDPT runs write so that the same command resumes them.
`bind_config` writes a run's settings and refuses, in one sentence, a directory that holds a run
whose identity (the settings that define the result) differs; `EventLog` is the append-only
JSON-lines log; `RunDir` is the directory of an optimizer or DDPT run:

    config.json      the settings (a re-run must match them to resume)
    events.jsonl     append-only log: every evaluation, candidate, decision and stop
    calls.sqlite     every paid target call (the cache that makes resume free)
    best_prompt.txt  the incumbent, rewritten after every round
    result.json      the final result; report.md / report.html / scores.png"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable

from dlmpo.errors import UserError
from dlmpo.files import append_line, atomic_write, check_out_dir, read_json


def bind_config(file: Path, record: dict[str, Any], identity: Callable[[dict], dict], *,
                read: Callable[[Path], dict], what: str = "run") -> bool:
    """Write `record` to the JSON `file`, or, when a run wrote one already (`read` reads it), refuse
    to go on unless both have the same `identity`; the newer record is kept (a continuation with
    more steps, rounds or budget). Returns True when resuming."""
    resuming = file.exists()
    if resuming:
        saved = read(file)
        before, now = identity(saved), identity(record)
        if before != now:
            changed = sorted(k for k in before.keys() | now.keys() if before.get(k) != now.get(k))
            raise UserError(f"{file.parent} holds a {what} with other settings ({', '.join(changed[:4])}): "
                            "use a new --out, or the same settings to resume it.")
        if saved == record:
            return True
    atomic_write(file, json.dumps(record, indent=2))
    return resuming


class EventLog:
    """An append-only JSON-lines log: one event a line with its time, flushed to disk. A line cut by
    a kill is ended before the next one is written (`files.append_line`) and skipped when read."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def append(self, event: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        append_line(self.path, json.dumps({"time": round(time.time(), 3), **event}, ensure_ascii=False))

    def read(self) -> list[dict[str, Any]]:
        if not self.path.is_file():
            return []
        out = []
        for line in self.path.read_bytes().decode("utf-8", errors="replace").splitlines():
            try:
                event = json.loads(line)
            except json.JSONDecodeError:  # a line cut by a kill: the rest of the log is still good
                continue
            if isinstance(event, dict):
                out.append(event)
        return out


class RunDir:
    """Nothing is created on disk until a run binds its settings or logs (a dry run leaves no folder)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.log = EventLog(self.path / "events.jsonl")

    config_file = property(lambda self: self.path / "config.json")
    events_file = property(lambda self: self.log.path)
    calls_db = property(lambda self: self.path / "calls.sqlite")
    best_prompt_file = property(lambda self: self.path / "best_prompt.txt")
    result_file = property(lambda self: self.path / "result.json")

    def bind_config(self, identity: dict[str, Any], full: dict[str, Any]) -> bool:
        """Write config.json, or check a resumed run against it. Returns True when resuming."""
        check_out_dir(self.path, "Run directory")
        return bind_config(self.config_file, {"identity": identity, "settings": full}, lambda c: c["identity"],
                           read=lambda _: self.saved_config())

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
        self.log.append(event)

    def events(self) -> list[dict[str, Any]]:
        return self.log.read()

    def write_best(self, prompt: str) -> None:
        atomic_write(self.best_prompt_file, prompt + "\n")


def default_run_dir(identity: dict) -> Path:
    """runs/<task>-<hash of the settings that define the result>."""
    import hashlib

    digest = hashlib.sha1(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:8]
    return Path("runs") / f"{identity['task'].replace('/', '_').replace('.', '_')}-{digest}"
