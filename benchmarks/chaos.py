"""Trust under abuse (issue 14's proofs), offline: every chat model is a fault-injecting
OpenAI-compatible server on 127.0.0.1 (tests/support/fake_openai_server.py) that counts what it is
asked; the optimizer runs as `python -m dlmpo` subprocesses, as a user runs it.

1. kill: SIGKILL the optimizer at random moments of a run, re-running after each kill, for two
   runs: SST-2 with a judge and an AR writer, and τ-bench airline with a chat model playing the
   user and an AR writer; the final result must equal an uninterrupted run's, and the server must
   have been asked as many times, give or take the requests in flight at each kill, which the
   run counts as paid (they were written down before they were sent).
2. faults: 20 % of requests answer 429, 500, malformed JSON or late; same result as a clean server.
3. budgets: for every role (target, judge, writer, τ-bench user model) and both peers (GEPA,
   MIPROv2), a budget of N calls is never exceeded, counted by the server.
4. malformed inputs: each gives one sentence on stderr and exit code 2, never a traceback.

Run: python -m benchmarks.chaos [--kills 20] [--data-dir ../shared/data] [--out benchmarks/results/chaos.json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.support.fake_openai_server import FakeOpenAIServer

ROOT = Path(__file__).resolve().parents[1]

WRITER_LINES = ["Answer with one word.", "Read the whole review first.", "Be brief.", "Decide by the main opinion.",
                "Negations reverse the meaning.", "Ignore the length of the text."]


def _digest(*parts: str) -> int:
    return int.from_bytes(hashlib.sha256("\x00".join(parts).encode()).digest()[:4], "big")


def answer(body: dict) -> str:
    """Deterministic answers for every role, told apart by the model name after '#'."""
    messages = body["messages"]
    last = str(messages[-1].get("content") or "")
    system = str(messages[0].get("content") or "") if messages[0]["role"] == "system" else ""
    if body["model"] == "writer":
        blanks = max(1, last.count("[BLANK"))
        return "\n".join(WRITER_LINES[_digest(last, str(i)) % len(WRITER_LINES)] for i in range(blanks))
    if body["model"] == "judge":
        return "The answer missed the overall opinion of the review."
    if body["model"] == "user":
        return "###STOP###" if len(messages) > 4 else "Please go ahead with what I asked."
    return "positive" if _digest(system, last) % 2 else "negative"  # the target: noise that depends on the prompt


def optimize_args(url: str, data_dir: str, out: Path, extra: list[str] = ()) -> list[str]:
    return [sys.executable, "-m", "dlmpo", "optimize", "--task", "sst2", "--target", f"{url}#target",
            "--feedback", "judge", "--judge", f"{url}#judge", "--proposer", "ar", "--optimizer-model", f"{url}#writer",
            "--rounds", "4", "--candidates", "3", "--train-size", "16", "--val-size", "32", "--test-size", "32",
            "--batch-size", "4", "--screen-batch", "8", "--mask-tokens", "16", "--set", "significance=1",
            "--data-dir", data_dir, "--out", str(out), "--json", *extra]


def tau_args(url: str, data_dir: str, out: Path, extra: list[str] = ()) -> list[str]:
    return [sys.executable, "-m", "dlmpo", "optimize", "--task", "tau-airline", "--target", f"{url}#target",
            "--user-model", f"{url}#user", "--proposer", "ar", "--optimizer-model", f"{url}#writer",
            "--rounds", "3", "--candidates", "2", "--train-size", "4", "--val-size", "4", "--test-size", "4",
            "--batch-size", "2", "--screen-batch", "2", "--mask-tokens", "16", "--set", "significance=1",
            "--data-dir", data_dir, "--out", str(out), "--json", *extra]


KILL_RUNS = {"sst2: target + judge + AR writer": optimize_args,
             "τ-bench airline: target + user model + AR writer": tau_args}


def finished(out: Path) -> dict | None:
    path = out / "result.json"
    if not path.is_file():
        return None
    r = json.loads(path.read_text())
    return {"best_prompt": r["best_prompt"], "val": r["val"], "test": r["test"], "rounds": len(r["rounds"])}


def run_once(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, cwd=ROOT)


def _events(out: Path) -> int:
    path = out / "events.jsonl"
    return len(path.read_text().splitlines()) if path.is_file() else 0


def _wait_for_work(proc: subprocess.Popen, out: Path, before: int) -> None:
    """Until the process has logged something (past its imports and set-up) or has ended."""
    while proc.poll() is None and _events(out) <= before:
        time.sleep(0.02)


def kill_test(data_dir: str, kills: int, rng: random.Random, make_args=optimize_args) -> dict:
    """Each kill lands at a random moment of the run's work (after its start-up): a random time
    within the next 1/(2 kills)-th of an uninterrupted run's working time, so that all the kills
    land before the run can finish (a restarted run replays its cached calls quickly)."""
    work = Path(tempfile.mkdtemp(prefix="chaos-kill-"))
    with FakeOpenAIServer(answer=answer) as server:
        start = time.perf_counter()
        proc = subprocess.Popen(make_args(server.base_url, data_dir, work / "reference"), cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        _wait_for_work(proc, work / "reference", 0)
        working_from = time.perf_counter()
        err = proc.communicate()[1]
        assert proc.returncode == 0, err[-2000:]
        seconds, work_seconds = time.perf_counter() - start, time.perf_counter() - working_from
        reference, reference_calls = finished(work / "reference"), len(server.requests)
    with FakeOpenAIServer(answer=answer) as server:
        out, done_kills, runs = work / "killed", 0, 0
        while finished(out) is None:
            runs += 1
            before = _events(out)
            proc = subprocess.Popen(make_args(server.base_url, data_dir, out), cwd=ROOT,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            if done_kills < kills:
                _wait_for_work(proc, out, before)
                try:
                    proc.wait(timeout=rng.uniform(0, work_seconds / (2 * kills)))
                except subprocess.TimeoutExpired:
                    proc.send_signal(signal.SIGKILL)
                    done_kills += 1
            err = proc.communicate()[1]
            if proc.returncode not in (0, -signal.SIGKILL):
                raise RuntimeError(f"run {runs} failed: {err[-2000:]}")
        calls = len(server.requests)
    result = finished(out)
    counted = json.loads((out / "result.json").read_text())["calls"]  # what the run's budget counted as paid
    shutil.rmtree(work)
    return {"kills": done_kills, "runs": runs, "reference_seconds": round(seconds, 1),
            "reference_work_seconds": round(work_seconds, 1), "same_result": result == reference,
            "reference": reference, "result": result, "reference_calls": reference_calls, "calls": calls,
            "counted_calls": counted}


def fault_test(data_dir: str, rng: random.Random, rate: float = 0.2) -> dict:
    work = Path(tempfile.mkdtemp(prefix="chaos-faults-"))
    with FakeOpenAIServer(answer=answer) as server:
        assert run_once(optimize_args(server.base_url, data_dir, work / "clean")).returncode == 0
        clean, clean_calls = finished(work / "clean"), len(server.requests)
    kinds = ["429", "500", "malformed", "slow"]
    with FakeOpenAIServer(answer=answer, slow_seconds=0.3) as server:
        plan = [rng.choice(kinds) if rng.random() < rate else "none" for _ in range(20000)]
        server.faults = list(plan)  # popped from the front, one per request
        proc = run_once(optimize_args(server.base_url, data_dir, work / "faulty"))
        faulty, requests = finished(work / "faulty"), len(server.requests)
        injected = {kind: plan[:requests].count(kind) for kind in kinds}
    shutil.rmtree(work)
    return {"rate": rate, "exit_code": proc.returncode, "same_result": faulty == clean, "clean_calls": clean_calls,
            "requests": requests, "injected_faults": injected, "kinds": kinds}


def budget_tests(data_dir: str) -> list[dict]:
    rows = []
    for n in (100, 105, 120):
        with FakeOpenAIServer(answer=answer) as server, tempfile.TemporaryDirectory() as tmp:
            proc = run_once(optimize_args(server.base_url, data_dir, Path(tmp) / "run", ["--max-calls", str(n)]))
            rows.append(_budget_row("loop: target + judge + AR writer", n, proc, server))
    for n in (540, 560, 600):  # the reserve for the seed and best prompts on test is 488 of them
        with FakeOpenAIServer(answer=answer) as server, tempfile.TemporaryDirectory() as tmp:
            proc = run_once(tau_args(server.base_url, data_dir, Path(tmp) / "run", ["--max-calls", str(n)]))
            rows.append(_budget_row("loop, τ-bench: target + user model + AR writer", n, proc, server))
    for peer in ("gepa", "mipro"):
        for n in (120, 200):
            with FakeOpenAIServer(answer=answer) as server, tempfile.TemporaryDirectory() as tmp:
                url = server.base_url
                proc = run_once([sys.executable, "-m", "dlmpo", "compare", "--task", "sst2", "--target", f"{url}#target",
                                 "--optimizer-model", f"{url}#writer", "--optimizers", peer, "--seeds", "1",
                                 "--max-calls", str(n), "--rounds", "3", "--candidates", "2", "--train-size", "16",
                                 "--val-size", "16", "--test-size", "16", "--data-dir", data_dir, "--out", str(Path(tmp) / "cmp"),
                                 "--json"])
                rows.append(_budget_row(f"peer {peer}: target + reflection/proposal model", n, proc, server))
    return rows


def _budget_row(what: str, n: int, proc: subprocess.CompletedProcess, server: FakeOpenAIServer) -> dict:
    by_role: dict[str, int] = {}
    for body in server.requests:
        by_role[body["model"]] = by_role.get(body["model"], 0) + 1
    return {"what": what, "budget": n, "exit_code": proc.returncode, "server_calls": len(server.requests),
            "by_role": by_role, "held": len(server.requests) <= n,
            "error": proc.stderr.strip().splitlines()[-1] if proc.returncode else None}


def malformed_inputs(data_dir: str) -> list[dict]:
    """Bad rows, configs, specs, prompts, adapters and files: (what, command) pairs, run as a user would."""
    tmp = Path(tempfile.mkdtemp(prefix="chaos-inputs-"))
    (tmp / "rows.jsonl").write_text('{"text": "fine", "label": "a"}\n{"text": "broken", \n')
    (tmp / "task.toml").write_text(f'name = "t"\nseed_prompt = "Label it."\nlabels = ["a", "b"]\n'
                                   f'input_fields = ["text"]\ndata = "{tmp / "rows.jsonl"}"\n')
    (tmp / "unknown_key.toml").write_text('rounds = 2\nfrobnicate = true\n')
    (tmp / "bad_syntax.toml").write_text('rounds = = 2\n')
    (tmp / "bad_type.json").write_text('{"candidates": "many"}')
    (tmp / "notes.jsonl").write_text('{"example_id": 1}\n')
    (tmp / "context.jsonl").write_text('{"query": "q"\n')
    (tmp / "empty_adapter").mkdir()
    (tmp / "run_with_bad_result").mkdir()
    (tmp / "run_with_bad_result" / "result.json").write_text("{not json")
    (tmp / "train.jsonl").write_text('{"prompt": 3}\n')
    (tmp / "problems.jsonl").write_text('{"task_id": "x"}\n')
    (tmp / "trajectories.json").write_text('{"not": "a list"}')
    (tmp / "bad_data" / "sst2").mkdir(parents=True)
    for split in ("train", "dev"):
        (tmp / "bad_data" / "sst2" / f"{split}.tsv").write_text("no header and no tabs\n")
    dl = ["--data-dir", data_dir]
    opt = ["optimize", "--task", "sst2", "--rounds", "1", "--dry-run", *dl]
    cases = [
        ("unknown task", ["eval", "--task", "nope"]),
        ("task file with a malformed row", ["eval", "--task", str(tmp / "task.toml")]),
        ("unknown target specifier", ["eval", "--task", "sst2", "--target", "gpt4", *dl]),
        ("HTTP target without a model name", ["eval", "--task", "sst2", "--target", "http://127.0.0.1:9/v1", *dl]),
        ("data directory that does not exist", ["eval", "--task", "sst2", "--data-dir", "/no/such/dir"]),
        ("data file without the expected columns", ["eval", "--task", "sst2", "--data-dir", str(tmp / "bad_data")]),
        ("config with an unknown setting", [*opt, "--config", str(tmp / "unknown_key.toml")]),
        ("config that is not TOML", [*opt, "--config", str(tmp / "bad_syntax.toml")]),
        ("config with a wrong type", [*opt, "--config", str(tmp / "bad_type.json")]),
        ("config file that does not exist", [*opt, "--config", str(tmp / "none.toml")]),
        ("--set of an unknown setting", [*opt, "--set", "frobnicate=1"]),
        ("--set without '='", [*opt, "--set", "rounds"]),
        ("--set of a wrong type", [*opt, "--set", "rounds=many"]),
        ("unknown DLM specifier", [*opt, "--dlm", "foo:bar"]),
        ("unknown tiny-random architecture", [*opt, "--dlm", "tiny-random:gpt"]),
        ("adapter directory that does not exist", [*opt, "--adapter", str(tmp / "no_adapter")]),
        ("adapter directory without weights", [*opt, "--adapter", str(tmp / "empty_adapter")]),
        ("unknown mask strategy", [*opt, "--strategy", "shuffle"]),
        ("unknown feedback source", [*opt, "--feedback", "vibes"]),
        ("judge feedback without a judge", [*opt, "--feedback", "judge"]),
        ("human notes file that does not exist", [*opt, "--feedback", "human", "--human-notes", str(tmp / "none.txt")]),
        ("human notes with a malformed row", [*opt, "--feedback", "human", "--human-notes", str(tmp / "notes.jsonl")]),
        ("seed prompt longer than the DLM can rewrite", [*opt, "--dlm", "tiny-random:dream", "--prompt", "word " * 3000]),
        ("infill text without masks", ["infill", "--dlm", "tiny-random:dream", "--text", "no masks here"]),
        ("infill span longer than the DLM reads", ["infill", "--dlm", "tiny-random:dream", "--text", "x [MASK:5000]"]),
        ("infill context with a malformed row", ["infill", "--dlm", "tiny-random:dream", "--text", "x [MASK:2]",
                                                 "--context", str(tmp / "context.jsonl")]),
        ("unknown remasking rule", ["infill", "--dlm", "tiny-random:dream", "--text", "x [MASK:2]", "--alg", "best"]),
        ("report of a directory without a run", ["report", str(tmp / "no_run")]),
        ("report of a corrupted result.json", ["report", str(tmp / "run_with_bad_result")]),
        ("training rows of the wrong shape", ["train", "--dlm", "tiny-random:dream", "--data", str(tmp / "train.jsonl"),
                                              "--out", str(tmp / "train_out"), "--steps", "1"]),
        ("code problems without fields", ["eval", "--task", str(tmp / "problems.jsonl")]),
        ("τ-bench trajectories that are not a list", ["tau", "replay", "--trajectories", str(tmp / "trajectories.json"),
                                                      "--domain", "airline", *dl]),
        ("unknown optimizer in compare", ["compare", "--optimizers", "dlm,miprov9", "--max-calls", "10", *dl]),
        ("unknown sweep setting", ["sweep", "--param", "nonsense", "--values", "1,2", "--max-calls", "10", *dl]),
    ]
    rows = []
    for what, args in cases:
        proc = subprocess.run([sys.executable, "-m", "dlmpo", *args], capture_output=True, text=True, cwd=ROOT, timeout=300)
        errors = [ln.strip() for ln in proc.stderr.splitlines() if ln.strip().startswith("error:")]
        rows.append({"what": what, "exit_code": proc.returncode, "traceback": "Traceback" in proc.stderr,
                     "message": errors[-1] if errors else proc.stderr.strip()[-300:],
                     "ok": proc.returncode == 2 and "Traceback" not in proc.stderr and len(errors) == 1})
    shutil.rmtree(tmp)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--data-dir", default=os.environ.get("DLMPO_DATA_DIR", str(ROOT.parent / "shared" / "data")))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", default="kill,faults,budgets,inputs")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "chaos.json"))
    a = ap.parse_args()
    rng, parts, report = random.Random(a.seed), a.only.split(","), {}
    if "kill" in parts:
        report["kill"] = []
        for what, make_args in KILL_RUNS.items():
            k = kill_test(a.data_dir, a.kills, rng, make_args)
            report["kill"].append({"run": what, **k})
            print(f"{what}: kill -9 x{k['kills']} over {k['runs']} runs (uninterrupted: {k['reference_seconds']} s): "
                  f"same result {k['same_result']}, server calls {k['calls']} (uninterrupted {k['reference_calls']}), "
                  f"counted by the run as paid {k['counted_calls']}")
    if "faults" in parts:
        f = report["faults"] = fault_test(a.data_dir, rng)
        print(f"{f['rate']:.0%} faults {f['injected_faults']}: exit {f['exit_code']}, same result as clean "
              f"{f['same_result']}, {f['requests']} requests (clean {f['clean_calls']})")
    if "budgets" in parts:
        report["budgets"] = budget_tests(a.data_dir)
        print("\n| run | budget N | server calls | by role | held | exit |\n|---|---|---|---|---|---|")
        for r in report["budgets"]:
            print(f"| {r['what']} | {r['budget']} | {r['server_calls']} | {r['by_role']} | {r['held']} | {r['exit_code']} |")
    if "inputs" in parts:
        report["inputs"] = malformed_inputs(a.data_dir)
        print("\n| malformed input | exit | one error line, no traceback | message |\n|---|---|---|---|")
        for r in report["inputs"]:
            print(f"| {r['what']} | {r['exit_code']} | {r['ok']} | {r['message'][:150]} |")
        print(f"\n{sum(r['ok'] for r in report['inputs'])} of {len(report['inputs'])} malformed inputs: exit 2 with one error line")
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(report, indent=1, ensure_ascii=False))
    print(f"JSON: {a.out}")


if __name__ == "__main__":
    main()
