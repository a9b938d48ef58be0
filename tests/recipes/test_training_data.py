"""SST-2 and SST-5 are evaluation-only: no training file of the embedded DLM's recipe holds one of
their rows, prompts or any text written for them."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "embedded_dlm"


def recipe_module(name):
    sys.path.insert(0, str(RECIPE))  # the recipe's scripts import each other as scripts do
    try:
        spec = importlib.util.spec_from_file_location(name, RECIPE / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(RECIPE))


def read_rows(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture(scope="module")
def tasks(data_dir):
    return recipe_module("training_tasks")


@pytest.fixture(scope="module")
def stage1_rows(tmp_path_factory, data_dir):
    out = tmp_path_factory.mktemp("stage1")
    subprocess.run([sys.executable, str(RECIPE / "make_data.py"), "--data-dir", str(data_dir), "--out", str(out),
                    "--no-lm-eval", "--task-rows", "300"], check=True, capture_output=True)
    return read_rows(out / "train.jsonl")


def test_the_training_tasks_exclude_the_evaluation_tasks(tasks, tmp_path, data_dir):
    assert not set(tasks.EVALUATION_ONLY) & set(tasks.training_tasks(data_dir, tmp_path))
    assert not set(tasks.EVALUATION_ONLY) & set(tasks.PARAPHRASES)


def test_stage1_training_data_is_clean(tasks, stage1_rows, data_dir):
    assert len(stage1_rows) > 900
    assert tasks.contamination(stage1_rows, data_dir) == []


@pytest.mark.parametrize("name", ["self_instruct.jsonl", "measured/edits.jsonl", "measured/measured.jsonl"])
def test_committed_training_files_are_clean(tasks, data_dir, name):
    path = RECIPE / "data" / name
    assert path.is_file(), f"{path} is missing"
    rows = read_rows(path)
    if name == "measured/measured.jsonl":
        rows = [{"prompt": r["incumbent"] + "\n" + r["edit"]} for r in rows]
    if name == "self_instruct.jsonl":  # make_data.py drops its rows about the evaluation subject
        rows = [r for r in rows if tasks.evaluation_free(r)]
    assert tasks.contamination(rows, data_dir) == []


def test_the_check_catches_evaluation_rows_prompts_and_label_lists(tasks, data_dir):
    from dlmpo.catalog import get_task

    sst5 = get_task("sst5", data_dir)
    sentence = next(ex.inputs["sentence"] for ex in sst5.examples("test") if len(ex.inputs["sentence"].split()) > 12)
    rows = [{"prompt": "Route the ticket.", "context": [{"query": sentence, "output": "x"}]},
            {"prompt": get_task("sst2", data_dir).seed_prompt},
            {"prompt": "Answer very negative, negative, neutral, positive or very positive."},
            {"prompt": "Classify the sentiment of tweets."},
            {"prompt": "Route the ticket to billing or bugs."}]
    problems = tasks.contamination(rows, data_dir)
    assert [p.split(":")[0] for p in problems] == ["row 0", "row 1", "row 2", "row 3"]
