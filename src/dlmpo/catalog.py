"""Every task dlmpo knows, by name: built-ins, τ-bench, code problems, and custom task files. It
sits above `tasks`, `tau` and `code`, which never import it."""

from __future__ import annotations

import os
from pathlib import Path

from dlmpo.code.problems import CODE_TASK_NAMES, is_code_task
from dlmpo.errors import UserError
from dlmpo.tasks import Task
from dlmpo.tasks.builtin import BUILTINS, load_builtin
from dlmpo.tasks.custom import load_custom

TAU_NAMES = ("tau-airline", "tau-retail")


def task_names() -> list[str]:
    return sorted(BUILTINS) + list(TAU_NAMES) + list(CODE_TASK_NAMES)


def resolve_data_dir(data_dir: str | Path | None) -> Path | None:
    chosen = data_dir or os.environ.get("DLMPO_DATA_DIR")
    if not chosen:
        return None
    path = Path(chosen).expanduser()
    if not path.is_dir():
        raise UserError(f"Data directory {path} does not exist.")
    return path


def get_task(name: str, data_dir: str | Path | None = None, split_seed: int = 0, *,
             allow_unisolated_code: bool = False) -> Task:
    """`name` is a built-in task or the path of a task config file (.toml/.json/.yaml).
    `allow_unisolated_code`: code tasks may run generated code unisolated where no sandbox isolates."""
    if name in BUILTINS:
        return load_builtin(name, resolve_data_dir(data_dir), split_seed)
    if name in TAU_NAMES:
        from dlmpo.tau.task import load_tau_task

        return load_tau_task(name, resolve_data_dir(data_dir), split_seed)
    if is_code_task(name):
        from dlmpo.code.task import load_code_task

        return load_code_task(name, split_seed, allow_unisolated=allow_unisolated_code)
    if Path(name).suffix.lower() in (".toml", ".json", ".yaml", ".yml"):
        return load_custom(name, split_seed)
    raise UserError(
        f"Unknown task '{name}': use one of {', '.join(task_names())}, a .jsonl of code problems, "
        "or the path of a task config file."
    )
