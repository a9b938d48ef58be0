"""dlmpo: optimize the system prompt of a frozen LLM with a masked diffusion language model.

    import dlmpo
    result = dlmpo.optimize(task="sst2", target="embedded", dlm="tiny-random:dream",
                            data_dir="../shared/data", rounds=2, out="runs/demo")
    print(result.test, result.best_prompt)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__version__ = "0.1.0"


def optimize(task: str = "sst2", target: str = "embedded", dlm: str | None = None, *,
             out: str | Path | None = None, mlflow: str | None = None, **settings: Any):
    """Run the DLM prompt optimizer and write its run directory and report. Returns an
    `OptimizeResult` (`.to_json()`, `OptimizeResult.load(run_dir)`). `mlflow`: a tracking URI the
    run is also logged to (pip install 'dlmpo[mlflow]')."""
    from pydantic import ValidationError

    from dlmpo.api import run_optimizer
    from dlmpo.configfile import describe_validation_error
    from dlmpo.errors import UserError
    from dlmpo.optimizer import DEFAULT_DLM, OptimizeSettings

    try:
        s = OptimizeSettings(task=task, target=target, dlm=dlm or DEFAULT_DLM, **settings)
    except ValidationError as exc:
        raise UserError(describe_validation_error(exc, "dlmpo.optimize")) from None
    return run_optimizer(s, out, mlflow=mlflow)


def __getattr__(name: str):
    if name in ("OptimizeResult", "OptimizeSettings", "Optimizer"):
        import dlmpo.optimizer as _opt

        return getattr(_opt, name)
    if name in ("ddpt_train", "DDPTConfig", "DDPTResult"):
        import dlmpo.ddpt as _ddpt

        return getattr(_ddpt, name)
    if name == "infill":
        from dlmpo.dlm import infill

        return infill
    raise AttributeError(name)
