"""The paper's Table 1 at full scale, on paper: 6 tasks x 4 optimizers x 3 seeds = 72 runs with
the default optimizer settings, GPT-4o-mini as target (and writer, and τ-bench user), Dream-7B as
the DLM. Target calls and tokens per run come from the run's own estimator (what `dlmpo optimize
--dry-run` prints: every batch at full size, no cache hits), dollars from dlmpo's GPT-4o-mini list
price. Nothing is called and no model loads; only the task data is read.

Time, from two H100 measurements already committed: seconds per call of the controlled SST-2
comparison on a lent H100 (its `ar` runs: target and writer on the GPU; taken as what a call costs
a run), and seconds per Dream-7B infill (64 steps, 2,136-token context, batch 1; a round's
candidates as that many infills, the GPU being compute-bound). A `dlm` run holds its GPU for its
whole wall time; the 18 of them are placed on 8 GPUs longest first. Dream-7B's load is not counted
(not measured).

Run: python -m benchmarks.paper_grid_estimate [--data-dir ../shared/data]
"""

from __future__ import annotations

import argparse
import heapq
import json

from benchmarks.common import RESULTS, report
from dlmpo import api
from dlmpo.lm.pricing import PriceTable
from dlmpo.lm.types import Usage

TASKS = ["sst2", "sst5", "mrpc", "snli", "tau-airline", "tau-retail"]
OPTIMIZERS, SEEDS = 4, 3
MODEL = "openai:gpt-4o-mini"
GPUS = 8


def seconds_per_call() -> float:
    rows = json.loads((RESULTS / "compare_sst2_controlled_h100.json").read_text())["results"]
    ar = next(r for r in rows if r["optimizer"] == "ar")
    return ar["seconds"] / ar["calls"]


def seconds_per_infill() -> float:
    rows = json.loads((RESULTS / "dlm_sampler_dream7b_cuda_ctx2048.json").read_text())["rows"]
    return next(r for r in rows if r["variant"] == "one token per step")["seconds"]


def makespan(jobs: list[float], machines: int) -> float:
    """Longest job first, each on the machine that frees first."""
    loads = [0.0] * machines
    for job in sorted(jobs, reverse=True):
        heapq.heapreplace(loads, loads[0] + job)
    return max(loads)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default="../shared/data")
    args = parser.parse_args()
    price = PriceTable().price("gpt-4o-mini", local=False)
    per_call, per_infill = seconds_per_call(), seconds_per_infill()
    rows, gpu_runs = [], []
    for task in TASKS:
        settings = api.make_settings(None, {"task": task, "target": MODEL, "optimizer_model": MODEL,
                                            "dlm": "dream:Dream-org/Dream-v0-Instruct-7B", "data_dir": args.data_dir,
                                            "user_model": MODEL if task.startswith("tau") else "scripted"})
        est = api.prepare_optimizer(settings, "/tmp/paper-grid-estimate-unused").estimate()
        dollars = price.cost(Usage(est["prompt_tokens"], est["completion_tokens"]))
        dlm_run_s = est["calls"] * per_call + settings.rounds * settings.candidates * per_infill
        gpu_runs += [dlm_run_s] * SEEDS
        rows.append({"task": task, "rounds": settings.rounds, "candidates": settings.candidates,
                     "calls_per_run": est["calls"], "prompt_tokens_per_run": est["prompt_tokens"],
                     "completion_tokens_per_run": est["completion_tokens"], "usd_per_run": round(dollars, 3),
                     "runs": OPTIMIZERS * SEEDS, "calls": est["calls"] * OPTIMIZERS * SEEDS,
                     "usd": round(dollars * OPTIMIZERS * SEEDS, 2), "dlm_run_s": round(dlm_run_s)})
    rows.append({"task": "all", "rounds": "-", "candidates": "-", "calls_per_run": "-", "prompt_tokens_per_run": "-",
                 "completion_tokens_per_run": "-", "usd_per_run": "-", "runs": sum(r["runs"] for r in rows),
                 "calls": sum(r["calls"] for r in rows), "usd": round(sum(r["usd"] for r in rows), 2), "dlm_run_s": "-"})
    wall = makespan(gpu_runs, GPUS)
    time = {"seconds_per_call": round(per_call, 4), "seconds_per_infill": round(per_infill, 2),
            "gpu_hours": round(sum(gpu_runs) / 3600, 2), f"wall_minutes_on_{GPUS}_gpus": round(wall / 60, 1),
            "calls_per_minute_needed": round(rows[-1]["calls"] / (wall / 60))}
    print(json.dumps(time))
    report("paper_grid_estimate", rows, {"price_usd_per_1M": [price.input_per_million, price.output_per_million],
                                         "model": MODEL, "time": time})


if __name__ == "__main__":
    main()
