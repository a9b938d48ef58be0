"""Human output and progress on the terminal; `--json` keeps stdout for one JSON line."""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from typing import Any, Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


class Output:
    def __init__(self, json_mode: bool = False):
        self.json_mode = json_mode
        # With --json, everything human goes to stderr so the last stdout line is the object.
        self.console = Console(stderr=json_mode, highlight=False, soft_wrap=True)
        self.err = Console(stderr=True, highlight=False, soft_wrap=True)

    def print(self, *args: Any, **kwargs: Any) -> None:
        self.console.print(*args, **kwargs)

    def note(self, text: str) -> None:
        self.err.print(f"[dim]note:[/dim] {text}")

    def emit_json(self, obj: dict[str, Any]) -> None:
        if self.json_mode:
            sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")
            sys.stdout.flush()

    @contextmanager
    def progress(self) -> Iterator[Progress]:
        progress = Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[status]}"),
            console=self.err,
            transient=False,
            disable=not self.err.is_terminal and not _force_progress(),
        )
        with progress:
            yield progress


def _force_progress() -> bool:
    import os

    return os.environ.get("DLMPO_PROGRESS") == "1"
