"""Score-per-round plot."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from dlmpo.optimizer.result import OptimizeResult  # noqa: E402


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
