"""Malformed input through the command line: does every one get ONE `error: ...` line on stderr and
exit code 2, never a traceback, never a hang?

    python -m benchmarks.bad_input [--data-dir ../shared/data] [--only CLASS] [--timeout 60]

Each case runs `python -m dlmpo ...` in a subprocess, in a scratch folder holding the malformed files
it needs. Almost every case fails before a model loads (the point of checking input first); the few
that must load one use the tiny-random DLMs. Prints a table (class, input, exit code, one sentence?)
and writes benchmarks/results/bad_input.json."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data"
NOT_UTF8 = b"caf\xe9 au lait\t1\n"  # Latin-1, as a spreadsheet export might save it
TASK = b'[task]\nname = "t"\ndata = "%s"\ninput_fields = ["text"]\nlabels = ["a"]\nseed_prompt = "x"\n'


def fixtures(tmp: Path) -> dict[str, str]:
    """The malformed files, by name; returns {name: path}."""
    import torch

    files: dict[str, bytes] = {
        "latin1.tsv": NOT_UTF8,
        "latin1.jsonl": b'{"user": "caf\xe9", "output": "x"}\n',
        "latin1.toml": b'rounds = 2\nseed_prompt = "caf\xe9"\n',
        "latin1.json": b'[{"task_id": 0, "traj": [], "note": "caf\xe9"}]',
        "latin1.txt": b"Classify caf\xe9 reviews.",
        "empty.jsonl": b"",
        "unknown_key.toml": b"roundz = 2\n",
        "list.json": b"[1, 2, 3]",
        "list.toml.json": b"[1]",
        "bad.json": b"{not json",
        "bad.toml": b"rounds = = 2",
        "string_optimize.toml": b'optimize = "fast"\n',
        "number.jsonl": b"1\n2\n",
        "prices_neg.json": b'{"gpt-4o-mini": [-1, 2]}',
        "prices_list.json": b'[["gpt", 1]]',
        "traj_object.json": b'{"task_id": 0}',
        "traj_bad_episode.json": b'[{"traj": "not a list", "task_id": "x"}]',
        "task_cfg_missing_data.toml": TASK % b"nope.jsonl",
        "task_cfg_latin1.toml": TASK % b"rows_latin1.csv",
        "rows_latin1.csv": b"text,label\ncaf\xe9,a\n",
        "task_cfg_bad_metric.toml": b'[task]\nname = "t"\ndata = "x.jsonl"\ninput_fields = ["text"]\nmetric = "f1"\nseed_prompt = "x"\n',
        "chat_bad.jsonl": b'{"messages": "hello"}\n',
        "notes.md": b"",
    }
    for name, data in files.items():
        (tmp / name).write_bytes(data)
    (tmp / "a_folder").mkdir()
    (tmp / "existing_file").write_text("keep me\n")
    # run directories of `dlmpo optimize`
    for name, config in {"run_cut": b'{"identity": {"task": "sst2"', "run_list": b"[1, 2]",
                         "run_latin1": b'{"identity": "caf\xe9"}'}.items():
        (tmp / name).mkdir()
        (tmp / name / "config.json").write_bytes(config)
        (tmp / name / "events.jsonl").write_text('{"type": "run_start"}\n')
    (tmp / "result_latin1").mkdir()
    (tmp / "result_latin1" / "result.json").write_bytes(b'{"run_dir": "caf\xe9"}')
    (tmp / "result_list").mkdir()
    (tmp / "result_list" / "result.json").write_text("[]")
    # DDPT runs: a good config with a damaged space.pt, a cut config, a reshaped config, no config
    from dlmpo.ddpt.config import DDPTConfig

    good = json.dumps({"identity": DDPTConfig().to_json(), "settings": DDPTConfig().to_json()})
    for name in ("ddpt_cut", "ddpt_reshaped", "ddpt_space", "ddpt_noconfig", "ddpt_space_keys"):
        (tmp / name).mkdir()
        torch.save({"projection": torch.zeros(DDPTConfig().z_dim, 576)}, tmp / name / "space.pt")
    (tmp / "ddpt_cut" / "config.json").write_text(good[: len(good) // 2])
    (tmp / "ddpt_reshaped" / "config.json").write_text(json.dumps({"identity": {}, "settings": {"z_dim": "big"}}))
    (tmp / "ddpt_space" / "config.json").write_text(good)
    (tmp / "ddpt_space" / "space.pt").write_bytes(b"\x80\x02not a pickle")
    (tmp / "ddpt_space_keys" / "config.json").write_text(good)
    torch.save({"other": 1}, tmp / "ddpt_space_keys" / "space.pt")
    # adapters of `dlmpo train`
    for name, cfg in {"adapter_list": [1, 2], "adapter_negrank": {"dlm": "tiny-random:dream", "lora_rank": -4},
                      "adapter_cut": None, "adapter_shape": {"dlm": "tiny-random:dream", "lora_rank": 4}}.items():
        (tmp / name).mkdir()
        (tmp / name / "train_config.json").write_text('{"lora": tr' if cfg is None else json.dumps(cfg))
        (tmp / name / "adapter.safetensors").write_bytes(b"")
    from safetensors.torch import save_file

    save_file({"model.layers.0.self_attn.q_proj.lora_A.default.weight": torch.zeros(4, 3)},
              str(tmp / "adapter_shape" / "adapter.safetensors"))
    return {p.name: str(p) for p in tmp.iterdir()}


def cases(f: dict[str, str], data: str) -> list[tuple[str, str, list[str]]]:
    """(class, what is wrong, arguments)."""
    sst2 = ["--task", "sst2", "--data-dir", data]
    train, fold, bad_rows = ["train", "--dlm", "tiny-random:dream"], f["a_folder"], f["number.jsonl"]
    replay = ["tau", "replay", "--trajectories"]
    infill = ["infill", "--dlm", "tiny-random:dream", "--text", "x [MASK:2]", "--steps", "2"]
    opt = ["optimize", *sst2, "--dlm", "tiny-random:dream", "--rounds", "1", "--candidates", "1",
           "--train-size", "2", "--val-size", "2", "--test-size", "2"]
    return [
        # files that are not UTF-8
        ("not-utf8", "task data (--data-dir)", ["eval", "--task", "sst2", "--data-dir", "LATIN1_DATA", "--limit", "2"]),
        ("not-utf8", "infill --context", [*infill, "--context", f["latin1.jsonl"]]),
        ("not-utf8", "infill --examples", [*infill, "--examples", f["latin1.jsonl"]]),
        ("not-utf8", "optimize --config", [*opt, "--config", f["latin1.toml"], "--dry-run"]),
        ("not-utf8", "tau replay --trajectories", [*replay, f["latin1.json"],
                                                   "--domain", "airline", "--data-dir", data]),
        ("not-utf8", "train --data", [*train, "--data", f["latin1.jsonl"], "--out", fold + "/t"]),
        ("not-utf8", "eval --prompt file", ["eval", *sst2, "--prompt", f["latin1.txt"], "--limit", "1"]),
        ("not-utf8", "task config's CSV", ["eval", "--task", f["task_cfg_latin1.toml"]]),
        ("not-utf8", "report: result.json", ["report", f["result_latin1"]]),
        ("not-utf8", "compare --config", ["compare", "--config", f["latin1.toml"], "--out", fold + "/c"]),
        # hangs: rate limits that allow nothing
        ("rate-limits", "eval --rpm -5", ["eval", *sst2, "--rpm", "-5", "--limit", "1"]),
        ("rate-limits", "eval --tpm -5", ["eval", *sst2, "--tpm", "-5", "--limit", "1"]),
        ("rate-limits", "eval --rpm 0", ["eval", *sst2, "--rpm", "0", "--limit", "1"]),
        ("rate-limits", "eval --rpm nan", ["eval", *sst2, "--rpm", "nan", "--limit", "1"]),
        ("rate-limits", "optimize --set rpm=0", [*opt, "--set", "rpm=0", "--dry-run"]),
        ("rate-limits", "optimize --set tpm=-5", [*opt, "--set", "tpm=-5", "--dry-run"]),
        # model specifiers
        ("model-spec", "--target http://#m", ["eval", *sst2, "--target", "http://#m", "--limit", "1"]),
        ("model-spec", "--target http://127.0.0.1:notaport/v1#m",
         ["eval", *sst2, "--target", "http://127.0.0.1:notaport/v1#m", "--limit", "1"]),
        ("model-spec", "--target http://127.0.0.1:99999/v1#m", ["eval", *sst2, "--target", "http://127.0.0.1:99999/v1#m", "--limit", "1"]),
        ("model-spec", "--target http://127.0.0.1:8000/v1# (no model)", ["eval", *sst2, "--target", "http://127.0.0.1:8000/v1#"]),
        ("model-spec", "--target hf: (no model)", ["eval", *sst2, "--target", "hf:"]),
        ("model-spec", "--target gpt4", ["eval", *sst2, "--target", "gpt4"]),
        ("model-spec", "optimize --optimizer-model http://:80/v1#m", [*opt, "--optimizer-model", "http://:80/v1#m", "--dry-run"]),
        ("model-spec", "--user-model http://#m", ["eval", "--task", "tau-airline", "--data-dir", data, "--user-model", "http://#m"]),
        ("model-spec", "--dlm unknown:x", [*infill[:1], "--dlm", "unknown:x", "--text", "x [MASK:2]"]),
        ("model-spec", "--dlm tiny-random:gpt", [*infill[:1], "--dlm", "tiny-random:gpt", "--text", "x [MASK:2]"]),
        # --out
        ("out", "eval --out an existing file", ["eval", *sst2, "--out", f["existing_file"], "--limit", "1"]),
        ("out", "eval --out under a file", ["eval", *sst2, "--out", f["existing_file"] + "/sub", "--limit", "1"]),
        ("out", "eval --out unwritable", ["eval", *sst2, "--out", "/proc/dlmpo_out", "--limit", "1"]),
        ("out", "optimize --out an existing file", [*opt, "--out", f["existing_file"]]),
        ("out", "ddpt sample --out a folder", ["ddpt", "sample", f["ddpt_space"], "--out", f["a_folder"]]),
        # damaged run directories
        ("run-files", "optimize: config.json cut", [*opt, "--out", f["run_cut"]]),
        ("run-files", "optimize: config.json a list", [*opt, "--out", f["run_list"]]),
        ("run-files", "optimize: config.json not UTF-8", [*opt, "--out", f["run_latin1"]]),
        ("run-files", "report: result.json a list", ["report", f["result_list"]]),
        ("run-files", "report: a file, not a run", ["report", f["existing_file"]]),
        ("run-files", "ddpt sample: config.json cut", ["ddpt", "sample", f["ddpt_cut"]]),
        ("run-files", "ddpt sample: config.json reshaped", ["ddpt", "sample", f["ddpt_reshaped"]]),
        ("run-files", "ddpt sample: no config.json", ["ddpt", "sample", f["ddpt_noconfig"]]),
        ("run-files", "ddpt sample: space.pt not a pickle", ["ddpt", "sample", f["ddpt_space"]]),
        ("run-files", "ddpt sample: space.pt other keys", ["ddpt", "sample", f["ddpt_space_keys"]]),
        ("run-files", "eval --soft-prompt: space.pt damaged", ["eval", "--task", "humaneval", "--soft-prompt", f["ddpt_space"]]),
        # adapters
        ("adapter", "train_config.json a list", [*infill, "--adapter", f["adapter_list"]]),
        ("adapter", "negative LoRA rank", [*infill, "--adapter", f["adapter_negrank"]]),
        ("adapter", "train_config.json cut", [*infill, "--adapter", f["adapter_cut"]]),
        ("adapter", "weights of another shape", [*infill, "--adapter", f["adapter_shape"]]),
        ("adapter", "a file, not a folder", [*infill, "--adapter", f["existing_file"]]),
        ("adapter", "a missing folder", [*infill, "--adapter", fold + "/none"]),
        # devices
        ("device", "infill --device cuda:7", [*infill, "--device", "cuda:7"]),
        ("device", "infill --device gpu", [*infill, "--device", "gpu"]),
        ("device", "optimize --device cuda:7", [*opt, "--device", "cuda:7", "--dry-run"]),
        ("device", "train --device tpu", [*train, "--data", bad_rows, "--out", fold + "/d", "--device", "tpu"]),
        ("device", "ddpt train --device cuda:7", ["ddpt", "train", "--device", "cuda:7", "--out", fold + "/dd"]),
        # missing files, folders as files, empty files, JSON of the wrong type
        ("files", "infill --context missing", [*infill, "--context", fold + "/none.jsonl"]),
        ("files", "infill --context a folder", [*infill, "--context", f["a_folder"]]),
        ("files", "infill --context numbers", [*infill, "--context", bad_rows]),
        ("files", "optimize --config a folder", [*opt, "--config", f["a_folder"], "--dry-run"]),
        ("files", "optimize --config with an unknown key", [*opt, "--config", f["unknown_key.toml"], "--dry-run"]),
        ("files", "optimize --config a JSON list", [*opt, "--config", f["list.json"], "--dry-run"]),
        ("files", "optimize --config broken TOML", [*opt, "--config", f["bad.toml"], "--dry-run"]),
        ("files", "optimize --config optimize = string", [*opt, "--config", f["string_optimize.toml"], "--dry-run"]),
        ("files", "eval --prices a list", ["eval", *sst2, "--prices", f["prices_list.json"], "--limit", "1"]),
        ("files", "eval --prices negative", ["eval", *sst2, "--prices", f["prices_neg.json"], "--limit", "1"]),
        ("files", "eval --prices a folder", ["eval", *sst2, "--prices", f["a_folder"], "--limit", "1"]),
        ("files", "eval --prompt a folder", ["eval", *sst2, "--prompt", f["a_folder"], "--limit", "1"]),
        ("files", "eval --prompt missing .txt", ["eval", *sst2, "--prompt", "no_such_prompt.txt", "--limit", "1"]),
        ("files", "tau replay: an object, not a list", [*replay, f["traj_object.json"], "--domain", "airline", "--data-dir", data]),
        ("files", "tau replay: a malformed episode", [*replay, f["traj_bad_episode.json"], "--domain", "airline", "--data-dir", data]),
        ("files", "tau replay: a folder", [*replay, f["a_folder"], "--domain", "airline", "--data-dir", data]),
        ("files", "train --data empty", [*train, "--data", f["empty.jsonl"], "--out", fold + "/e"]),
        ("files", "train --data chat of a string", [*train, "--data", f["chat_bad.jsonl"], "--out", fold + "/e2"]),
        ("files", "task config: data file missing", ["eval", "--task", f["task_cfg_missing_data.toml"]]),
        ("files", "task config: unknown metric", ["eval", "--task", f["task_cfg_bad_metric.toml"]]),
        ("files", "--data-dir a file", ["eval", "--task", "sst2", "--data-dir", f["existing_file"]]),
        ("files", "optimize --human-notes a folder", [*opt, "--feedback", "human", "--human-notes", f["a_folder"], "--dry-run"]),
        # names, sizes and values
        ("values", "eval --task nope", ["eval", "--task", "nope"]),
        ("values", "eval --split dev2", ["eval", *sst2, "--split", "dev2"]),
        ("values", "eval --limit 0", ["eval", *sst2, "--limit", "0"]),
        ("values", "eval --limit -3", ["eval", *sst2, "--limit", "-3"]),
        ("values", "eval --concurrency 0", ["eval", *sst2, "--concurrency", "0"]),
        ("values", "eval --max-tokens abc", ["eval", *sst2, "--max-tokens", "abc"]),
        ("values", "eval --trials 3 on sst2", ["eval", *sst2, "--trials", "3"]),
        ("values", "optimize --rounds 0", [*opt[:-8], "--rounds", "0", "--dry-run"]),
        ("values", "optimize --candidates -1", [*opt[:-6], "--candidates", "-1", "--dry-run"]),
        ("values", "optimize --val-size 0", [*opt, "--val-size", "0", "--dry-run"]),
        ("values", "optimize --temperature -1", [*opt, "--temperature", "-1", "--dry-run"]),
        ("values", "optimize --threshold 1.5", [*opt, "--threshold", "1.5", "--dry-run"]),
        ("values", "optimize --max-cost nan", [*opt, "--max-cost", "nan", "--dry-run"]),
        ("values", "optimize --max-seconds -1", [*opt, "--max-seconds", "-1", "--dry-run"]),
        ("values", "optimize --strategy grow", [*opt, "--strategy", "grow", "--dry-run"]),
        ("values", "optimize --feedback judge without --judge", [*opt, "--feedback", "judge", "--dry-run"]),
        ("values", "optimize --proposer gpt", [*opt, "--proposer", "gpt", "--dry-run"]),
        ("values", "optimize --set rounds", [*opt, "--set", "rounds", "--dry-run"]),
        ("values", "optimize --set nope=1", [*opt, "--set", "nope=1", "--dry-run"]),
        ("values", "optimize --set rounds=many", [*opt, "--set", "rounds=many", "--dry-run"]),
        ("values", "optimize --set significance=2", [*opt, "--set", "significance=2", "--dry-run"]),
        ("values", "infill --steps 0", [*infill[:5], "--steps", "0"]),
        ("values", "infill --top-p 0", [*infill, "--top-p", "0"]),
        ("values", "infill --temperature -1", [*infill, "--temperature", "-1"]),
        ("values", "infill --threshold 2", [*infill, "--threshold", "2"]),
        ("values", "infill --block-length 0", [*infill, "--block-length", "0"]),
        ("values", "infill --kv-refresh -1", [*infill, "--kv-refresh", "-1"]),
        ("values", "infill --top-k 0", [*infill, "--top-k", "0"]),
        ("values", "infill --alg-temp -1", [*infill, "--alg-temp", "-1"]),
        ("values", "infill --text without masks", [*infill[:3], "--text", "no masks"]),
        ("values", "train --lr -1", [*train, "--data", bad_rows, "--out", fold + "/l", "--lr", "-1"]),
        ("values", "train --steps 0", [*train, "--data", bad_rows, "--out", fold + "/l", "--steps", "0"]),
        ("values", "train --lora-rank -4", [*train, "--data", bad_rows, "--out", fold + "/l", "--lora-rank", "-4"]),
        ("values", "train --time-limit soon", [*train, "--data", bad_rows, "--out", fold + "/l", "--time-limit", "soon"]),
        ("values", "train --attention block:0", [*train, "--data", bad_rows, "--out", fold + "/l", "--attention", "block:0"]),
        ("values", "ddpt train --lr nan", ["ddpt", "train", "--lr", "nan", "--out", fold + "/n"]),
        ("values", "ddpt train --z-dim 0", ["ddpt", "train", "--z-dim", "0", "--out", fold + "/n"]),
        ("values", "ddpt train --target openai:gpt", ["ddpt", "train", "--target", "openai:gpt", "--out", fold + "/n"]),
        ("values", "ddpt sample --sampler euler", ["ddpt", "sample", f["ddpt_space"], "--sampler", "euler"]),
        ("values", "tau replay --domain bank", [*replay, f["traj_object.json"], "--domain", "bank", "--data-dir", data]),
        ("values", "data fetch nope", ["data", "fetch", "nope"]),
        ("values", "compare --optimizers dlm,nope", ["compare", "--optimizers", "dlm,nope", *sst2, "--out", fold + "/cmp"]),
        ("values", "compare --seeds 0", ["compare", "--seeds", "0", *sst2]),
        ("values", "sweep --param nope", ["sweep", "--param", "nope", "--values", "1,2", *sst2, "--out", fold + "/sw"]),
        ("values", "sweep --values ','", ["sweep", "--param", "steps", "--values", ",", *sst2]),
        ("values", "sweep --param steps --values x,y", ["sweep", "--param", "steps", "--values", "x,y", *sst2, "--out", fold + "/sw2"]),
        ("values", "unknown command", ["nonsense"]),
        ("values", "unknown option", ["eval", "--bogus"]),
    ]


def judge(proc: subprocess.CompletedProcess | None) -> dict:
    if proc is None:
        return {"exit": "timeout", "one_sentence": False, "traceback": False, "stderr": ""}
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    warnings = [line for line in lines if line.startswith(("warning:", "note:"))]
    one = proc.returncode == 2 and len(errors) == 1 and len(lines) == len(errors) + len(warnings)
    return {"exit": proc.returncode, "one_sentence": one, "traceback": "Traceback" in proc.stderr,
            "stderr": (errors[0] if errors else (lines[-1] if lines else ""))[:300],
            **({} if one else {"stderr_lines": [line[:300] for line in lines[-8:]]})}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", default=str(DEFAULT_DATA))
    ap.add_argument("--only", default=None, help="Run one class.")
    ap.add_argument("--match", default=None, help="Run only the inputs whose description holds this text.")
    ap.add_argument("--update", action="store_true", help="Keep the other rows of an earlier --out file.")
    ap.add_argument("--timeout", type=float, default=60.0)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "bad_input.json"))
    args = ap.parse_args()
    rows = []
    began = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        f = fixtures(tmp)
        latin = tmp / "latin1_data" / "sst2"
        latin.mkdir(parents=True)
        for split in ("train.tsv", "dev.tsv"):
            (latin / split).write_bytes(NOT_UTF8)
        for klass, what, argv in cases(f, args.data_dir):
            if (args.only and klass != args.only) or (args.match and args.match not in what):
                continue
            argv = [str(tmp / "latin1_data") if a == "LATIN1_DATA" else a for a in argv]
            start = time.perf_counter()
            try:  # the usual model cache: a first-use conversion's progress bars are not what is measured
                proc = subprocess.run([sys.executable, "-m", "dlmpo", *argv], capture_output=True, text=True,
                                      timeout=args.timeout, cwd=tmp)
            except subprocess.TimeoutExpired:
                proc = None
            row = {"class": klass, "input": what, "argv": argv, **judge(proc),
                   "seconds": round(time.perf_counter() - start, 2)}
            rows.append(row)
            ok = "yes" if row["one_sentence"] else "NO"
            print(f"{klass:<12} {what[:52]:<52} {str(row['exit']):>7}  {ok:<3}  {row['stderr'][:110]}", flush=True)
    if args.update and Path(args.out).is_file():
        with tempfile.TemporaryDirectory() as tmp_name:
            order = [(k, w) for k, w, _ in cases(fixtures(Path(tmp_name)), args.data_dir)]
        fresh = {(r["class"], r["input"]): r for r in rows}
        old = {(r["class"], r["input"]): r for r in json.loads(Path(args.out).read_text())["cases"]}
        rows = [fresh.get(key) or old[key] for key in order if key in fresh or key in old]
    by_class: dict[str, dict[str, int]] = {}
    for r in rows:
        c = by_class.setdefault(r["class"], {"inputs": 0, "one_sentence_exit_2": 0, "traceback": 0, "hang": 0})
        c["inputs"] += 1
        c["one_sentence_exit_2"] += r["one_sentence"]
        c["traceback"] += r["traceback"]
        c["hang"] += r["exit"] == "timeout"
    total = {"inputs": len(rows), "one_sentence_exit_2": sum(r["one_sentence"] for r in rows),
             "traceback": sum(r["traceback"] for r in rows), "hang": sum(r["exit"] == "timeout" for r in rows)}
    print(f"\n{'class':<12} inputs  one sentence + exit 2  traceback  hang")
    for name, c in {**by_class, "total": total}.items():
        print(f"{name:<12} {c['inputs']:>6}  {c['one_sentence_exit_2']:>21}  {c['traceback']:>9}  {c['hang']:>4}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"by_class": by_class, "total": total, "seconds": round(time.perf_counter() - began, 1),
                               "cases": rows}, indent=2, ensure_ascii=False) + "\n")
    print(f"written to {out}")


if __name__ == "__main__":
    main()
