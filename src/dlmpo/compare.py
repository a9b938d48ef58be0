"""The tables, JSON and plots of `compare` (one task; or several, in the paper's layout: tasks as
columns, optimizers as rows) and `sweep` (the runs themselves: `api.compare`, `api.sweep`). Each
run is an ordinary run directory under the output folder, so an interrupted comparison resumes run
by run (finished runs are read back from their result.json)."""

from __future__ import annotations

import statistics
from pathlib import Path

from dlmpo.optimizer.result import OptimizeResult
from dlmpo.optimizer.settings import OptimizeSettings

# the settings every run of a comparison or sweep shares, and the only ones `compare` and `sweep` take as flags
RUN_SETTINGS = ("task", "target", "dlm", "adapter", "optimizer_model", "max_calls", "max_cost", "rounds", "candidates",
                "train_size", "val_size", "test_size", "data_dir")


def _row(optimizer: str, runs: list[OptimizeResult]) -> dict:
    tests = [r.test["best"] for r in runs]
    return {
        "optimizer": optimizer,
        "test_mean": round(statistics.mean(tests), 4),
        "test_std": round(statistics.pstdev(tests), 4) if len(tests) > 1 else 0.0,
        "calls": round(statistics.mean(r.calls for r in runs), 1),
        "tokens": round(statistics.mean(r.usage.get("total_tokens", 0) for r in runs)),
        "seconds": round(statistics.mean(r.seconds for r in runs), 1),
        "prompt_chars": round(statistics.mean(len(r.best_prompt) for r in runs)),
        "seeds": len(runs),
    }


def summarize_compare(base: OptimizeSettings, results: dict[str, list[OptimizeResult]], seeds: int) -> dict:
    baseline = statistics.mean(r.test["seed"] for runs in results.values() for r in runs)
    return {"results": [_row(o, runs) for o, runs in results.items()], "baseline_test": round(baseline, 4),
            "task": base.task, "target": base.target, "max_calls": base.max_calls, "seeds": seeds}


def summarize_grid(base: OptimizeSettings, by_task: dict[str, dict[str, list[OptimizeResult]]], seeds: int,
                   runs: list[tuple[tuple[str, str, int], OptimizeResult]]) -> dict:
    """Each task's comparison, and every run's outcome (the raw JSON of the table)."""
    per_task = {task: summarize_compare(base.model_copy(update={"task": task}), results, seeds)
                for task, results in by_task.items()}
    return {"tasks": list(by_task), "optimizers": list(next(iter(by_task.values()))), "per_task": per_task,
            "target": base.target, "max_calls": base.max_calls, "seeds": seeds,
            "runs": [{"task": task, "optimizer": name, "seed": seed, "run_dir": r.run_dir, "test": r.test, "val": r.val,
                      "calls": r.calls, "cost_usd": r.usage.get("cost_usd", 0.0), "seconds": round(r.seconds, 1),
                      "best_prompt": r.best_prompt} for (task, name, seed), r in runs]}


def grid_table(summary: dict) -> str:
    """The paper's layout: a column per task, a row per optimizer (test mean ± std over seeds), the
    seed prompt's row first."""
    tasks = summary["tasks"]
    cells = {(task, row["optimizer"]): f"{row['test_mean']:.4f} ± {row['test_std']:.4f}"
             for task in tasks for row in summary["per_task"][task]["results"]}
    lines = ["| optimizer | " + " | ".join(tasks) + " |", "|---" * (len(tasks) + 1) + "|",
             "| seed prompt | " + " | ".join(f"{summary['per_task'][t]['baseline_test']:.4f}" for t in tasks) + " |"]
    lines += [f"| {name} | " + " | ".join(cells[(t, name)] for t in tasks) + " |" for name in summary["optimizers"]]
    lines.append(f"\nheld-out test score, mean ± std over {summary['seeds']} seed(s); target {summary['target']}; "
                 f"budget {summary['max_calls']} calls per run")
    return "\n".join(lines) + "\n"


def write_grid_outputs(summary: dict, out: Path) -> None:
    import json

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    (out / "compare.json").write_text(json.dumps(summary, indent=2))
    (out / "compare.md").write_text(grid_table(summary))
    tasks, names = summary["tasks"], summary["optimizers"]
    width = 0.8 / len(names)
    fig, ax = plt.subplots(figsize=(max(5, 1.3 * len(tasks)), 3.4))
    for k, name in enumerate(names):
        rows = [next(r for r in summary["per_task"][t]["results"] if r["optimizer"] == name) for t in tasks]
        ax.bar([i + (k - (len(names) - 1) / 2) * width for i in range(len(tasks))], [r["test_mean"] for r in rows],
               width, yerr=[r["test_std"] for r in rows], capsize=3, label=name)
    for i, task in enumerate(tasks):
        ax.hlines(summary["per_task"][task]["baseline_test"], i - 0.45, i + 0.45, colors="grey", linestyles="--",
                  label="seed prompt" if i == 0 else None)
    ax.set_xticks(range(len(tasks)), tasks)
    ax.set_ylabel("held-out test score")
    ax.set_title(f"on {summary['target']}")
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(out / "compare.png", dpi=120)
    plt.close(fig)


def write_compare_outputs(summary: dict, out: Path) -> None:
    import json

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = summary["results"]
    out.mkdir(parents=True, exist_ok=True)
    (out / "compare.json").write_text(json.dumps(summary, indent=2))
    lines = ["| optimizer | test (mean ± std) | target+writer calls | tokens | seconds | prompt chars |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {r['optimizer']} | {r['test_mean']:.4f} ± {r['test_std']:.4f} | {r['calls']:g} | {r['tokens']} | "
              f"{r['seconds']:g} | {r['prompt_chars']} |" for r in rows]
    lines.append(f"\nseed prompt on test: {summary['baseline_test']:.4f}; {summary['seeds']} seed(s); "
                 f"budget {summary['max_calls']} calls")
    (out / "compare.md").write_text("\n".join(lines) + "\n")
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.bar([r["optimizer"] for r in rows], [r["test_mean"] for r in rows], yerr=[r["test_std"] for r in rows],
           capsize=4, color="#4c72b0")
    ax.axhline(summary["baseline_test"], color="grey", linestyle="--", label="seed prompt")
    ax.set_ylabel("held-out test score")
    ax.set_title(f"{summary['task']} on {summary['target']}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "compare.png", dpi=120)
    plt.close(fig)


def write_sweep_outputs(summary: dict, out: Path) -> None:
    import json

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    (out / "sweep.json").write_text(json.dumps(summary, indent=2))
    rows = summary["results"]
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot([str(r["value"]) for r in rows], [r["test"] for r in rows], marker="o")
    ax.axhline(summary["baseline_test"], color="grey", linestyle="--", label="seed prompt")
    ax.set_xlabel(summary["param"])
    ax.set_ylabel("held-out test score")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "sweep.png", dpi=120)
    plt.close(fig)
