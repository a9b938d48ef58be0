"""The sandbox: untrusted programs run in a separate, limited process and score 0 when they misbehave."""

import time

import pytest

from dlmpo.code.problems import CodeProblem
from dlmpo.code.sandbox import SandboxLimits, run_program
from dlmpo.code.task import CodeTask
from dlmpo.tasks.base import Example

LIMITS = SandboxLimits(timeout_s=2.0, memory_mb=512)
PROBLEM = CodeProblem("demo/1", 'def add(a, b):\n    """Sum of a and b."""\n', "    return a + b\n",
                      "def check(candidate):\n    assert candidate(2, 3) == 5\n", "add")


def test_a_correct_program_passes():
    result = run_program(PROBLEM.program(PROBLEM.canonical_solution), LIMITS)
    assert result.passed and result.status == "passed"


def test_a_wrong_program_fails():
    result = run_program(PROBLEM.program("    return a - b\n"), LIMITS)
    assert not result.passed and result.status == "failed" and "AssertionError" in result.detail


def test_an_endless_loop_is_killed_at_the_timeout():
    start = time.perf_counter()
    result = run_program(PROBLEM.program("    while True:\n        pass\n"), LIMITS)
    assert not result.passed and result.status == "timeout"
    assert time.perf_counter() - start < LIMITS.timeout_s + 3


def test_a_huge_allocation_fails_under_the_memory_limit():
    result = run_program(PROBLEM.program("    x = bytearray(8 * 2**30)\n    return a + b\n"), LIMITS)
    assert not result.passed and "MemoryError" in result.detail


@pytest.mark.parametrize("opening", [
    "    import socket\n    socket.socket().connect(('127.0.0.1', 9))\n",
    "    import socket\n    socket.create_connection(('example.com', 80))\n",
    "    import _socket\n    _socket.socket()\n",
])
def test_the_unisolated_backend_still_refuses_sockets_in_python(opening):
    limits = SandboxLimits(timeout_s=2.0, memory_mb=512, allow_unisolated=True, backend="unisolated")
    result = run_program(PROBLEM.program(opening + "    return a + b\n"), limits)
    assert not result.passed and "network access is disabled" in result.detail


@pytest.mark.parametrize("opening", [
    "    import socket\n    socket.socket().connect(('127.0.0.1', 9))\n",
    "    import socket\n    socket.create_connection(('example.com', 80))\n",
])
def test_the_isolated_sandbox_has_no_network(opening):
    result = run_program(PROBLEM.program(opening + "    return a + b\n"), LIMITS)
    assert not result.passed and ("Error" in result.detail or "error" in result.detail)


def test_the_unisolated_backend_runs_only_when_opted_in():
    from dlmpo.errors import UserError

    with pytest.raises(UserError, match="--allow-unisolated-code"):
        run_program(PROBLEM.program(PROBLEM.canonical_solution), SandboxLimits(backend="unisolated"))


def test_the_parent_process_is_untouched():
    import socket

    run_program(PROBLEM.program("    import socket\n    socket.socket = None\n    return a + b\n"), LIMITS)
    assert socket.socket is not None and callable(socket.socket)


def test_code_task_grades_chat_answers_with_the_sandbox():
    from dlmpo.code.problems import CodeSplits

    task = CodeTask("demo", CodeSplits("demo", [], [], [PROBLEM]), limits=LIMITS)
    example = task.examples("test")[0]
    assert isinstance(example, Example) and example.id == "demo/1"
    good = "Here it is:\n```python\ndef add(a, b):\n    return a + b\n```"
    assert task.grade(example, good).score == 1.0
    assert task.grade(example, "```python\ndef add(a, b):\n    while True: pass\n```").score == 0.0
    assert task.metrics([example], ["passed"]) == {"pass@1": 1.0}
