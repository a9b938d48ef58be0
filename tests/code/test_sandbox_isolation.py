"""Hostile programs graded through `CodeTask.grade`, as the project calls it: each escape the old
sandbox allowed is blocked by the bwrap sandbox. bubblewrap must be installed (the README's set-up
line installs it): without it these tests fail, they never skip."""

import os
import shutil
import sys
from pathlib import Path

import pytest

from dlmpo.code.sandbox import SandboxLimits, choose_backend, run_program, scrub
from dlmpo.errors import UserError
from tests.support.hostile_programs import ATTACKS, PROBLEM, SECRET, Arena, grade

LIMITS = SandboxLimits(timeout_s=5.0, memory_mb=1024, disk_mb=64, processes=64)


@pytest.fixture(scope="module")
def arena():
    if shutil.which("bwrap") is None:
        pytest.fail("bubblewrap is not installed: run the README's set-up line (apt-get install -y bubblewrap).",
                    pytrace=False)
    try:
        backend = choose_backend(LIMITS)
    except UserError as e:
        pytest.fail(f"No isolating sandbox here: {e}", pytrace=False)
    assert backend.name == "bwrap" and backend.isolating
    a = Arena()
    yield a
    a.close()


@pytest.mark.parametrize("attack", ATTACKS, ids=[a.name for a in ATTACKS])
def test_the_attack_is_blocked(arena, attack):
    outcome = grade(attack, arena, LIMITS)
    assert outcome.blocked, f"{attack.name}: {outcome.evidence} (feedback {outcome.feedback!r})"
    assert SECRET not in outcome.feedback
    assert arena.victim.poll() is None, "a host process was killed"


def test_a_plain_program_still_passes_and_fails_as_before(arena):
    assert run_program(PROBLEM.program(PROBLEM.canonical_solution), LIMITS).passed
    wrong = run_program(PROBLEM.program("    return a - b\n"), LIMITS)
    assert not wrong.passed and "AssertionError" in wrong.detail
    huge = run_program(PROBLEM.program("    x = bytearray(8 * 2**30)\n    return a + b\n"), LIMITS)
    assert not huge.passed and "MemoryError" in huge.detail


def test_the_child_sees_no_environment_and_no_host_paths(arena):
    # a virtual environment under /tmp (CI's) is bound read-only at its own path: the interpreter
    interpreter = sorted({Path(p).parts[2] for p in (sys.prefix, sys.base_prefix) if p.startswith("/tmp/")})
    program = ("import os, sys\n"
               "assert set(os.environ) <= {'PATH', 'LANG', 'HOME', 'PWD', 'LC_CTYPE'}, sorted(os.environ)\n"
               "assert os.getcwd() == '/tmp' and sorted(os.listdir('/tmp')) == sorted(['program.py', *"
               + repr(interpreter) + "]), os.listdir('/tmp')\n"
               "assert os.getuid() != 0 and os.getpid() < 10, (os.getuid(), os.getpid())\n"
               "assert not os.path.exists(" + repr(os.getcwd()) + ")\n")
    result = run_program(program, LIMITS)
    assert result.passed, result.detail


def test_feedback_is_short_and_scrubbed(arena):
    assert scrub(f"key {SECRET} here") == "key [redacted] here"
    result = run_program("raise RuntimeError('x' * 5000)", LIMITS)
    assert len(result.detail) <= 200


def test_no_isolating_backend_refuses_unless_opted_in(monkeypatch):
    from dlmpo.code import sandbox

    monkeypatch.setattr(sandbox.BACKENDS["bwrap"], "unavailable", lambda: "bwrap missing (test)")
    monkeypatch.delenv(sandbox.OPT_IN_ENV, raising=False)
    with pytest.raises(UserError, match="--allow-unisolated-code"):
        run_program(PROBLEM.program(PROBLEM.canonical_solution), LIMITS)
    opted = SandboxLimits(timeout_s=5.0, allow_unisolated=True)
    assert choose_backend(opted).name == "unisolated"
    assert run_program(PROBLEM.program(PROBLEM.canonical_solution), opted).passed
    monkeypatch.setenv(sandbox.OPT_IN_ENV, "1")
    assert choose_backend(LIMITS).name == "unisolated"
    assert os.environ[sandbox.OPT_IN_ENV] == "1"


def test_ddpt_refuses_before_training_and_its_opt_in_stays_its_own(monkeypatch, tmp_path):
    from dlmpo.code import sandbox
    from dlmpo.ddpt.config import DDPTConfig
    from dlmpo.ddpt.run import DDPTRun

    monkeypatch.setattr(sandbox.BACKENDS["bwrap"], "unavailable", lambda: "bwrap missing (test)")
    monkeypatch.delenv(sandbox.OPT_IN_ENV, raising=False)
    with pytest.raises(UserError, match="--allow-unisolated-code"):
        DDPTRun(DDPTConfig(), tmp_path / "a")
    assert DDPTRun(DDPTConfig(), tmp_path / "b", allow_unisolated=True).limits.allow_unisolated
    assert sandbox.OPT_IN_ENV not in os.environ  # the opt-in of one run does not leak into the process
    with pytest.raises(UserError, match="--allow-unisolated-code"):
        choose_backend(LIMITS)


def test_the_opt_in_reaches_code_tasks_from_the_api_settings_and_cli(tmp_path):
    import json

    from typer.testing import CliRunner

    from dlmpo.catalog import get_task
    from dlmpo.cli import app
    from dlmpo.optimizer.settings import OptimizeSettings, load_settings

    problems = tmp_path / "p.jsonl"
    problems.write_text(json.dumps({"task_id": "p/1", "prompt": PROBLEM.prompt, "canonical_solution": "    return a + b\n",
                                    "test": PROBLEM.test, "entry_point": "add"}) + "\n")
    assert get_task(str(problems)).limits.allow_unisolated is False
    assert get_task(str(problems), allow_unisolated_code=True).limits.allow_unisolated is True
    assert load_settings(None, {"allow_unisolated_code": None}).allow_unisolated_code is False
    assert OptimizeSettings(allow_unisolated_code=True).identity() == OptimizeSettings().identity()
    for command in (["eval"], ["optimize"], ["ddpt", "train"]):
        result = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "200", "NO_COLOR": "1"})
        assert "--allow-unisolated-code" in result.output, command


def test_eval_on_a_code_task_refuses_at_once_without_isolation(tmp_path, monkeypatch, capsys):
    import json

    from dlmpo.cli import main
    from dlmpo.code import sandbox

    monkeypatch.setattr(sandbox.BACKENDS["bwrap"], "unavailable", lambda: "bwrap missing (test)")
    monkeypatch.delenv(sandbox.OPT_IN_ENV, raising=False)
    problems = tmp_path / "p.jsonl"
    problems.write_text(json.dumps({"task_id": "p/1", "prompt": PROBLEM.prompt, "canonical_solution": "    return a + b\n",
                                    "test": PROBLEM.test, "entry_point": "add"}) + "\n")
    with pytest.raises(SystemExit) as exit_:
        main(["eval", "--task", str(problems), "--target", "embedded"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "--allow-unisolated-code" in err and "Traceback" not in err


def test_humaneval_canonical_solutions_all_pass_in_the_isolated_sandbox(arena):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    from humaneval_sandbox import canonical_results

    ids, statuses, _ = canonical_results("bwrap")
    assert len(ids) == 164 and [i for i, s in zip(ids, statuses) if s != "passed"] == []
