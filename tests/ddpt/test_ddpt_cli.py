"""`dlmpo ddpt train|sample` and `dlmpo eval --soft-prompt` as a user meets them."""

import json
import subprocess
import sys


def dlmpo(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "dlmpo", *args], capture_output=True, text=True, timeout=timeout)


def last_json(proc):
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_train_json_shape_then_eval_and_sample(tmp_path, tiny_target, problems_file):
    run = tmp_path / "run"
    flags = ["--task", str(problems_file), "--target", tiny_target, "--out", str(run), "--z-dim", "16",
             "--clusters", "2", "--direction-steps", "2", "--prompt-tuning-steps", "2", "--denoiser-steps", "40",
             "--code-steps", "2", "--max-new-tokens", "6", "--timeout-s", "5"]
    out = last_json(dlmpo("ddpt", "train", *flags, "--json"))
    assert set(out) >= {"run_dir", "test", "seconds"} and out["run_dir"] == str(run)
    assert list(out["test"]) == ["none", "manual", "prompt_tuning", "ddpt", "ddpt_conditioned"]
    assert all(set(v) == {"nll", "pass@1"} and v["nll"] > 0 for v in out["test"].values())
    again = last_json(dlmpo("ddpt", "train", *flags, "--json"))
    assert again["test"] == out["test"]  # a finished run re-scores nothing

    ev = last_json(dlmpo("eval", "--task", str(problems_file), "--split", "test", "--target", tiny_target,
                         "--soft-prompt", f"{run}#ddpt_conditioned", "--max-tokens", "6", "--json"))
    assert ev["metrics"] == out["test"]["ddpt_conditioned"] and ev["n"] == out["test_problems"]
    assert ev["soft_prompt"] == {"run_dir": str(run), "variant": "ddpt_conditioned"}

    sampled = tmp_path / "z.json"
    s = last_json(dlmpo("ddpt", "sample", str(run), "--n", "2", "--words", "3", "--out", str(sampled), "--json"))
    assert [r["seed"] for r in s["samples"]] == [0, 1] and len(s["samples"][0]["z"]) == 16
    assert all(len(w["nearest"]) == 3 for w in s["samples"][0]["words"])
    assert json.loads(sampled.read_text())["samples"] == s["samples"]


def test_user_errors_exit_2_with_one_sentence(tmp_path, tiny_target, problems_file):
    cases = [
        (["ddpt", "train", "--target", "openai:gpt-4o-mini", "--out", str(tmp_path / "r")], "DDPT needs the model's weights"),
        (["ddpt", "train", "--task", "sst2", "--target", tiny_target], "Unknown code task"),
        (["ddpt", "train", "--method", "bbt", "--target", tiny_target], "Unknown method"),
        (["ddpt", "sample", str(tmp_path)], "holds no DDPT run"),
        (["eval", "--task", "humaneval", "--target", "openai:gpt-4o-mini", "--soft-prompt", str(tmp_path)],
         "DDPT needs the model's weights"),
        (["eval", "--task", "humaneval", "--soft-prompt", f"{tmp_path}#best"], "Unknown soft-prompt variant"),
        (["eval", "--task", str(tmp_path / "none.jsonl"), "--soft-prompt", str(tmp_path)], "does not exist"),
    ]
    for args, message in cases:
        proc = dlmpo(*args)
        assert proc.returncode == 2, (args, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        assert lines[-1].startswith("error: ") and message in lines[-1], (args, proc.stderr)
