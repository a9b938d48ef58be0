"""report.md and report.html of a run directory, with their plots."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

from dlmpo.errors import UserError
from dlmpo.optimizer.held_out import shown_with_intervals
from dlmpo.optimizer.result import CandidateRecord, OptimizeResult
from dlmpo.report.diff import diff_html, diff_markdown
from dlmpo.report.plots import plot_round_times, plot_rounds
from dlmpo.report.time_table import run_time_note, time_table

SHOWN_SETTINGS = ("task", "target", "dlm", "rounds", "candidates", "strategy", "mask_tokens", "steps", "alg",
                  "temperature", "feedback", "train_size", "val_size", "confirm_size", "test_size", "test_part",
                  "test_interval", "batch_size", "screen_batch", "min_gain", "significance", "max_calls", "max_cost",
                  "seed")


def _val_cell(c: CandidateRecord) -> str:
    """Val score and the sign test that decided it, e.g. `0.7031 (+30/−12, p 0.004 ≤ 0.025)`; a
    challenger dropped early shows on how many val examples, e.g. `0.42 on 50 (dropped: not ahead)`;
    a second look shows the confirmation examples and the first look's p-value."""
    if c.val is None:
        return ""
    return f"{c.val:.4f}" if c.significance is None else c.significance.describe(c.val, cell=True)


def _cell(text: str | None, limit: int = 160) -> str:
    if text is None:
        return ""
    flat = " ".join(str(text).split())
    flat = flat if len(flat) <= limit else flat[: limit - 1] + "…"
    return flat.replace("|", "\\|")


TIME_LEGEND = ("Wall seconds of each round by phase. The first round a process plays includes loading the "
               "proposer; NFE counts the DLM's forward passes, redraws the samples taken again for a candidate "
               "that repeated a text; accounted is the share of the round's wall time the phases cover.")


def time_markdown(result: OptimizeResult, time_plot_name: str) -> list[str]:
    header, rows = time_table(result)
    note = run_time_note(result)
    return ["## Time", "", TIME_LEGEND, "", f"![seconds per round by phase]({time_plot_name})", "",
            "| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(row) + " |" for row in rows), "", *([note, ""] if note else [])]


def time_html(result: OptimizeResult, time_plot: Path) -> str:
    header, rows = time_table(result)
    img = base64.b64encode(time_plot.read_bytes()).decode()
    cells = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    note = run_time_note(result)
    return (f"<h2>Time</h2><p>{html.escape(TIME_LEGEND)}</p>"
            f'<img alt="seconds per round by phase" src="data:image/png;base64,{img}">'
            f"<table><tr>{''.join(f'<th>{html.escape(h)}</th>' for h in header)}</tr>{cells}</table>"
            + (f"<p>{html.escape(note)}</p>" if note else ""))


def held_out_cells(result: OptimizeResult) -> tuple[str, str, str]:
    """The test row's seed, best and gain cells, with their 95% intervals when the run has them."""
    test = result.test
    return shown_with_intervals(test) or (f"{test['seed']:.4f}", f"{test['best']:.4f}",
                                          f"{test['best'] - test['seed']:+.4f}")


def held_out_note(result: OptimizeResult) -> str | None:
    """What the test row rests on: the paired wins and losses, the intervals, the rows scored."""
    test = result.test
    if "wins" not in test:
        return None
    note = (f"On the same test rows the best prompt wins {test['wins']} and loses {test['losses']} against the "
            f"seed prompt (one-sided sign test p = {test['p_value']:.3g}).")
    if "rows" in test:
        note += (f" ± covers the 95% interval (Wilson for an accuracy, Agresti–Min for the paired gain; bounds in "
                 f"result.json). Test rows scored: {test['rows']} ({test['stopped']}).")
    return note


def render_markdown(result: OptimizeResult, plot_name: str, time_plot_name: str | None = None) -> str:
    u = result.usage
    seed_test, best_test, gain_test = held_out_cells(result)
    note = held_out_note(result)
    lines = [
        f"# dlmpo run: {result.task}",
        "",
        f"Target `{result.target}`, DLM `{result.writer}`, {len(result.rounds)} round(s), stopped by: {result.stop_reason}.",
        "",
        "| | seed prompt | best prompt | gain |",
        "|---|---|---|---|",
        f"| val | {result.val['seed']:.4f} | {result.val['best']:.4f} | {result.val['best'] - result.val['seed']:+.4f} |",
        f"| test (held out) | {seed_test} | {best_test} | {gain_test} |",
        *([f"\n{note}"] if note else []),
        "",
        *[f"> **Warning:** {w}\n" for w in result.warnings],
        f"![score per round]({plot_name})",
        "",
        "## Best prompt",
        "",
        "```text",
        result.best_prompt,
        "```",
        "",
        "## Changes from the seed prompt",
        "",
        "Added spans are written `[+like this+]`, removed spans `[-like this-]`.",
        "",
        "```text",
        diff_markdown(result.seed_prompt, result.best_prompt),
        "```",
        "",
        "## Rounds",
        "",
        "Candidates are screened against the incumbent on examples outside the val pool (minibatch, "
        "wins/losses); the best challenges it on val, which it scores in parts, dropped early once it is not "
        "ahead. It replaces the incumbent only when it scores higher on the whole val pool *and* its paired "
        "wins pass a one-sided sign test at the level shown: on the val pool, or, for a promising challenger, "
        "on the val pool and the confirmation pool together (a second look; each look at half the level).",
        "",
    ]
    for r in result.rounds:
        lines += [f"### Round {r.round} — {'accepted' if r.accepted else 'kept incumbent'} "
                  f"(incumbent on minibatch {r.incumbent_screen_score:.3f}, best val {r.best_val:.4f}, {r.seconds:.1f}s)",
                  "", "| # | strategy | minibatch | wins/losses | full val | status | prompt |", "|---|---|---|---|---|---|---|"]
        for c in r.candidates:
            status = f"rejected: {c.rejected}" if c.rejected else "scored"
            mb = "" if c.screen_score is None else f"{c.screen_score:.3f}"
            val = _val_cell(c)
            lines.append(f"| {c.index} | {c.strategy} | {mb} | {c.wins}/{c.losses} | {val} | "
                         f"{_cell(status, 60)} | {_cell(c.prompt)} |")
        lines.append("")
    unreadable, proposed = result.unreadable()
    if result.settings.get("readability", True):
        lines += [f"Readability gate: rejected {unreadable} of {proposed} candidates"
                  f"{f' ({unreadable / proposed:.0%})' if proposed else ''} before any target call.", ""]
    if time_plot_name:
        lines += time_markdown(result, time_plot_name)
    lines += [
        "## Cost",
        "",
        f"- target calls paid by this run: {result.calls} "
        f"({u.get('prompt_tokens', 0)} prompt + {u.get('completion_tokens', 0)} completion tokens), "
        f"${u.get('cost_usd', 0):.4f}",
        f"- this process: {json.dumps(u.get('this_process', {}))}",
        f"- wall time: {result.seconds:.1f}s",
        "",
        "## Settings",
        "",
        "| setting | value |",
        "|---|---|",
    ]
    lines += [f"| {k} | {_cell(json.dumps(result.settings.get(k)))} |" for k in SHOWN_SETTINGS if k in result.settings]
    return "\n".join(lines) + "\n"


def render_html(result: OptimizeResult, plot: Path, time_plot: Path | None = None) -> str:
    img = base64.b64encode(plot.read_bytes()).decode()
    esc = html.escape
    seed_test, best_test, gain_test = held_out_cells(result)
    note = held_out_note(result)
    rows = []
    for r in result.rounds:
        for c in r.candidates:
            status = f"rejected: {c.rejected}" if c.rejected else "scored"
            mb = "" if c.screen_score is None else f"{c.screen_score:.3f}"
            val = esc(_val_cell(c))
            rows.append(
                f"<tr><td>{r.round}</td><td>{c.index}</td><td>{esc(c.strategy)}</td><td>{mb}</td>"
                f"<td>{c.wins}/{c.losses}</td><td>{val}</td>"
                f"<td>{esc(status)}</td><td class=p>{esc(c.prompt)}</td></tr>")
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>dlmpo run: {esc(result.task)}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}}
table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:4px 8px;vertical-align:top;font-size:13px}}
td.p{{white-space:pre-wrap;max-width:520px}}pre{{background:#f6f6f6;padding:1em;white-space:pre-wrap}}
ins{{background:#d4f8d4;text-decoration:none}}del{{background:#f8d4d4}}</style></head><body>
<h1>dlmpo run: {esc(result.task)}</h1>
<p>Target <code>{esc(result.target)}</code>, DLM <code>{esc(result.writer)}</code>, {len(result.rounds)} round(s),
stopped by: {esc(result.stop_reason)}. {result.calls} target calls, ${result.usage.get('cost_usd', 0):.4f}, {result.seconds:.1f}s.</p>
<table><tr><th></th><th>seed</th><th>best</th><th>gain</th></tr>
<tr><td>val</td><td>{result.val['seed']:.4f}</td><td>{result.val['best']:.4f}</td>
<td>{result.val['best'] - result.val['seed']:+.4f}</td></tr>
<tr><td>test (held out)</td><td>{esc(seed_test)}</td><td>{esc(best_test)}</td><td>{esc(gain_test)}</td></tr></table>
{f"<p>{esc(note)}</p>" if note else ""}
<img alt="score per round" src="data:image/png;base64,{img}">
<h2>Best prompt, changes from the seed</h2><pre>{diff_html(result.seed_prompt, result.best_prompt)}</pre>
<h2>Candidates</h2><table><tr><th>round</th><th>#</th><th>strategy</th><th>minibatch</th><th>wins/losses</th>
<th>full val</th><th>status</th><th>prompt</th></tr>{''.join(rows)}</table>
{time_html(result, time_plot) if time_plot else ''}</body></html>
"""


def load_finished(run_dir: str | Path) -> OptimizeResult:
    run_dir = Path(run_dir)
    if not (run_dir / "result.json").is_file():
        raise UserError(f"{run_dir} holds no finished run (no result.json): run or resume `dlmpo optimize` first.")
    return OptimizeResult.load(run_dir)


def write_report(run_dir: str | Path, result: OptimizeResult | None = None) -> dict[str, Path]:
    """report.md, report.html, scores.png and, when the rounds carry timings, round_times.png of a
    finished run (its result, read when not given)."""
    run_dir = Path(run_dir)
    result = result or load_finished(run_dir)
    plot = plot_rounds(result, run_dir / "scores.png")
    time_plot = plot_round_times(result, run_dir / "round_times.png")
    md = run_dir / "report.md"
    md.write_text(render_markdown(result, plot.name, time_plot and time_plot.name), encoding="utf-8")
    page = run_dir / "report.html"
    page.write_text(render_html(result, plot, time_plot), encoding="utf-8")
    return {"markdown": md, "html": page, "plot": plot, **({"time_plot": time_plot} if time_plot else {})}
