"""The embedded target on SST-2's labelled dev sentences (examples/s, peak RSS): float32 weights
with plain batches (the old path), float32 with the batch's shared system-prompt K/V, and bfloat16
with shared K/V (the default on a CPU with native bf16), side by side in one run; and the
client's own overhead against a local server that answers at once (requests/s at concurrency 1,
16, 64). Peak RSS is the process's, so it is the maximum over the rows run so far.

    python -m benchmarks.target_client --data-dir ../shared/data [--n 872]"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import report
from dlmpo.catalog import get_task
from dlmpo.evaluate import evaluate
from dlmpo.lm import ChatRequest, open_target


def embedded(data_dir: str, n: int, max_tokens: int, share_prefix: bool, dtype: str) -> dict:
    task = get_task("sst2", data_dir)
    rows = (task.examples("val") + task.examples("test"))[:n]  # the 872 labelled dev sentences
    os.environ["DLMPO_LOCAL_DTYPE"] = dtype
    model = open_target("embedded", use_cache=False)
    model.backend.share_prefix = share_prefix

    async def go():
        await evaluate(task, model, task.seed_prompt, rows[:8], max_tokens=max_tokens)  # warm-up
        start = time.perf_counter()
        res = await evaluate(task, model, task.seed_prompt, rows, max_tokens=max_tokens)
        seconds = time.perf_counter() - start
        await model.aclose()
        return res, seconds

    res, seconds = asyncio.run(go())
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    how = "shared system-prompt K/V" if share_prefix else "plain batches"
    return {"what": f"embedded SmolLM2 {dtype}, sst2 dev, max_tokens={max_tokens}, {how}", "n": res.n,
            "per_second": res.n / seconds, "seconds": seconds, "accuracy": res.score, "peak_rss_mb": rss_mb}


def client_overhead(requests: int, concurrency: int, port: int, use_cache: bool) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        model = open_target(f"http://127.0.0.1:{port}/v1#bench", cache_path=Path(tmp) / "c.sqlite",
                            use_cache=use_cache, concurrency=concurrency)

        async def go():
            reqs = [ChatRequest(messages=[{"role": "user", "content": f"q{i}"}], max_tokens=4) for i in range(requests)]
            await asyncio.gather(*(model.chat(r) for r in reqs[:50]))  # warm the pool
            start = time.perf_counter()
            await asyncio.gather(*(model.chat(r) for r in reqs[50:]))
            seconds = time.perf_counter() - start
            await model.aclose()
            return seconds

        seconds = asyncio.run(go())
    n = requests - 50
    return {"what": f"client -> instant local server, concurrency {concurrency}, cache {'on' if use_cache else 'off'}",
            "n": n, "per_second": n / seconds, "seconds": seconds, "accuracy": "", "peak_rss_mb": ""}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", default="../shared/data")
    ap.add_argument("--n", type=int, default=872, help="SST-2 dev sentences (val + test carved from dev)")
    ap.add_argument("--requests", type=int, default=2050)
    args = ap.parse_args()
    rows = []
    port = free_port()
    server = subprocess.Popen([sys.executable, str(Path(__file__).parent / "fast_server.py"), str(port)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout.readline().strip() == "ready"
        for conc in (1, 16, 64):
            rows.append(client_overhead(args.requests, conc, port, use_cache=False))
        rows.append(client_overhead(args.requests, 64, port, use_cache=True))
    finally:
        server.terminate()
    for max_tokens in (5, 16):
        for dtype, share_prefix in (("float32", False), ("float32", True), ("bfloat16", True)):
            rows.append(embedded(args.data_dir, args.n, max_tokens, share_prefix, dtype))
    report("target_client", rows, {"goals": {"embedded_examples_per_s": 10, "peak_rss_mb": 2048,
                                             "client_requests_per_s_at_64": 500}})


if __name__ == "__main__":
    main()
