"""From model text to the program the sandbox runs.

A white-box model continues the problem's prompt (a completion, cut at the first stop sequence);
a chat model answers with a whole function, usually in a fenced block."""

from __future__ import annotations

import re

from dlmpo.code.problems import CodeProblem

# Codex's stop sequences: a new top-level statement ends the function body.
STOP_SEQUENCES = ("\ndef ", "\nclass ", "\nif __name__", "\nprint(", "\n#", "\nassert ", "\n```")

FENCE = re.compile(r"```[ \t]*(?:python|py)?[ \t]*\n(.*?)(?:```|\Z)", re.DOTALL)


def cut_at_stop(text: str, stops: tuple[str, ...] = STOP_SEQUENCES) -> tuple[str, bool]:
    """The text up to the first stop sequence, and whether one was found. The prompt ends with a
    newline, so a stop at the very start counts too ("```" first is "\n```" in the program)."""
    framed = "\n" + text
    cut = min((i for i in (framed.find(s) for s in stops) if i >= 0), default=-1)
    return (text, False) if cut < 0 else (text[:max(cut - 1, 0)], True)


def chat_completion(problem: CodeProblem, output: str) -> str:
    """What a chat answer adds to the prompt: a redefinition of the whole function (the prompt's
    own def with only its docstring stays valid Python above it), or a body to append."""
    match = FENCE.search(output)
    code = match.group(1) if match else output
    if re.search(rf"^\s*def\s+{re.escape(problem.entry_point or '_')}\s*\(", code, re.MULTILINE):
        return "\n" + code
    return code
