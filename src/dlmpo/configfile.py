"""Read a TOML, JSON or YAML file into a dict, with one-sentence errors."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from dlmpo.errors import UserError
from dlmpo.files import read_text

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def read_config_file(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    text = read_text(path, "Config")
    suffix = path.suffix.lower()
    try:
        if suffix == ".toml":
            data = tomllib.loads(text)
        elif suffix == ".json":
            data = json.loads(text)
        elif suffix in (".yaml", ".yml"):
            try:
                import yaml
            except ImportError:
                raise UserError(f"{path} is YAML: `pip install pyyaml`, or use TOML or JSON.") from None
            data = yaml.safe_load(text)
        else:
            raise UserError(f"Config file {path} must end in .toml, .json, .yaml or .yml.")
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"Config file {path} is not valid {suffix[1:].upper()}: {exc}.") from None
    except UserError:
        raise
    except Exception as exc:  # yaml.YAMLError without importing yaml at module level
        raise UserError(f"Config file {path} could not be parsed: {exc}.") from None
    if not isinstance(data, dict):
        raise UserError(f"Config file {path} must hold a table/object at the top level.")
    return data


def describe_validation_error(exc: ValidationError, where: str) -> str:
    first = exc.errors()[0]
    loc = ".".join(str(part) for part in first["loc"]) or "(top level)"
    return f"{where}: '{loc}' {first['msg'].lower()}."
