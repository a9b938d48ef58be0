"""Persistent SQLite cache of chat responses, keyed by model + request + sample index."""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path

from dlmpo.lm.types import ChatResponse


class CallCache:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across a process kill
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS calls (key TEXT PRIMARY KEY, model TEXT, response TEXT NOT NULL, "
            "prompt_tokens INTEGER DEFAULT 0, completion_tokens INTEGER DEFAULT 0)"
        )
        # attempts that reached the backend and failed: a provider may bill them, so budgets count them
        self._db.execute("CREATE TABLE IF NOT EXISTS failed_calls (id INTEGER PRIMARY KEY, model TEXT, error TEXT)")
        # caches written by dlmpo before usage was recorded lack these columns: add them
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(calls)")}
        for column in ("model TEXT", "prompt_tokens INTEGER DEFAULT 0", "completion_tokens INTEGER DEFAULT 0"):
            if column.split()[0] not in columns:
                self._db.execute(f"ALTER TABLE calls ADD COLUMN {column}")
        self._db.commit()

    def get(self, key: str) -> ChatResponse | None:
        with self._lock:
            row = self._db.execute("SELECT response FROM calls WHERE key = ?", (key,)).fetchone()
        return ChatResponse.from_json(json.loads(row[0]), cached=True) if row else None

    def put(self, key: str, model: str, response: ChatResponse) -> None:
        blob = json.dumps(response.to_json(), ensure_ascii=False)
        usage = response.usage
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO calls (key, model, response, prompt_tokens, completion_tokens) "
                "VALUES (?, ?, ?, ?, ?)",
                (key, model, blob, usage.prompt_tokens, usage.completion_tokens),
            )
            self._db.commit()

    def record_failure(self, model: str, error: str) -> None:
        with self._lock:
            self._db.execute("INSERT INTO failed_calls (model, error) VALUES (?, ?)", (model, error[:500]))
            self._db.commit()

    def totals(self, model: str) -> tuple[int, int, int]:
        """(calls, prompt tokens, completion tokens) ever paid for `model` through this cache: answered
        calls and failed attempts (whose tokens are unknown)."""
        with self._lock:
            row = self._db.execute(
                "SELECT COUNT(*), COALESCE(SUM(prompt_tokens), 0), COALESCE(SUM(completion_tokens), 0) "
                "FROM calls WHERE model = ?", (model,)).fetchone()
            failed = self._db.execute("SELECT COUNT(*) FROM failed_calls WHERE model = ?", (model,)).fetchone()
        return int(row[0]) + int(failed[0]), int(row[1]), int(row[2])

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM calls").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()
