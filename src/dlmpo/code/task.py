"""Code tasks (humaneval, mbpp, codealpaca, conala, a .jsonl of problems) behind the Task protocol,
so `dlmpo eval` scores a system prompt on them with any chat target: the answer's code runs with
the problem's tests in the sandbox, and pass@1 is the share that passes."""

from __future__ import annotations

from dataclasses import dataclass

from dlmpo.code.completion import chat_completion
from dlmpo.code.problems import CodeProblem, CodeSplits, load_code_problems
from dlmpo.code.sandbox import SandboxLimits, choose_backend, run_program
from dlmpo.tasks.base import Example, Graded

SEED_PROMPT = "You are an expert Python programmer. Write correct, complete Python code."
USER_TEMPLATE = "Complete this Python function. Reply with the whole function in one ```python block.\n\n```python\n{prompt}```"


@dataclass
class CodeTask:
    name: str
    problems: CodeSplits
    seed_prompt: str = SEED_PROMPT
    labels: list[str] | None = None
    default_answer_tokens: int = 384
    limits: SandboxLimits = SandboxLimits()

    def __post_init__(self) -> None:
        every = self.problems.train + self.problems.val + self.problems.test
        self._by_id = {p.task_id: p for p in every}

    @property
    def notes(self) -> list[str]:
        return self.problems.notes

    def problem(self, example: Example) -> CodeProblem:
        return self._by_id[example.id]

    def examples(self, split: str) -> list[Example]:
        return [Example(p.task_id, {"prompt": p.prompt}, p.canonical_solution) for p in self.problems.get(split)]

    def user_message(self, example: Example) -> str:
        return USER_TEMPLATE.format(prompt=example.inputs["prompt"])

    def grade(self, example: Example, output: str) -> Graded:
        problem = self.problem(example)
        if not problem.has_tests:
            return Graded(None, 0.0, f"{problem.task_id} has no tests: only its NLL can be scored.")
        result = run_program(problem.program(chat_completion(problem, output)), self.limits)
        if result.passed:
            return Graded("passed", 1.0, "The code passes every test.")
        return Graded(result.status, 0.0, f"The code {result.status}: {result.detail}" if result.detail else
                      f"The code {result.status}.")

    def metrics(self, examples: list[Example], predictions: list[str | None]) -> dict[str, float]:
        return {"pass@1": sum(p == "passed" for p in predictions) / len(examples) if examples else 0.0}


def load_code_task(name: str, split_seed: int = 0, allow_unisolated: bool = False) -> CodeTask:
    """A code task; with tests to run and no sandbox allowed here, UserError now, before any model call."""
    problems = load_code_problems(name, split_seed)
    limits = SandboxLimits(allow_unisolated=allow_unisolated)
    if any(p.has_tests for p in problems.train + problems.val + problems.test):
        choose_backend(limits)
    return CodeTask(problems.name, problems, limits=limits)
