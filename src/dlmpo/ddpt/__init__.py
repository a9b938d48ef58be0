"""DDPT: diffusion-driven prompt tuning for code generation on white-box causal LMs.

    import dlmpo
    result = dlmpo.ddpt_train(task="humaneval", target="embedded", out="runs/ddpt")
    print(result.test["ddpt"]["nll"], result.test["manual"]["nll"])

docs/ddpt.md describes the method, the stages and every design choice."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from dlmpo.ddpt.config import DDPTConfig

if TYPE_CHECKING:
    from dlmpo.ddpt.run import DDPTResult

__all__ = ["DDPTConfig", "DDPTResult", "DDPTRun", "TrainedSoftPrompt", "ddpt_train"]


def ddpt_train(task: str = "humaneval", target: str = "embedded", out: str | Path = "runs/ddpt", *,
               device: str | None = None, **settings: Any) -> DDPTResult:
    """Train (or resume) a DDPT run and score it on the held-out problems; `settings` are DDPTConfig fields."""
    from dataclasses import fields

    from dlmpo.errors import UserError

    unknown = sorted(set(settings) - {f.name for f in fields(DDPTConfig)})
    if unknown:
        raise UserError(f"dlmpo.ddpt_train got unknown setting(s) {', '.join(unknown)}.")
    from dlmpo.ddpt.run import DDPTRun

    return DDPTRun(DDPTConfig(task=task, target=target, **settings), out, device=device).run()


def __getattr__(name: str):  # torch loads only when a model is needed, not for `dlmpo --help`
    if name in ("DDPTResult", "DDPTRun"):
        import dlmpo.ddpt.run as run

        return getattr(run, name)
    if name == "TrainedSoftPrompt":
        from dlmpo.ddpt.trained import TrainedSoftPrompt

        return TrainedSoftPrompt
    raise AttributeError(name)
