"""Where the optimizer's wall time goes: one `dlmpo optimize` with the given settings, then each
round's seconds per phase (loading the proposer in the first round, traces, feedback, DLM canvases
and sampling with its forward passes and redraws, the proposer's other work, candidate checks,
screening, the challenger on val and the confirmation pool), the share of the round's wall time the
phases account for, and the run's seconds outside the rounds (the seed prompt's scoring, the best
prompt on test). The timings come from the run's result.json, so the run directory also keeps them;
a run directory that already holds a finished run is read back, not run again.

    python -m benchmarks.round_time --data-dir ../shared/data                       # all defaults
    python -m benchmarks.round_time --set dlm=tiny-random:dream --set rounds=2 --set candidates=2 \\
        --set train_size=6 --set val_size=8 --set test_size=8 --set batch_size=4 --set screen_batch=8 \\
        --set steps=8 --set mask_tokens=8 --out /tmp/round_time
"""

from __future__ import annotations

import argparse
import tempfile

from benchmarks.common import report
from dlmpo import api
from dlmpo.optimizer.result import OptimizeResult
from dlmpo.optimizer.timing import PHASES
from dlmpo.report.time_table import run_time_note, timed_rounds


def breakdown(result: OptimizeResult) -> list[dict]:
    """One row per timed round: wall seconds, every phase's seconds (0 where it did not run), the
    share the phases account for, NFE and redraws."""
    return [{"round": r.round, "wall_s": r.timing.wall, **{p: r.timing.phases.get(p, 0.0) for p in PHASES},
             "accounted": round(r.timing.share, 4), "nfe": r.timing.nfe, "redraws": r.timing.redraws}
            for r in timed_rounds(result)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--task", default="sst2")
    ap.add_argument("--target", default="embedded")
    ap.add_argument("--data-dir", default="../shared/data")
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="any optimize setting")
    ap.add_argument("--out", default=None, help="the run directory (default: a new temporary one)")
    ap.add_argument("--name", default="round_time", help="results file name under benchmarks/results/")
    args = ap.parse_args()
    settings = api.make_settings(overrides={"task": args.task, "target": args.target, "data_dir": args.data_dir},
                                 sets=args.set)
    out = args.out or tempfile.mkdtemp(prefix="round_time-")
    result = api.run_optimizer(settings, out)
    rows = breakdown(result)
    if not rows:
        raise SystemExit(f"No round in {out} carries a timing (none ran, or an earlier version ran them).")
    report(args.name, rows, {"settings": settings.model_dump(), "run_dir": str(out), "run_seconds": result.seconds,
                             "outside_rounds": result.timing, "stop_reason": result.stop_reason})
    print(run_time_note(result))


if __name__ == "__main__":
    main()
