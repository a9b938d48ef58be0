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
        "--test-size", "6", "--set", "batch_size=4", "--set", "val_batch=4", "--set", "steps=4",
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
    for args in (["compare", "--optimizers", "dlm,mipro", "--max-calls", "10"], ["compare", "--optimizers", "dlm"],
                 ["sweep", "--param", "task", "--values", "a"], ["sweep", "--param", "steps", "--values", "0", "--max-calls", "5"]):
        proc = dlmpo(*args, "--data-dir", str(data_dir), "--out", str(tmp_path))
        assert proc.returncode == 2 and proc.stderr.startswith("error:"), (args, proc.stderr)


def test_gepa_missing_is_a_clear_message(monkeypatch):
    from dlmpo.peers.gepa_peer import _require_gepa

    real_import = builtins.__import__

    def no_gepa(name, *args, **kwargs):
        if name == "gepa":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_gepa)
    with pytest.raises(UserError, match="pip install gepa"):
        _require_gepa()


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
