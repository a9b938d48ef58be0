"""Where each round's wall time went, as table rows the report writes in markdown and HTML."""

from __future__ import annotations

from dlmpo.optimizer.result import OptimizeResult, RoundRecord
from dlmpo.optimizer.timing import PHASES


def timed_rounds(result: OptimizeResult) -> list[RoundRecord]:
    """The rounds that carry a timing (runs of earlier versions have none)."""
    return [r for r in result.rounds if r.timing is not None]


def time_table(result: OptimizeResult) -> tuple[list[str], list[list[str]]]:
    """Header and rows: per round its wall seconds, the seconds of each phase any round ran, the
    share of the wall the phases account for, the DLM's forward passes and redraws."""
    rounds = timed_rounds(result)
    phases = [p for p in PHASES if any(p in r.timing.phases for r in rounds)]
    header = ["round", "wall s", *phases, "accounted", "NFE", "redraws"]
    rows = [[str(r.round), f"{r.timing.wall:.2f}", *(f"{r.timing.phases.get(p, 0.0):.2f}" for p in phases),
             f"{r.timing.share:.1%}", str(r.timing.nfe), str(r.timing.redraws)] for r in rounds]
    return header, rows


def run_time_note(result: OptimizeResult) -> str:
    """The run's seconds outside the rounds, e.g. `Outside the rounds (in the last process): seed
    prompt on val and test 4.1s, best prompt on test 2.0s.`; empty for runs of earlier versions."""
    names = {"seed": "seed prompt on val and test", "test": "best prompt on test"}
    parts = [f"{what} {result.timing[key]:.1f}s" for key, what in names.items() if key in result.timing]
    return f"Outside the rounds (in the last process): {', '.join(parts)}." if parts else ""
