"""The report's plots: score per round, and where each round's wall time went."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from dlmpo.optimizer.result import OptimizeResult  # noqa: E402
from dlmpo.optimizer.timing import PHASES  # noqa: E402
from dlmpo.report.time_table import timed_rounds  # noqa: E402

GRAY = plt.get_cmap("tab10").colors[7]


def plot_rounds(result: OptimizeResult, path: str | Path) -> Path:
    path = Path(path)
    fig, ax = plt.subplots(figsize=(6.4, 3.8), dpi=120)
    rounds = [0] + [r.round for r in result.rounds]
    best = [result.val["seed"]] + [r.best_val for r in result.rounds]
    ax.step(rounds, best, where="post", color="tab:blue", linewidth=2, label="incumbent (full val)")
    first = True
    for r in result.rounds:
        xs = [c.screen_score for c in r.candidates if c.screen_score is not None]
        if xs:
            ax.scatter([r.round] * len(xs), xs, color="tab:orange", alpha=0.6, s=18,
                       label="candidates (screening batch)" if first else None)
            first = False
        ax.scatter([r.round], [r.incumbent_screen_score], color="tab:gray", marker="_", s=200,
                   label="incumbent (screening batch)" if r.round == result.rounds[0].round else None)
    ax.axhline(result.test["seed"], color="tab:red", linestyle=":", linewidth=1, label=f"seed test {result.test['seed']:.3f}")
    ax.axhline(result.test["best"], color="tab:green", linestyle="--", linewidth=1, label=f"best test {result.test['best']:.3f}")
    ax.set_xlabel("round")
    ax.set_ylabel("score")
    ax.set_title(f"{result.task}: score per round")
    ax.set_xticks(rounds)
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_round_times(result: OptimizeResult, path: str | Path) -> Path | None:
    """One stacked horizontal bar per round: seconds per phase, then what the phases leave out of
    the round's wall time. None when no round carries a timing (runs of earlier versions)."""
    rounds = timed_rounds(result)
    if not rounds:
        return None
    path = Path(path)
    fig, ax = plt.subplots(figsize=(7.2, 1.6 + 0.45 * len(rounds)), dpi=120)
    ys = list(range(len(rounds)))
    left = [0.0] * len(rounds)
    colors = [c if c != GRAY else "gold" for c in plt.get_cmap("tab10").colors]  # gray: time no phase covers
    for i, phase in enumerate(PHASES):
        widths = [r.timing.phases.get(phase, 0.0) for r in rounds]
        if any(widths):
            ax.barh(ys, widths, left=left, color=colors[i % len(colors)], label=phase)
            left = [a + w for a, w in zip(left, widths)]
    rest = [max(0.0, r.timing.wall - a) for r, a in zip(rounds, left)]
    ax.barh(ys, rest, left=left, color=GRAY, label="not in a phase")
    ax.set_yticks(ys, [f"round {r.round}" for r in rounds])
    ax.invert_yaxis()
    ax.set_xlabel("wall seconds")
    ax.set_title(f"{result.task}: where each round's time went")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
