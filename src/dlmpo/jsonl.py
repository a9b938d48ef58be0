"""JSON-lines files of objects, with errors that name the file and the line."""

from __future__ import annotations

import json
from pathlib import Path

from dlmpo.errors import DataError
from dlmpo.files import read_text


def read_objects(path: str | Path, what: str = "Data") -> list[tuple[int, dict]]:
    """(line number, object) for every non-empty line."""
    path = Path(path)
    rows = []
    for n, line in enumerate(read_text(path, what).splitlines(), 1):
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
