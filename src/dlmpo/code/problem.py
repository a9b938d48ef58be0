"""One code problem: a prompt, its reference solution and HumanEval-style tests (its own module, so
that the loaders of problems.py and hub.py both build it without importing each other)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CodeProblem:
    task_id: str
    prompt: str
    canonical_solution: str
    test: str = ""
    entry_point: str = ""

    @property
    def has_tests(self) -> bool:
        return bool(self.test.strip() and self.entry_point)

    def program(self, completion: str) -> str:
        """What the sandbox runs: HumanEval's check program for `prompt + completion`."""
        return f"{self.prompt}{completion}\n\n{self.test}\n\ncheck({self.entry_point})\n"
