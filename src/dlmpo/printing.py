"""What the commands print: event lines and summaries of each result, and the JSON object of
`--json`. Each function takes `ui`, anything with `print(text)`, `note(text)` and
`emit_json(obj)` (`console.Output` on the terminal); nothing here builds or runs anything."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import Any, Protocol


class UI(Protocol):
    def print(self, text: str) -> None: ...
    def note(self, text: str) -> None: ...
    def emit_json(self, obj: dict[str, Any]) -> None: ...


def one_line(text: str) -> str:
    return " ".join(text.split())


_python_showwarning = warnings.showwarning


def show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """dlmpo's own warnings as one `warning: ...` line; others as Python prints them."""
    from dlmpo.errors import DlmpoWarning

    if issubclass(category, DlmpoWarning):
        print(f"warning: {one_line(str(message))}", file=sys.stderr)
    else:
        _python_showwarning(message, category, filename, lineno, file, line)


def _metrics(metrics: dict) -> str:
    return "  ".join(f"{k} {v:.4f}" for k, v in metrics.items() if v is not None)


# ---------------------------------------------------------------- optimize, report, compare, sweep


def optimizer_events(ui: UI):
    """The optimizer's typed events as lines on the terminal."""
    from rich.markup import escape

    from dlmpo.optimizer.events import CandidateScored, Decision, Eval, Event, RoundEnd, RunStart, Stop

    def show(e: Event) -> None:
        if isinstance(e, RunStart):
            est = e.estimate
            ui.print(("resuming: rounds done " + str(e.completed_rounds) + "\n" if e.resume else "")
                     + f"estimate (no cache hits, full batches): {est['calls']} target calls, "
                     f"~{est['prompt_tokens'] + est['completion_tokens']} tokens, ~${est['cost_usd']:.4f}")
            if e.val_warning:
                ui.note(e.val_warning)
        elif isinstance(e, Eval) and e.which in ("seed", "best"):
            ui.print(f"{e.which} prompt on {e.split}: {e.score:.4f} (n={e.n}, parse failures {e.parse_failures})")
        elif isinstance(e, Eval) and e.which == "traces":
            ui.print(f"[bold]round {e.round}[/bold]: incumbent on {e.n} train examples {e.score:.3f}")
        elif isinstance(e, CandidateScored):
            c = e.candidate
            if c.rejected:
                ui.print(f"  candidate {c.index} \\[{c.strategy}] rejected: {escape(c.rejected)}")
            else:
                drawn = f", drawn {c.draws}x" if c.draws > 1 else ""
                ui.print(f"  candidate {c.index} \\[{c.strategy}] screening {c.screen_score:.3f} "
                         f"(+{c.wins}/-{c.losses} vs incumbent), {c.nfe} DLM forwards {c.dlm_seconds:.1f}s{drawn}")
        elif isinstance(e, Decision):
            verdict = "accepted" if e.accepted else "kept incumbent"
            sep = "; " if e.verdict.dropped else ": "
            ui.print(f"  challenger {e.index} {e.verdict.describe(e.val, e.incumbent_val)}{sep}{verdict}")
        elif isinstance(e, RoundEnd):
            sp = e.spend
            ui.print(f"  best val {e.best_val:.4f} | spent {sp['calls']} calls, {sp['total_tokens']} tokens, ${sp['cost_usd']:.4f}")
        elif isinstance(e, Stop) and e.reason != "rounds":
            ui.print(f"stopped early: {e.reason}")

    return show


def estimate(ui: UI, run_dir: Path, est: dict) -> None:
    """A dry run's call and token estimate."""
    ui.print(f"estimate (no cache hits, full batches): {est['calls']} target calls, "
             f"~{est['prompt_tokens'] + est['completion_tokens']} tokens")
    ui.emit_json({"run_dir": str(run_dir), "estimate": est})


def held_out_line(test: dict) -> str:
    """`0.5550 ± 0.047 -> 0.5963 ± 0.047, gain +0.0413 ± 0.029 (+30/-12 of 436 rows, p=0.00396; rows ran
    out)`: both test scores and the gain with their 95% intervals, the best prompt's wins and losses
    against the seed prompt on the same rows, and why test scoring stopped; a run of an earlier
    version shows the scores and the wins and losses it holds."""
    from dlmpo.optimizer.held_out import shown_with_intervals

    shown = shown_with_intervals(test)
    if shown is None:
        paired = f" (+{test['wins']}/-{test['losses']} rows, p={test['p_value']:.3g})" if "wins" in test else ""
        return f"{test['seed']:.4f} -> {test['best']:.4f}{paired}"
    seed, best, gain = shown
    return (f"{seed} -> {best}, gain {gain} (+{test['wins']}/-{test['losses']} of {test['rows']} rows, "
            f"p={test['p_value']:.3g}; {test['stopped']})")


def optimized(ui: UI, run_dir: Path, result) -> None:
    ui.print(f"[bold]val[/bold] {result.val['seed']:.4f} -> {result.val['best']:.4f}   "
             f"[bold]test[/bold] {held_out_line(result.test)}   "
             f"({len(result.rounds)} rounds, "
             f"{result.calls} calls, ${result.usage['cost_usd']:.4f}, {result.seconds:.0f}s)")
    ui.print(f"best prompt: {run_dir / 'best_prompt.txt'}\nreport: {run_dir / 'report.md'} and {run_dir / 'report.html'}")
    ui.emit_json(result.summary())


def report(ui: UI, paths: dict[str, Path], result) -> None:
    ui.print(f"val {result.val['seed']:.4f} -> {result.val['best']:.4f}, test {held_out_line(result.test)}")
    ui.print(f"report: {', '.join(str(path) for path in paths.values())}")  # markdown, html, plots
    ui.emit_json({k: str(v) for k, v in paths.items()} | {"val": result.val, "test": result.test})


def compare_run(ui: UI, grid: bool = False):
    """One finished run of a comparison: (optimizer, seed, result); a grid's lines name the task."""
    return lambda o, seed, r: ui.print(f"{f'{r.task} ' if grid else ''}{o} seed {seed}: test {r.test['seed']:.4f} -> "
                                       f"{r.test['best']:.4f}, {r.calls} calls, {r.seconds:.0f}s")


def compared(ui: UI, out: Path, summary: dict) -> None:
    ui.print((out / "compare.md").read_text())
    ui.print(f"table {out / 'compare.md'}, plot {out / 'compare.png'}, raw {out / 'compare.json'}")
    if "per_task" in summary:  # several tasks: the paper's table
        ui.emit_json({"tasks": summary["tasks"], "per_task": {t: {"results": s["results"], "baseline_test": s["baseline_test"]}
                                                               for t, s in summary["per_task"].items()}})
    else:
        ui.emit_json({"results": summary["results"], "baseline_test": summary["baseline_test"]})


def sweep_run(ui: UI, param: str):
    """One finished run of a sweep: (value, result)."""
    return lambda v, r: ui.print(f"{param}={v}: test {r.test['best']:.4f}, {r.calls} calls")


def swept(ui: UI, param: str, out: Path, summary: dict) -> None:
    ui.print(f"{param:>12}  test    val     calls  seconds")
    for r in summary["results"]:
        ui.print(f"{r['value']:>12}  {r['test']:.4f}  {r['val']:.4f}  {r['calls']:>5}  {r['seconds']}")
    ui.print(f"plot {out / 'sweep.png'}")
    ui.emit_json(summary)


# ---------------------------------------------------------------- eval, infill, train


def evaluated(ui: UI, done, split: str) -> None:
    """An `api.EvalSummary`: score, metrics, failures and spend."""
    r, usage = done.result, done.usage
    ui.print(f"[bold]{done.task}/{split}[/bold]  score {r.score:.4f}  n={r.n}  "
             + "  ".join(f"{k} {v:.4f}" for k, v in r.metrics.items()))
    ui.print(f"parse failures {r.parse_failures}  target failures {r.failures}  calls {usage['calls']} (cache hits "
             f"{usage['cache_hits']})  tokens {usage['total_tokens']}  cost ${usage['cost_usd']:.4f}")
    if "traces" in done.written:
        ui.print(f"traces written to {done.written['traces']}")
    ui.emit_json(done.to_json())


def soft_prompt_scored(ui: UI, task: str, split: str, summary: dict) -> None:
    ui.print(f"[bold]{task}/{split}[/bold] soft prompt {summary['soft_prompt']['variant']} from "
             f"{summary['soft_prompt']['run_dir']}: n={summary['n']}  " + _metrics(summary["metrics"]))
    ui.emit_json(summary)


def infilled(ui: UI, result, seconds: float, steps: int, alg: str) -> None:
    for note in result.notes:
        ui.note(note)
    for i, cand in enumerate(result.candidates, 1):
        ui.print(f"[bold]candidate {i}[/bold]: {cand.text}")
    ui.print(f"{result.masks} masks, {result.nfe} forwards ({result.masks / result.nfe:.2f} tokens/forward), "
             f"sampling {result.seconds:.2f}s, canvas {result.canvas_tokens} tokens, traces {result.traces_used}")
    ui.emit_json({"candidates": [{"text": c.text, "spans": c.spans, "nfe": c.nfe} for c in result.candidates],
                  "steps": steps, "alg": alg, "seconds": round(seconds, 3),
                  "sampling_seconds": round(result.seconds, 3), "masks": result.masks})


def train_events(ui: UI, eval_on: str):
    """The trainer's log entries worth a line."""

    def show(e: dict) -> None:
        if e["type"] == "eval":
            ui.print(f"step {e['step']}: held-out {eval_on} tokens loss {e['loss']:.4f}, accuracy {e['accuracy']:.4f}")
        elif e["type"] == "warning":
            ui.note(e["text"])
        elif e["type"] == "resume":
            ui.print(f"resuming at step {e['step']} ({e['tokens_seen']:,} tokens seen)")
        elif e["type"] == "data" and (e["train_dropped"] or e["held_out_dropped"]):
            ui.print(f"{e['train_dropped']} training and {e['held_out_dropped']} held-out examples are longer than "
                     f"{e['max_length']} tokens and were left out")

    return show


def trained(ui: UI, cfg, summary: dict) -> None:
    if summary["finished"]:
        ui.print(f"done: {summary['steps']} steps, {summary['tokens_seen']:,} tokens, weights {summary['weights_mb']} MB in {cfg.out}")
    else:
        ui.print(f"stopped at the time limit after step {summary['steps']} of {cfg.steps}: run the same command to resume")
    ui.emit_json(summary)


# ---------------------------------------------------------------- DDPT


def ddpt_events(ui: UI):
    """DDPT's stage events as lines."""

    def show(e: dict) -> None:
        kind = e["type"]
        if kind == "resume":
            ui.print(f"resuming: done {', '.join(e['done']) or 'nothing'}; scored {', '.join(e['tested']) or 'nothing'}")
        elif kind == "data":
            ui.print(f"{e['train']} train problems ({e['dropped_long']} left out as too long), {e['test']} test problems")
        elif kind == "stage" and e["stage"] == "prompt_tuning":
            ui.print(f"prompt tuning: train nll {e['first_loss']:.3f} -> {e['last_loss']:.3f} ({e['seconds']:.0f}s)")
        elif kind == "stage" and e["stage"] == "directions":
            ui.print(f"stage 1: {e['count']} directions z*, last-step train nll {e['last_losses']} ({e['seconds']:.0f}s)")
        elif kind == "stage" and e["stage"] == "denoiser":
            ui.print(f"stage 2: denoiser trained, last {e['last']} ({e['seconds']:.0f}s)")
        elif kind == "test":
            passed = "  ".join(f"{k} {v:.3f}" for k, v in e.items() if k.startswith("pass@") and v is not None)
            ui.print(f"test {e['condition']:>16}: nll {e['nll']:.4f}  {passed} ({e['seconds']:.0f}s)")

    return show


def ddpt_trained(ui: UI, cfg, out: Path, result) -> None:
    ui.print(f"{'held-out test':>16}  {'nll':>7}  pass@1")
    for name, score in result.test.items():
        passed = "n/a" if score.get("pass@1") is None else f"{score['pass@1']:.3f}"
        ui.print(f"{name:>16}  {score['nll']:7.4f}  {passed}")
    ui.print(f"done in {result.seconds:.0f}s; soft prompts: dlmpo eval --task {cfg.task} --split test --soft-prompt {out}")
    ui.emit_json(result.summary())


def ddpt_sampled(ui: UI, run_dir: Path, rows: list[dict], out: Path | None) -> None:
    from rich.markup import escape

    for row in rows:
        ui.print(f"[bold]sample seed {row['seed']}[/bold]: |z| = {row['norm']:.3f}")
        for r in row["words"]:
            ui.print(f"  {escape(repr(r['token'])):>14} (shift {r['shift']:.2f}) -> nearest "
                     f"{escape(', '.join(map(repr, r['nearest'])))}; direction {escape(', '.join(map(repr, r['direction'])))}")
    if out is not None:
        ui.print(f"samples written to {out}")
    ui.emit_json({"run_dir": str(run_dir), "samples": rows})


# ---------------------------------------------------------------- τ-bench, data


def tau_replayed(ui: UI, report, show: int) -> None:
    summary = report.summary()
    ui.print(f"{summary['episodes']} episodes: recorded reward reproduced for {summary['reward_match']}, "
             f"mean reward {summary['mean_reward']:.4f}")
    ui.print(f"{summary['tool_outputs']} tool outputs: {summary['tool_output_match']} identical, "
             f"{summary['tool_output_renamed_field_only']} differ only by the province -> state field rename")
    shown = 0
    for e in report.episodes:
        if e.reward != e.recorded_reward and shown < show:
            ui.print(f"  task {e.task_id} trial {e.trial}: recorded reward {e.recorded_reward}, replayed {e.reward}")
            shown += 1
        for m in e.mismatches[: max(0, show - shown)]:
            ui.print(f"  task {e.task_id} trial {e.trial} {m['tool']}: recorded {m['recorded'][:80]!r} vs ours {m['ours'][:80]!r}")
            shown += 1
    ui.emit_json(summary)


def fetched(ui: UI, path: Path, ref: str) -> None:
    ui.print(f"τ-bench written to {path}; use --data-dir {path.parent}")
    ui.emit_json({"path": str(path), "ref": ref})
