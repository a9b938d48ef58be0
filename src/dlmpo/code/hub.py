"""MBPP, CodeAlpaca and CoNaLa from the Hugging Face hub, converted to HumanEval's shape.

MBPP keeps its assertions as a check() function; CodeAlpaca and CoNaLa have no tests, so only
the NLL of their reference solutions can be scored."""

from __future__ import annotations

import re
from typing import Callable

from dlmpo.code.problem import CodeProblem
from dlmpo.errors import DataError, UserError


def _mbpp(row: dict, split: str, i: int) -> CodeProblem | None:
    asserts = list(row.get("test_list") or [])
    match = re.match(r"\s*assert\s+(?:not\s+)?\(?\s*([A-Za-z_]\w*)\s*\(", asserts[0]) if asserts else None
    if match is None:
        return None
    shown = "\n".join(asserts[:1])
    prompt = f'"""\n{row["text"].strip()}\n{shown}\n"""\n'
    body = "\n".join(f"    {a}" for a in asserts)
    test = f"{row.get('test_setup_code') or ''}\n\ndef check(candidate):\n{body}\n"
    return CodeProblem(f"mbpp/{row['task_id']}", prompt, row["code"], test, match.group(1))


def _codealpaca(row: dict, split: str, i: int) -> CodeProblem | None:
    given = f"# Input: {row['input'].strip()}\n" if (row.get("input") or "").strip() else ""
    return CodeProblem(f"codealpaca/{split}/{i}", f"# {row['instruction'].strip()}\n{given}", row["output"])


def _conala(row: dict, split: str, i: int) -> CodeProblem | None:
    intent = (row.get("rewritten_intent") or row.get("intent") or "").strip()
    if not intent or not row.get("snippet"):
        return None
    return CodeProblem(f"conala/{split}/{i}", f"# {intent}\n", row["snippet"])


HUB: dict[str, tuple[str, str | None, Callable[[dict, str, int], CodeProblem | None]]] = {
    "mbpp": ("google-research-datasets/mbpp", "full", _mbpp),
    "codealpaca": ("sahil2801/CodeAlpaca-20k", None, _codealpaca),
    "conala": ("neulab/conala", "curated", _conala),
}


def load_hub_problems(name: str) -> dict[str, list[CodeProblem]]:
    repo, config, convert = HUB[name]
    try:
        import datasets
    except ImportError:
        raise UserError(f"Task '{name}' loads from the Hugging Face hub: `pip install datasets` (and be online), "
                        "or use humaneval or a .jsonl file of problems.") from None
    try:
        ds = datasets.load_dataset(repo, config)
    except Exception as exc:  # offline, moved or gated: one sentence
        raise DataError(f"Could not load {repo} from the Hugging Face hub ({type(exc).__name__}); "
                        "use humaneval or a .jsonl file of problems offline.") from None
    out: dict[str, list[CodeProblem]] = {}
    for split in ("train", "validation", "test"):
        if split in ds:
            rows = [convert(row, split, i) for i, row in enumerate(ds[split])]
            out[split] = [p for p in rows if p is not None]
    return out
