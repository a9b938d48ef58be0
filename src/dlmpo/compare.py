"""`dlmpo compare` and `dlmpo sweep`: several optimizer runs under one set of settings, summarized.

Each run is an ordinary run directory under the output folder, so an interrupted comparison
resumes run by run (finished runs are read back from their result.json)."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Callable

from dlmpo.errors import UserError
from dlmpo.optimizer.result import OptimizeResult
from dlmpo.optimizer.settings import OptimizeSettings

OPTIMIZERS = ("dlm", "ar", "textgrad", "gepa", "mipro")
PEERS = ("gepa", "mipro")  # run through their own packages


async def run_one(settings: OptimizeSettings, optimizer: str, out: Path, on_event=None) -> OptimizeResult:
    if (out / "result.json").is_file():  # finished before an interruption: read it back
        done = OptimizeResult.load(out)
        if done.settings == settings.model_dump():
            return done
    if optimizer == "gepa":
        from dlmpo.peers.gepa_peer import run_gepa

        return await run_gepa(settings, out, on_event)
    if optimizer == "mipro":
        from dlmpo.peers.mipro_peer import run_mipro

        return await run_mipro(settings, out, on_event)
    from dlmpo.optimizer import Optimizer

    return await Optimizer(settings, out, on_event=on_event).run()


def settings_for(base: OptimizeSettings, optimizer: str, seed: int) -> OptimizeSettings:
    return base.model_copy(update={"proposer": "dlm" if optimizer in PEERS else optimizer, "seed": seed})


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


async def compare(base: OptimizeSettings, optimizers: list[str], seeds: int, out: Path,
                  on_run: Callable[[str, int, OptimizeResult], None] | None = None) -> dict:
    unknown = [o for o in optimizers if o not in OPTIMIZERS]
    if unknown:
        raise UserError(f"Unknown optimizer '{unknown[0]}': use {', '.join(OPTIMIZERS)}.")
    if base.max_calls is None and base.max_cost is None and base.max_tokens is None:
        raise UserError("A comparison needs one budget for every optimizer: pass --max-calls (or --max-cost).")
    if "gepa" in optimizers:
        from dlmpo.peers.gepa_peer import _require_gepa

        _require_gepa()
    if "mipro" in optimizers:
        from dlmpo.peers.mipro_peer import _require_dspy

        _require_dspy()
    results: dict[str, list[OptimizeResult]] = {}
    for optimizer in optimizers:
        for seed in range(seeds):
            run = await run_one(settings_for(base, optimizer, seed), optimizer, out / f"{optimizer}-seed{seed}")
            results.setdefault(optimizer, []).append(run)
            if on_run:
                on_run(optimizer, seed, run)
    baseline = statistics.mean(r.test["seed"] for runs in results.values() for r in runs)
    summary = {"results": [_row(o, runs) for o, runs in results.items()], "baseline_test": round(baseline, 4),
               "task": base.task, "target": base.target, "max_calls": base.max_calls, "seeds": seeds}
    write_compare_outputs(summary, out)
    return summary


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


async def sweep(base: OptimizeSettings, param: str, values: list[str], out: Path,
                on_run: Callable[[str, OptimizeResult], None] | None = None) -> dict:
    from pydantic import ValidationError

    from dlmpo.configfile import describe_validation_error

    if param not in OptimizeSettings.model_fields or param in ("task", "target", "data_dir"):
        raise UserError(f"Cannot sweep '{param}': use an optimizer setting such as steps, mask_tokens, candidates.")
    rows: list[dict] = []
    baseline = 0.0
    for value in values:
        try:
            settings = OptimizeSettings.model_validate(base.model_dump() | {param: value})
        except ValidationError as exc:
            raise UserError(describe_validation_error(exc, f"--values {value}")) from None
        run = await run_one(settings, settings.proposer, out / f"{param}-{value}")
        rows.append({"value": value, "test": run.test["best"], "val": run.val["best"], "calls": run.calls,
                     "seconds": round(run.seconds, 1)})
        baseline = run.test["seed"]
        if on_run:
            on_run(value, run)
    summary = {"param": param, "results": rows, "baseline_test": baseline, "task": base.task}
    write_sweep_outputs(summary, out)
    return summary


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
