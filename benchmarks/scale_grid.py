"""The tiny grid (tests/support/grid.py: 2 tasks x 2 optimizers x 2 seeds, tiny-random DLM, a local
counting OpenAI-compatible server) sequentially and on a local Ray cluster of this machine's CPUs,
back to back, `--repeats` times: wall time of each, Ray's start, the overhead per run (the time a
slot spent outside a run: (wall x slots - sum of the runs' own seconds) / runs), and whether every
run's result and every request to the server are the same.

Run: python -m benchmarks.scale_grid [--repeats 2] [--data-dir ../shared/data] [--note "..."]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import tempfile
import time
from pathlib import Path

import ray

from benchmarks.common import report
from dlmpo import api
from dlmpo.optimizer.settings import OptimizeSettings
from tests.support.fake_openai_server import FakeOpenAIServer
from tests.support.grid import GRID, TINY, answer, comparable

CPUS = 2


def run_grid(base: OptimizeSettings, out: Path, server: FakeOpenAIServer, on_ray: bool) -> dict:
    server.requests.clear()
    start = time.perf_counter()
    asyncio.run(api.compare(base, out=out, ray="local" if on_ray else None, **GRID))
    wall = time.perf_counter() - start
    results = {str(p.relative_to(out)): json.loads(p.read_text()) for p in sorted(out.glob("*/*/result.json"))}
    inside = sum(r["seconds"] for r in results.values())
    slots = CPUS if on_ray else 1
    return {"wall_s": round(wall, 1), "runs_own_s": round(inside, 1),
            "overhead_per_run_s": round((wall * slots - inside) / len(results), 2),
            "requests": sorted(json.dumps(r, sort_keys=True) for r in server.requests), "results": results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--note", default="", help="what else ran on the machine")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="scale-grid-"))
    rows = []
    with FakeOpenAIServer(answer=answer) as server:
        base = OptimizeSettings(target=f"{server.base_url}#target", optimizer_model=f"{server.base_url}#writer",
                                data_dir=args.data_dir, **TINY)
        for k in range(args.repeats):
            sequential = run_grid(base, work / f"seq{k}", server, on_ray=False)
            start = time.perf_counter()
            ray.init(num_cpus=CPUS, include_dashboard=False, log_to_driver=False, logging_level="warning")
            ray_start = time.perf_counter() - start
            try:
                on_ray = run_grid(base, work / f"ray{k}", server, on_ray=True)
            finally:
                ray.shutdown()
            same = all(comparable(r) == comparable(on_ray["results"][name]) for name, r in sequential["results"].items())
            for where, grid, started in (("sequential", sequential, None), ("ray, 2 CPUs", on_ray, ray_start)):
                rows.append({"repeat": k, "where": where, "ray_start_s": round(started, 1) if started else "-",
                             "wall_s": grid["wall_s"], "runs_own_s": grid["runs_own_s"],
                             "overhead_per_run_s": grid["overhead_per_run_s"], "requests": len(grid["requests"]),
                             "results_equal": same, "requests_equal": sequential["requests"] == on_ray["requests"]})
    shutil.rmtree(work)
    report("scale_grid", rows, {"grid": GRID, "settings": TINY, "note": args.note,
                                "overhead": "(wall x slots - sum of the runs' own seconds) / runs; ray wall excludes ray_start"})


if __name__ == "__main__":
    main()
