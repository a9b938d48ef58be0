"""Code generation problems, a process sandbox that runs them with their tests, and pass@k."""

from dlmpo.code.passk import pass_at_k
from dlmpo.code.problems import CODE_TASK_NAMES, CodeProblem, CodeSplits, is_code_task, load_code_problems
from dlmpo.code.sandbox import SandboxLimits, SandboxResult, run_program, run_programs

__all__ = [
    "CODE_TASK_NAMES", "CodeProblem", "CodeSplits", "SandboxLimits", "SandboxResult", "is_code_task",
    "load_code_problems", "pass_at_k", "run_program", "run_programs",
]
