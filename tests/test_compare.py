"""dlmpo compare and dlmpo sweep: every optimizer offline under one budget, tables, plots, resume."""

import builtins
import json
import subprocess
import sys

import pytest

from dlmpo.errors import UserError
from tests.support.fake_openai_server import FakeOpenAIServer


def dlmpo(*args, timeout=1200):
    return subprocess.run([sys.executable, "-m", "dlmpo", *args], capture_output=True, text=True, timeout=timeout)


TINY = ["--task", "sst2", "--rounds", "1", "--candidates", "1", "--train-size", "4", "--val-size", "4",
        "--test-size", "6", "--set", "batch_size=4", "--set", "screen_batch=4", "--set", "steps=4",
        "--set", "mask_tokens=8"]


def test_compare_every_optimizer_offline_with_the_embedded_target(data_dir, tmp_path):
    pytest.importorskip("gepa")
    budget = 30
    proc = dlmpo("compare", *TINY, "--target", "embedded", "--dlm", "tiny-random:dream", "--optimizers",
                 "dlm,ar,textgrad,gepa", "--seeds", "1", "--max-calls", str(budget), "--data-dir", str(data_dir),
                 "--out", str(tmp_path), "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    rows = {r["optimizer"]: r for r in out["results"]}
    assert set(rows) == {"dlm", "ar", "textgrad", "gepa"}
    for r in rows.values():
        assert {"test_mean", "test_std", "calls", "tokens", "seconds", "prompt_chars"} <= set(r)
        assert 0 < r["calls"] <= budget  # the same budget, never exceeded, counted per method
    assert 0 <= out["baseline_test"] <= 1
    assert (tmp_path / "compare.png").stat().st_size > 1000
    assert (tmp_path / "compare.md").read_text().count("\n| ") == 4
    again = dlmpo("compare", *TINY, "--target", "embedded", "--dlm", "tiny-random:dream", "--optimizers", "dlm,ar",
                  "--seeds", "1", "--max-calls", str(budget), "--data-dir", str(data_dir), "--out", str(tmp_path),
                  "--json")
    assert again.returncode == 0, again.stderr  # finished runs are read back, not run again
    assert json.loads(again.stdout.strip().splitlines()[-1])["results"][0] == rows["dlm"]


def test_sweep_table_and_plot(data_dir, tmp_path):
    with FakeOpenAIServer(answer=lambda body: "negative") as server:
        proc = dlmpo("sweep", *TINY, "--param", "steps", "--values", "2,4", "--target", f"{server.base_url}#m",
                     "--dlm", "tiny-random:dream", "--data-dir", str(data_dir), "--out", str(tmp_path), "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["param"] == "steps" and [r["value"] for r in out["results"]] == ["2", "4"]
    assert (tmp_path / "sweep.png").is_file() and (tmp_path / "steps-2" / "result.json").is_file()


def test_comparison_mistakes_are_one_sentence(data_dir, tmp_path):
    for args in (["compare", "--optimizers", "dlm,miprov9", "--max-calls", "10"], ["compare", "--optimizers", "dlm"],
                 ["sweep", "--param", "task", "--values", "a"], ["sweep", "--param", "steps", "--values", "0", "--max-calls", "5"],
                 ["compare", "--optimizers", "gepa", "--max-calls", "50", "--set", "feedback=judge", "--set", "judge=embedded"],
                 ["compare", "--tasks", "sst2,mrpc", "--task", "sst2", "--optimizers", "dlm", "--max-calls", "10"]):
        proc = dlmpo(*args, "--data-dir", str(data_dir), "--out", str(tmp_path))
        assert proc.returncode == 2 and proc.stderr.startswith("error:"), (args, proc.stderr)


@pytest.mark.parametrize("module,require,hint", [("gepa", "dlmpo.peers.gepa_peer:_require_gepa", "pip install gepa"),
                                                  ("optuna", "dlmpo.peers.mipro_peer:_require_dspy", "dspy\\[optuna\\]")])
def test_a_missing_peer_package_is_a_clear_message(monkeypatch, module, require, hint):
    import importlib

    path, name = require.split(":")
    check = getattr(importlib.import_module(path), name)
    real_import = builtins.__import__

    def without(name, *args, **kwargs):
        if name == module:
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", without)
    with pytest.raises(UserError, match=hint):
        check()


def test_gepa_reflects_with_the_optimizer_model_not_the_target(data_dir, tmp_path):
    pytest.importorskip("gepa")
    with FakeOpenAIServer(answer=lambda body: "no idea") as target, \
            FakeOpenAIServer(answer=lambda body: "```\nAnswer with one word: positive or negative.\n```") as writer:
        proc = dlmpo("compare", *TINY, "--target", f"{target.base_url}#t", "--optimizer-model", f"{writer.base_url}#w",
                     "--optimizers", "gepa", "--seeds", "1", "--max-calls", "40", "--data-dir", str(data_dir),
                     "--out", str(tmp_path), "--json")
    assert proc.returncode == 0, proc.stderr
    assert writer.requests, "GEPA's reflection went to the target instead of --optimizer-model"
    assert all(r["model"] == "w" for r in writer.requests)
    row = json.loads(proc.stdout.strip().splitlines()[-1])["results"][0]
    assert row["optimizer"] == "gepa" and row["calls"] <= 40
    assert "Iteration" not in proc.stdout and "Iteration" in (tmp_path / "gepa-seed0" / "gepa.log").read_text()


def _answer_negative_when_told(body):
    system = body["messages"][0]["content"] if body["messages"][0]["role"] == "system" else ""
    return "negative" if "single word negative" in system else "no idea"


def test_mipro_searches_the_optimizer_models_instructions_on_the_target(data_dir, tmp_path):
    pytest.importorskip("dspy")
    pytest.importorskip("optuna")
    proposal = "Reply with the single word negative."
    with FakeOpenAIServer(answer=_answer_negative_when_told) as target, \
            FakeOpenAIServer(answer=lambda body: proposal) as writer:
        proc = dlmpo("compare", *TINY, "--candidates", "2", "--target", f"{target.base_url}#t",
                     "--optimizer-model", f"{writer.base_url}#w", "--optimizers", "mipro", "--seeds", "1",
                     "--max-calls", "40", "--data-dir", str(data_dir), "--out", str(tmp_path), "--json")
    assert proc.returncode == 0, proc.stderr
    row = json.loads(proc.stdout.strip().splitlines()[-1])["results"][0]
    result = json.loads((tmp_path / "mipro-seed0" / "result.json").read_text())
    assert result["best_prompt"] == proposal  # the only instruction that gets any answer right
    assert result["test"]["best"] > result["test"]["seed"] == 0.0
    assert row["calls"] <= 40 and row["calls"] == len(target.requests) + len(writer.requests)
    assert writer.requests and all(r["model"] == "w" for r in writer.requests)
    for request in target.requests:  # the target sees what `dlmpo eval` shows it, not DSPy's field format
        system, user = request["messages"]
        assert system["content"] in (result["seed_prompt"], proposal) and "[[ ##" not in user["content"]
    assert (tmp_path / "mipro-seed0" / "mipro.log").is_file()
    events = [json.loads(line) for line in (tmp_path / "mipro-seed0" / "events.jsonl").read_text().splitlines()]
    searched = next(e for e in events if e["type"] == "stop")["full_val_evaluations"]
    assert {c["prompt"] for c in searched} == {result["seed_prompt"], proposal}
    assert max(c["val"] for c in searched) == result["val"]["best"] > result["val"]["seed"]


def test_mipro_with_the_embedded_target_stays_in_budget_or_says_why(data_dir, tmp_path):
    pytest.importorskip("dspy")
    pytest.importorskip("optuna")
    with FakeOpenAIServer(answer=lambda body: "Classify the review's sentiment as positive or negative.") as writer:
        common = [*TINY, "--target", "embedded", "--optimizer-model", f"{writer.base_url}#w", "--optimizers", "mipro",
                  "--seeds", "1", "--data-dir", str(data_dir), "--json"]
        small = dlmpo("compare", *common, "--max-calls", "20", "--out", str(tmp_path / "small"))
        proc = dlmpo("compare", *common, "--max-calls", "36", "--out", str(tmp_path / "ok"))
    assert small.returncode == 2 and small.stderr.startswith("error: The budget leaves MIPROv2"), small.stderr
    assert proc.returncode == 0, proc.stderr
    row = json.loads(proc.stdout.strip().splitlines()[-1])["results"][0]
    assert row["optimizer"] == "mipro" and 0 < row["calls"] <= 36
