"""Reading the user's files and checking where results go, with one-sentence errors that name the
file (and the line): a missing file, a folder given as a file, a file that cannot be read, text that
is not UTF-8, JSON that does not parse or holds the wrong type, a torch file that is cut or not ours.
Writing: whole files through a rename (`atomic_write`, `save_torch`), logs one flushed line at a time."""

from __future__ import annotations

import json
import os
import secrets
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from dlmpo.errors import DataError, UserError


def _line_of(data: bytes, offset: int) -> tuple[int, int]:
    """(line, column), 1-based, of a byte offset."""
    before = data[:offset]
    return before.count(b"\n") + 1, offset - (before.rfind(b"\n") + 1) + 1


def check_file(path: str | Path, what: str = "File") -> Path:
    """The path, when it names a file that exists; a DataError otherwise."""
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{what} {path} is a folder, not a file.")
    if not path.is_file():
        raise DataError(f"{what} file {path} does not exist.")
    return path


def read_text(path: str | Path, what: str = "File") -> str:
    """The whole file as UTF-8 text (a BOM is dropped), or one sentence naming the file and line."""
    path = check_file(path, what)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{what} file {path} cannot be read ({exc.strerror or type(exc).__name__}).") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line, column = _line_of(data, exc.start)
        raise DataError(f"{path}, line {line}: not UTF-8 text (byte 0x{data[exc.start]:02x} at column {column}); "
                        "save the file as UTF-8.") from None


def read_lines(path: str | Path, what: str = "File") -> list[str]:
    return read_text(path, what).splitlines()


def read_json(path: str | Path, what: str = "File", expect: type | tuple[type, ...] | None = dict) -> Any:
    """A JSON file's value, checked to be of type `expect` (a dict by default)."""
    text = read_text(path, what)
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}, line {exc.lineno}: not valid JSON ({exc.msg}).") from None
    if expect is not None and not isinstance(value, expect):
        kinds = expect if isinstance(expect, tuple) else (expect,)
        names = " or ".join({dict: "an object", list: "a list"}.get(k, k.__name__) for k in kinds)
        raise DataError(f"{what} file {path} must hold {names} at the top level, not {_json_kind(value)}.")
    return value


def _json_kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null",
            int: "a number", float: "a number"}.get(type(value), type(value).__name__)


def load_torch(path: str | Path, what: str = "File", keys: tuple[str, ...] = (), **kwargs: Any) -> Any:
    """torch.load of a file this library wrote, or one sentence when it is cut, not ours or lacks `keys`."""
    import torch

    path = check_file(path, what)
    try:
        value = torch.load(path, **kwargs)
    except Exception as exc:  # UnpicklingError, EOFError, RuntimeError (zip), ...: the file is damaged
        raise DataError(f"{what} {path} cannot be read ({type(exc).__name__}): it is damaged or not written by "
                        "dlmpo.") from None
    if keys and (not isinstance(value, dict) or any(k not in value for k in keys)):
        raise DataError(f"{what} {path} lacks {', '.join(k for k in keys if not isinstance(value, dict) or k not in value)}: "
                        "it is damaged or not written by dlmpo.")
    return value


def check_out_dir(path: str | Path, what: str = "--out") -> Path:
    """A folder results can be written to: created now (so a mistake shows before any work), never
    an existing file."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{what} {path} is a file: name a folder (it is created when missing).")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"{what} {path} cannot be created ({exc.strerror or type(exc).__name__}).") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise UserError(f"{what} {path} is not writable.")
    return path


def check_out_file(path: str | Path, what: str = "--out") -> Path:
    """A file results can be written to: not a folder, in a folder that exists or can be made."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{what} {path} is a folder: name a file.")
    check_out_dir(path.parent, what)
    if path.exists() and not os.access(path, os.W_OK):
        raise UserError(f"{what} {path} is not writable.")
    return path


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A fresh path beside `path` to write a file or a folder to, moved onto `path` when the block
    ends without error and removed when it fails: a kill never leaves half a file where a whole one
    is expected. Each use has its own name, so concurrent writers of one path never share it."""
    path = Path(path)
    staging = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        yield staging
        os.replace(staging, path)
    finally:
        if staging.is_dir():
            shutil.rmtree(staging, ignore_errors=True)
        else:
            staging.unlink(missing_ok=True)


def atomic_write(path: str | Path, data: str | bytes) -> None:
    """Write a whole file (text as UTF-8) through `atomic_path`."""
    with atomic_path(path) as staging:
        staging.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)


def save_torch(obj: Any, path: str | Path) -> None:
    """torch.save through `atomic_path`: the counterpart of `load_torch`."""
    import torch

    with atomic_path(path) as staging:
        torch.save(obj, staging)


def end_cut_line(path: str | Path) -> bool:
    """A log (JSONL) whose last line was cut (a kill mid-write) is ended with a line break, with a
    warning, so that the next line starts on its own: the cut line stays as it is (readers skip it)
    and every complete line stays readable. Returns True when there was such a cut line."""
    import warnings

    from dlmpo.errors import DlmpoWarning

    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        return False
    with path.open("r+b") as f:
        f.seek(-1, os.SEEK_END)
        if f.read(1) == b"\n":
            return False
        f.seek(0, os.SEEK_END)
        f.write(b"\n")
    warnings.warn(f"{path} ended in a cut line (a run stopped mid-write): it is left as it is, every complete "
                  "line is kept, and the log goes on from the next line.", DlmpoWarning, stacklevel=3)
    return True


def append_line(path: str | Path, line: str) -> bool:
    """Append one line to a log (JSONL), flushed to disk, after ending a cut last line
    (`end_cut_line`). Returns True when there was such a cut line."""
    torn = end_cut_line(path)
    with Path(path).open("ab") as f:
        f.write(line.encode("utf-8") + b"\n")
        f.flush()
        os.fsync(f.fileno())
    return torn


def read_prompt(value: str | None, default: str) -> str:
    """A prompt given as a file path or as literal text. Left out (None): `default`, the task's
    prompt; empty ('' or an empty file): no system prompt, in every command."""
    if value is None:
        return default
    if not value.strip():
        return ""
    path = Path(value)
    try:
        is_file = "\n" not in value and path.is_file()
        is_dir = "\n" not in value and not is_file and path.is_dir()
    except OSError:  # text too long to be a file name: it is the prompt itself
        is_file = is_dir = False
    if is_dir:
        raise UserError(f"Prompt file {path} is a folder: pass a file or the prompt's text.")
    if not is_file and "\n" not in value and len(value) < 256 and path.suffix in (".txt", ".md", ".prompt"):
        raise UserError(f"Prompt file {path} does not exist.")
    return read_text(path, "Prompt").strip() if is_file else value
