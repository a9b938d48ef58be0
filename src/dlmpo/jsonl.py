"""JSON-lines files of objects, with errors that name the file and the line."""

from __future__ import annotations

import json
from pathlib import Path

from dlmpo.errors import DataError


def read_objects(path: str | Path, what: str = "Data") -> list[tuple[int, dict]]:
    """(line number, object) for every non-empty line."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{what} file {path} does not exist.")
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            raise DataError(f"{path}, line {n}: not valid JSON.") from None
        if not isinstance(obj, dict):
            raise DataError(f"{path}, line {n}: expected a JSON object.")
        rows.append((n, obj))
    return rows
