"""The command line as a user meets it: JSON last lines, one-sentence errors, exit codes."""

import json
import subprocess
import sys

import pytest


def dlmpo(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "dlmpo", *args], capture_output=True, text=True, timeout=timeout)


def test_eval_json_and_traces(data_dir, tmp_path):
    proc = dlmpo("eval", "--task", "sst2", "--split", "val", "--target", "embedded", "--data-dir", str(data_dir),
                 "--limit", "6", "--out", str(tmp_path), "--json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert {"task", "split", "n", "score", "parse_failures", "usage"} <= set(summary)
    assert summary["n"] == 6 and summary["usage"]["calls"] + summary["usage"]["cache_hits"] == 6
    rows = [json.loads(line) for line in (tmp_path / "traces.jsonl").read_text().splitlines()]
    assert len(rows) == 6 and {"system", "user", "output", "prediction", "gold", "score", "feedback"} <= set(rows[0])


@pytest.mark.parametrize("arch", ["dream", "llada", "mlm"])
def test_infill_json(arch):
    proc = dlmpo("infill", "--dlm", f"tiny-random:{arch}", "--text", "Answer briefly. [MASK:16]", "--steps", "8",
                 "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["steps"] == 8 and out["alg"] == "entropy" and out["seconds"] > 0
    (cand,) = out["candidates"]
    assert cand["text"].startswith("Answer briefly.") and len(cand["spans"]) == 1 and cand["nfe"] <= 8


def test_infill_with_context_and_examples(tmp_path):
    (tmp_path / "traces.jsonl").write_text(json.dumps({"user": "Review: dull", "output": "positive", "score": 0,
                                                       "feedback": "Expected negative."}) + "\n")
    (tmp_path / "ex.jsonl").write_text(json.dumps({"input": "great fun", "output": "positive"}) + "\n")
    proc = dlmpo("infill", "--dlm", "tiny-random:dream", "--text", "Classify. [MASK:8]", "--steps", "4",
                 "--context", str(tmp_path / "traces.jsonl"), "--examples", str(tmp_path / "ex.jsonl"),
                 "--candidates", "2", "--schedule", "auto", "--json")
    assert proc.returncode == 0, proc.stderr
    assert len(json.loads(proc.stdout.strip().splitlines()[-1])["candidates"]) == 2


@pytest.mark.parametrize("args, message", [
    (["eval", "--task", "nope"], "Unknown task 'nope'"),
    (["eval", "--task", "sst2", "--target", "gpt4", "--data-dir", "."], "Unknown model specifier"),
    (["eval", "--task", "sst2", "--data-dir", "/no/such/dir"], "does not exist"),
    (["eval", "--task", "sst2", "--target", "http://127.0.0.1:9/v1", "--data-dir", "."], "lacks the model name"),
    (["infill", "--dlm", "tiny-random:dream", "--text", "no masks here"], "holds no mask"),
    (["infill", "--dlm", "tiny-random:gpt", "--text", "x [MASK:2]"], "Unknown tiny-random architecture"),
    (["infill", "--dlm", "tiny-random:dream", "--text", "x [MASK:2]", "--alg", "best"], "Unknown remasking rule"),
    (["infill", "--dlm", "tiny-random:dream", "--text", "x [MASK:5000]"], "reads at most 2048"),
    (["infill", "--dlm", "tiny-random:dream", "--text", "x [MASK:2]", "--schedule", "fast"], "Unknown reveal schedule"),
    (["infill", "--dlm", "tiny-random:dream", "--text", "x [MASK:2]", "--context", "/no/file.jsonl"], "does not exist"),
    (["report", "/no/such/run"], "holds no finished run"),
])
def test_user_errors_exit_2_with_one_sentence(args, message):
    proc = dlmpo(*args)
    assert proc.returncode == 2
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error: ")


def test_unreachable_server_is_exit_2(data_dir):
    proc = dlmpo("eval", "--task", "sst2", "--target", "http://127.0.0.1:9/v1#m", "--data-dir", str(data_dir),
                 "--limit", "1")
    assert proc.returncode == 2 and "unreachable" in proc.stderr and "Traceback" not in proc.stderr


def test_usage_error_exit_2():
    proc = dlmpo("eval", "--bogus")
    assert proc.returncode == 2 and "No such option" in proc.stderr


def test_report_of_a_corrupted_result_is_one_sentence(tmp_path):
    (tmp_path / "result.json").write_text("{not json")
    proc = subprocess.run([sys.executable, "-m", "dlmpo", "report", str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 2 and "is not a result of `dlmpo optimize`" in proc.stderr and "Traceback" not in proc.stderr


def test_dry_run_reads_the_notes_and_checks_the_seed_prompt(tmp_path, data_dir):
    base = [sys.executable, "-m", "dlmpo", "optimize", "--task", "sst2", "--dlm", "tiny-random:dream", "--dry-run",
            "--data-dir", str(data_dir), "--out", str(tmp_path / "run")]
    (tmp_path / "notes.jsonl").write_text('{"example_id": 1}\n')
    bad_notes = subprocess.run([*base, "--feedback", "human", "--human-notes", str(tmp_path / "notes.jsonl")],
                               capture_output=True, text=True)
    assert bad_notes.returncode == 2 and "line 1" in bad_notes.stderr
    too_long = subprocess.run([*base, "--prompt", "word " * 3000], capture_output=True, text=True)
    assert too_long.returncode == 2 and "seed prompt takes" in too_long.stderr
    assert not (tmp_path / "run").exists()


def test_eval_options_and_evaluate_split_share_their_defaults():
    """`dlmpo eval` is generated from api.EvalOptions; the library call must default the same way."""
    import dataclasses
    import inspect

    from dlmpo import api

    signature = inspect.signature(api.evaluate_split).parameters
    for field in dataclasses.fields(api.EvalOptions):
        assert field.name in signature and field.name in api.EVAL_HELP, field.name
        if field.default is not dataclasses.MISSING:
            assert signature[field.name].default == field.default, field.name
