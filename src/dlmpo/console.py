"""Human output and progress bars on the terminal; `--json` keeps stdout for one JSON line; a
command's failures as one line (`run_command`)."""

from __future__ import annotations

import json
import sys
import warnings
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


class Bars:
    """Progress callbacks (what, done, total, status) on rich bars: one bar per `what`, or with
    `one` a single bar whose description follows `what`. done=None advances by one."""

    def __init__(self, progress, one: bool = False):
        self.progress, self.one, self.bars = progress, one, {}

    def __call__(self, what: str, done: int | None, total: int | None, status: str = "") -> None:
        key = "" if self.one else what
        if key not in self.bars:
            self.bars[key] = self.progress.add_task(what, total=total, status="")
        update: dict[str, Any] = {"description": what, "status": status}
        update.update({"advance": 1} if done is None else {"completed": done, "total": total})
        self.progress.update(self.bars[key], **update)


def run_command(command, argv: list[str] | None = None) -> None:
    """Run a click command. Every user mistake, ours (UserError) or a usage error click finds, is
    one `error: ...` line on stderr and exit code 2; never a traceback. dlmpo's warnings are one
    `warning: ...` line."""
    try:  # typer >= 0.26 runs its own copy of click
        from typer._click import exceptions as click
    except ImportError:  # pragma: no cover
        from click import exceptions as click

    from dlmpo.errors import RunsFailed, UserError
    from dlmpo.printing import one_line, show_warning

    warnings.showwarning = show_warning
    try:
        rv = command.main(args=argv, prog_name="dlmpo", standalone_mode=False)
    except UserError as exc:
        print(f"error: {one_line(str(exc))}", file=sys.stderr)
        sys.exit(2)
    except RunsFailed as exc:  # not the user's mistake, but one sentence all the same
        print(f"error: {one_line(str(exc))}", file=sys.stderr)
        sys.exit(1)
    except click.NoArgsIsHelpError as exc:  # `dlmpo`, `dlmpo tau`: the help, as before
        exc.show()
        sys.exit(2)
    except click.ClickException as exc:  # a bad option or value: click's message, on one line
        hint = f" (see `{exc.ctx.command_path} --help`)" if getattr(exc, "ctx", None) is not None else ""
        print(f"error: {one_line(exc.format_message()).rstrip('.')}{hint}.", file=sys.stderr)
        sys.exit(2)
    except getattr(click, "Abort", ()):  # absent from typer's own click
        print("aborted", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("interrupted: re-run the same command to resume", file=sys.stderr)
        sys.exit(130)
    if isinstance(rv, int) and not isinstance(rv, bool):  # --help, or a command's exit code
        sys.exit(rv)
