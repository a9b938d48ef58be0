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
        # attempts sent to a billing provider and not yet answered; one left here when the process
        # was killed mid-call was received (and billed) all the same, so budgets count it, at its
        # upper-bound tokens
        self._db.execute("CREATE TABLE IF NOT EXISTS open_attempts (id INTEGER PRIMARY KEY, model TEXT, "
                         "prompt_tokens INTEGER, completion_tokens INTEGER)")
        # answers to a request already answered by the time they came back (identical requests in
        # flight at once, e.g. τ-bench episodes that open alike): the cache keeps the first answer,
        # but each was paid, so budgets count them
        self._db.execute("CREATE TABLE IF NOT EXISTS repeated_calls (id INTEGER PRIMARY KEY, model TEXT, "
                         "prompt_tokens INTEGER, completion_tokens INTEGER)")
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

    def open_attempt(self, model: str, prompt_tokens: int, completion_tokens: int) -> int:
        """Record an attempt about to be sent; `put` or `record_failure` closes it."""
        with self._lock:
            cursor = self._db.execute("INSERT INTO open_attempts (model, prompt_tokens, completion_tokens) "
                                      "VALUES (?, ?, ?)", (model, prompt_tokens, completion_tokens))
            self._db.commit()
            return int(cursor.lastrowid)

    def put(self, key: str, model: str, response: ChatResponse, attempt: int | None = None) -> None:
        blob = json.dumps(response.to_json(), ensure_ascii=False)
        usage = response.usage
        tokens = (usage.prompt_tokens, usage.completion_tokens)
        with self._lock:
            cursor = self._db.execute(
                "INSERT OR IGNORE INTO calls (key, model, response, prompt_tokens, completion_tokens) "
                "VALUES (?, ?, ?, ?, ?)",
                (key, model, blob, *tokens),
            )
            if cursor.rowcount == 0:  # answered already: the first answer stays, this paid call is counted
                self._db.execute("INSERT INTO repeated_calls (model, prompt_tokens, completion_tokens) "
                                 "VALUES (?, ?, ?)", (model, *tokens))
            self._close_attempt(attempt)
            self._db.commit()

    def record_failure(self, model: str, error: str, attempt: int | None = None) -> None:
        with self._lock:
            self._db.execute("INSERT INTO failed_calls (model, error) VALUES (?, ?)", (model, error[:500]))
            self._close_attempt(attempt)
            self._db.commit()

    def _close_attempt(self, attempt: int | None) -> None:
        if attempt is not None:
            self._db.execute("DELETE FROM open_attempts WHERE id = ?", (attempt,))

    def totals(self, model: str) -> tuple[int, int, int]:
        """(calls, prompt tokens, completion tokens) ever paid for `model` through this cache: answered
        calls (repeated answers included), failed attempts (whose tokens are unknown) and attempts a
        killed process left open (at their upper-bound tokens). Read before this process opens
        attempts of its own."""
        total = "SELECT COUNT(*), COALESCE(SUM(prompt_tokens), 0), COALESCE(SUM(completion_tokens), 0) FROM {} WHERE model = ?"
        with self._lock:
            rows = [self._db.execute(total.format(table), (model,)).fetchone()
                    for table in ("calls", "repeated_calls", "open_attempts")]
            failed = self._db.execute("SELECT COUNT(*) FROM failed_calls WHERE model = ?", (model,)).fetchone()
        return (sum(int(r[0]) for r in rows) + int(failed[0]), sum(int(r[1]) for r in rows),
                sum(int(r[2]) for r in rows))

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM calls").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()


def paid_calls(path: str | Path) -> int:
    """Calls a run's cache counts as paid, every model together (what `totals` adds up), read
    without writing: another process may be running the run. 0 for a cache not yet made."""
    if not Path(path).is_file():
        return 0
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        return sum(_count(db, table) for table in ("calls", "repeated_calls", "open_attempts", "failed_calls"))
    finally:
        db.close()


def _count(db: sqlite3.Connection, table: str) -> int:
    try:
        return db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
    except sqlite3.OperationalError:  # made, this table not yet written (or by a dlmpo without it)
        return 0
