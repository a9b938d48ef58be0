"""What the commands share: options generated from settings models (each default and help text
lives once, next to the setting), and the options several commands share."""

from __future__ import annotations

import dataclasses
import inspect
import types
import typing
from typing import Literal, Optional, Union

import typer

JSON_OPT = typer.Option(False, "--json", help="Print one machine-readable JSON object as the last line.")
SET_OPT = typer.Option(None, "--set", help="Any other optimize setting, as key=value (repeatable).")
CONFIG_OPT = typer.Option(None, help="TOML/JSON/YAML file of settings (flags override it).")
RAY_OPT = typer.Option(None, "--ray", metavar="local|auto|ADDRESS",
                       help="Run each run as a Ray task (pip install 'dlmpo[ray]'): local starts a cluster on this "
                            "machine, auto joins the one `ray start` runs here, or the head's address (docs/scale.md).")
UNISOLATED_OPT = typer.Option(False, "--allow-unisolated-code",
                              help="Code tasks: run generated code without isolation where no sandbox (bwrap) isolates it.")


def _fields(model, help: dict[str, str]):
    """(name, type, default, help) of a pydantic model's or a dataclass's fields."""
    if hasattr(model, "model_fields"):
        for name, f in model.model_fields.items():
            yield name, f.annotation, ... if f.is_required() else f.default, f.description or ""
        return
    hints = typing.get_type_hints(model)
    for f in dataclasses.fields(model):
        yield f.name, hints[f.name], ... if f.default is dataclasses.MISSING else f.default, help.get(f.name, "")


def _plain(kind):
    if typing.get_origin(kind) is Literal:
        return str
    if typing.get_origin(kind) in (Union, types.UnionType):
        return _plain(next(a for a in typing.get_args(kind) if a is not type(None)))
    return kind


def _sentence(text: str) -> str:
    return text if text.endswith((".", "]", ")")) else text + "."


def with_options(model, *, overrides: bool = False, only=None, skip=(), help: dict[str, str] | None = None,
                 extra: dict[str, dict] | None = None):
    """Add one option per field of `model` to a command that takes them as **kwargs. With
    `overrides`, every option defaults to None (left out: the config file's or the model's value)
    and its help names the model's default. `extra`: more typer.Option arguments by field (min=1)."""

    def wrap(fn):
        sig = inspect.signature(fn)
        params = [p for p in sig.parameters.values() if p.kind is not p.VAR_KEYWORD]
        for name, kind, default, text in _fields(model, help or {}):
            if (only is not None and name not in only) or name in skip:
                continue
            flag = "--" + name.replace("_", "-")
            if _plain(kind) is bool:  # a switch both ways: a default of True must be able to go off
                flag = f"{flag}/--no-{flag[2:]}"
            if overrides:
                shown = "none" if default is None else default
                text = _sentence(text) + ("" if "[default:" in text else f" [default: {shown}]")
                option = typer.Option(None, flag, help=text)
                params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option,
                                                annotation=Optional[_plain(kind)]))
            else:
                option = typer.Option(default, flag, help=_sentence(text) if text else None, **(extra or {}).get(name, {}))
                plain = _plain(kind)
                params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option,
                                                annotation=Optional[plain] if default is None else plain))
        fn.__signature__ = sig.replace(parameters=params)
        return fn

    return wrap
