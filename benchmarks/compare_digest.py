"""Digest of a `dlmpo compare` folder, for docs/benchmarks.md: per run, the test and val scores,
paid and optimizing calls, every challenger's decision (both looks) and how many candidates were
repeats; prints a table and writes JSON.

Run: python -m benchmarks.compare_digest runs/cmp --command "dlmpo compare ..." --out benchmarks/results/x.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from dlmpo.optimizer.events import CandidateScored, Decision, Eval, parse_event
from dlmpo.runs.rundir import RunDir

DECISION_KEYS = ("round", "val", "incumbent_val", "wins", "losses", "p_value", "level", "first_p", "confirmed_on",
                 "accepted", "dropped", "scored")


def digest_run(run_dir: Path) -> dict:
    result = json.loads((run_dir / "result.json").read_text())
    events = [parse_event(e) for e in RunDir(run_dir).events()]
    tests = {e.which: e.n for e in events if isinstance(e, Eval) and e.split == "test"}
    # the best prompt's test calls are cache hits when it is the seed prompt
    test_calls = tests["seed"] + (tests["best"] if result["best_prompt"] != result["seed_prompt"] else 0)
    candidates = [e.candidate for e in events if isinstance(e, CandidateScored)]
    decisions = [{k: v for k, v in e.to_json().items() if k in DECISION_KEYS} for e in events if isinstance(e, Decision)]
    return {"test": result["test"], "val": result["val"], "calls": result["calls"],
            "optimizing_calls": result["calls"] - test_calls, "seconds": round(result["seconds"], 1),
            "best_prompt": result["best_prompt"], "decisions": decisions, "candidates": len(candidates),
            "repeats_left": sum(c.rejected == "duplicate of another candidate" for c in candidates),
            "redrawn": sum(c.draws > 1 for c in candidates)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--command", default="", help="the command that made the folder, kept in the JSON")
    ap.add_argument("--note", default="")
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    summary = json.loads((a.folder / "compare.json").read_text())
    runs = {d.name: digest_run(d) for d in sorted(a.folder.iterdir()) if (d / "result.json").is_file()}
    print("| run | test (seed prompt) | paid calls | optimizing calls | challenges (accepted) | repeats redrawn / left |")
    print("|---|---|---|---|---|---|")
    for name, r in runs.items():
        accepted = sum(d["accepted"] for d in r["decisions"])
        print(f"| {name} | {r['test']['best']:.3f} ({r['test']['seed']:.3f}) | {r['calls']} | {r['optimizing_calls']} | "
              f"{len(r['decisions'])} ({accepted}) | {r['redrawn']} / {r['repeats_left']} of {r['candidates']} |")
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps({**summary, "runs": runs, "command": a.command, "note": a.note}, indent=1,
                                ensure_ascii=False))
    print(f"JSON: {a.out}")


if __name__ == "__main__":
    main()
