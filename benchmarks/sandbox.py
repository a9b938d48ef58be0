"""The code sandbox, old (the `unisolated` backend, opted in) vs new (`bwrap`): which hostile
programs each blocks (tests/support/hostile_programs.py, graded through CodeTask.grade), and the
cost of isolation per program (median ms of N runs of a trivial passing program).

    python -m benchmarks.sandbox [--runs 100]   # table on stdout, benchmarks/results/sandbox.json

Run as root where a cgroup can be made, the new sandbox caps the whole tree's memory; the JSON says
which backend limits were in force (cgroup or not)."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

from dlmpo.code.sandbox import SandboxLimits, run_program
from dlmpo.code.sandbox_cgroup import open_group
from tests.support.hostile_programs import ATTACKS, ENV_NAME, PROBLEM, SECRET, Arena, grade

ROOT = Path(__file__).resolve().parents[1]

RESULTS = ROOT / "benchmarks" / "results"
OLD = SandboxLimits(timeout_s=5.0, allow_unisolated=True, backend="unisolated")
NEW = SandboxLimits(timeout_s=5.0, backend="bwrap")


def timing(limits: SandboxLimits, runs: int) -> dict:
    program = PROBLEM.program(PROBLEM.canonical_solution)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        assert run_program(program, limits).passed
        times.append((time.perf_counter() - start) * 1000)
    return {"median_ms": round(statistics.median(times), 1), "p90_ms": round(sorted(times)[int(0.9 * runs)], 1),
            "runs": runs}


def main() -> None:
    if os.environ.get(ENV_NAME) != SECRET:  # the key must be in this process's initial environment, as a real one is
        os.execve(sys.executable, [sys.executable, "-m", "benchmarks.sandbox", *sys.argv[1:]],
                  {**os.environ, ENV_NAME: SECRET})
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--note", default="", help="what else ran on the machine, recorded with the timings")
    args = parser.parse_args()
    group = open_group(2**30, 64)
    cgroup = f"v{group.version}: {', '.join(group.caps)}" if group else "none"
    if group:
        group.close()
    rows = []
    arena = Arena()
    try:
        for attack in ATTACKS:
            row = {"attack": attack.name}
            for label, limits in (("old", OLD), ("new", NEW)):
                if attack.destructive and label == "old":  # as root, kill -9 -1 kills every process of the machine
                    row[label], row[f"{label}_evidence"] = "not run", "would kill the host's processes (same uid, same PID namespace)"
                    continue
                outcome = grade(attack, arena, limits)
                row[label] = "blocked" if outcome.blocked else "ESCAPED"
                row[f"{label}_evidence"] = outcome.evidence
            rows.append(row)
    finally:
        arena.close()
    old_t, new_t = timing(OLD, args.runs), timing(NEW, args.runs)
    width = max(len(r["attack"]) for r in rows)
    print(f"{'attack'.ljust(width)}  old      new")
    for r in rows:
        print(f"{r['attack'].ljust(width)}  {r['old'].ljust(7)}  {r['new']}")
    print(f"\ntrivial passing program, median of {args.runs}: old {old_t['median_ms']} ms, new {new_t['median_ms']} ms "
          f"(p90 {old_t['p90_ms']} / {new_t['p90_ms']} ms); cgroup {cgroup}; uid {os.geteuid()}; "
          f"CPUs {os.cpu_count()}{f' ({args.note})' if args.note else ''}")
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "sandbox.json"
    path.write_text(json.dumps({"attacks": rows, "timing": {"old": old_t, "new": new_t}, "cgroup": cgroup,
                                "euid": os.geteuid(), "cpus": os.cpu_count(),
                                "note": args.note}, indent=2))
    print(f"written {path}")


if __name__ == "__main__":
    main()
