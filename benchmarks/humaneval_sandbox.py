"""HumanEval's 164 canonical solutions graded in the sandbox: every one must pass, in the
isolating bwrap sandbox as in the old (unisolated) one.

    python -m benchmarks.humaneval_sandbox [--backend bwrap|unisolated|both]   # JSON in benchmarks/results/"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from dlmpo.code.problems import load_code_problems
from dlmpo.code.sandbox import SandboxLimits, run_programs

RESULTS = Path(__file__).resolve().parent / "results"


def canonical_results(backend: str) -> tuple[list[str], list[str], float]:
    """(task ids, statuses, seconds) of every canonical solution under `backend`."""
    splits = load_code_problems("humaneval")
    problems = sorted(splits.train + splits.val + splits.test, key=lambda p: int(p.task_id.split("/")[1]))
    limits = SandboxLimits(backend=backend, allow_unisolated=backend == "unisolated")
    start = time.perf_counter()
    results = run_programs([p.program(p.canonical_solution) for p in problems], limits, workers=2)
    seconds = time.perf_counter() - start
    return [p.task_id for p in problems], [r.status for r in results], seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", default="both", choices=["bwrap", "unisolated", "both"])
    args = parser.parse_args()
    report = {}
    for backend in (["unisolated", "bwrap"] if args.backend == "both" else [args.backend]):
        ids, statuses, seconds = canonical_results(backend)
        failed = [(i, s) for i, s in zip(ids, statuses) if s != "passed"]
        report[backend] = {"passed": len(ids) - len(failed), "total": len(ids), "seconds": round(seconds, 1),
                           "not_passed": failed}
        print(f"{backend:11s} {len(ids) - len(failed)}/{len(ids)} canonical solutions pass ({seconds:.1f} s, 2 workers)"
              + (f"; not passing: {failed}" if failed else ""))
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "humaneval_sandbox.json"
    path.write_text(json.dumps({**report, "cpus": os.cpu_count(), "euid": os.geteuid(),
                                "note": "2-core machine shared with a background job"}, indent=2))
    print(f"written {path}")


if __name__ == "__main__":
    main()
