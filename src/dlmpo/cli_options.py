"""What the commands share: options generated from settings models, progress bars, the event printer."""

from __future__ import annotations

import dataclasses
import inspect
import types
import typing
from typing import Any, Literal, Optional, Union

import typer

from dlmpo.console import Output

JSON_OPT = typer.Option(False, "--json", help="Print one machine-readable JSON object as the last line.")
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


def with_options(model, *, overrides: bool = False, only=None, skip=(), help: dict[str, str] | None = None):
    """Add one option per field of `model` to a command that takes them as **kwargs. With
    `overrides`, every option defaults to None (left out: the config file's or the model's value)
    and its help names the model's default."""

    def wrap(fn):
        sig = inspect.signature(fn)
        params = [p for p in sig.parameters.values() if p.kind is not p.VAR_KEYWORD]
        for name, kind, default, text in _fields(model, help or {}):
            if (only is not None and name not in only) or name in skip:
                continue
            flag = "--" + name.replace("_", "-")
            if overrides:
                shown = "none" if default is None else default
                text = _sentence(text) + ("" if "[default:" in text else f" [default: {shown}]")
                option = typer.Option(None, flag, help=text)
                params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option,
                                                annotation=Optional[_plain(kind)]))
            else:
                option = typer.Option(default, flag, help=_sentence(text) if text else None)
                plain = _plain(kind)
                params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option,
                                                annotation=Optional[plain] if default is None else plain))
        fn.__signature__ = sig.replace(parameters=params)
        return fn

    return wrap


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


def event_printer(ui: Output):
    """The optimizer's typed events as lines on the terminal."""
    from rich.markup import escape

    from dlmpo.optimizer.events import CandidateScored, Decision, Eval, Event, RoundEnd, RunStart, Stop

    def show(e: Event) -> None:
        if isinstance(e, RunStart):
            est = e.estimate
            ui.print(("resuming: rounds done " + str(e.completed_rounds) + "\n" if e.resume else "")
                     + f"estimate (no cache hits, full batches): {est['calls']} target calls, "
                     f"~{est['prompt_tokens'] + est['completion_tokens']} tokens, ~${est['cost_usd']:.4f}")
            if e.val_warning:
                ui.note(e.val_warning)
        elif isinstance(e, Eval) and e.which in ("seed", "best"):
            ui.print(f"{e.which} prompt on {e.split}: {e.score:.4f} (n={e.n}, parse failures {e.parse_failures})")
        elif isinstance(e, Eval) and e.which == "traces":
            ui.print(f"[bold]round {e.round}[/bold]: incumbent on {e.n} train examples {e.score:.3f}")
        elif isinstance(e, CandidateScored):
            c = e.candidate
            if c.rejected:
                ui.print(f"  candidate {c.index} \\[{c.strategy}] rejected: {escape(c.rejected)}")
            else:
                drawn = f", drawn {c.draws}x" if c.draws > 1 else ""
                ui.print(f"  candidate {c.index} \\[{c.strategy}] screening {c.minibatch:.3f} "
                         f"(+{c.wins}/-{c.losses} vs incumbent), {c.nfe} DLM forwards {c.dlm_seconds:.1f}s{drawn}")
        elif isinstance(e, Decision):
            v, verdict = e.verdict, "accepted" if e.accepted else "kept incumbent"
            if v.dropped:
                ui.print(f"  challenger {e.index} on the first {v.scored} val examples {e.val:.4f} "
                         f"(+{v.wins}/-{v.losses}): not ahead, dropped; {verdict}")
            else:
                second = (f" with {v.confirmed_on} confirmation examples (first look p {v.first_p:.3g})"
                          if v.first_p is not None else "")
                ui.print(f"  challenger {e.index} on val {e.val:.4f} vs {e.incumbent_val:.4f} "
                         f"(+{v.wins}/-{v.losses}{second}, sign test p {v.p_value:.3g} vs {v.level:.3g}): {verdict}")
        elif isinstance(e, RoundEnd):
            sp = e.spend
            ui.print(f"  best val {e.best_val:.4f} | spent {sp['calls']} calls, {sp['total_tokens']} tokens, ${sp['cost_usd']:.4f}")
        elif isinstance(e, Stop) and e.reason != "rounds":
            ui.print(f"stopped early: {e.reason}")

    return show
