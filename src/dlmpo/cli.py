"""The `dlmpo` command line: parse, call `dlmpo.api`, print. Options of optimize, compare, sweep,
train and ddpt train are generated from their settings models (`cli_options`): each default and
help text lives once, next to the setting."""

from __future__ import annotations

import asyncio
import sys
import warnings
from pathlib import Path
from typing import Optional

import typer

from dlmpo import api
from dlmpo import sampling_defaults as sampler_defaults
from dlmpo.cli_ddpt import ddpt_app
from dlmpo.cli_options import JSON_OPT, UNISOLATED_OPT, Bars, event_printer, with_options
from dlmpo.console import Output
from dlmpo.errors import UserError
from dlmpo.files import read_prompt  # noqa: F401  (kept importable from here)
from dlmpo.optimizer.settings import OptimizeSettings
from dlmpo.train.trainer import HELP as TRAIN_HELP
from dlmpo.train.trainer import TrainConfig

app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None, pretty_exceptions_enable=False,
                  help="Optimize the system prompt of a frozen LLM with a masked diffusion language model.")


@app.callback()
def _root() -> None:
    """dlmpo: prompt optimization with diffusion language models."""


@app.command("eval")
def eval_command(
    task: str = typer.Option(..., help="Built-in task (sst2, sst5, mrpc, snli, tau-airline, tau-retail) or a task config file."),
    target: str = typer.Option("embedded", help="Target model specifier."),
    split: str = typer.Option("val", help="train, val or test."),
    user_model: str = typer.Option("scripted", help="τ-bench user simulator: a chat-model specifier, or scripted (offline)."),
    trials: int = typer.Option(1, min=1, help="τ-bench: episodes per task; pass^1..pass^k are reported."),
    max_steps: int = typer.Option(30, min=1, help="τ-bench: agent actions per episode before it is cut off (scores 0)."),
    prompt: Optional[str] = typer.Option(None, help="System prompt: a file path or the text itself; '' (or an empty "
                                                   "file) is no system prompt [default: the task's]."),
    limit: Optional[int] = typer.Option(None, min=1, help="Evaluate only the first N examples."),
    data_dir: Optional[Path] = typer.Option(None, help="Local data directory (else DLMPO_DATA_DIR, else the hub)."),
    out: Optional[Path] = typer.Option(None, help="Folder for traces.jsonl and summary.json (checked before the run)."),
    max_tokens: Optional[int] = typer.Option(None, min=1, help="Answer length cap for the target [default: 16; τ-bench 512]."),
    concurrency: Optional[int] = typer.Option(None, min=1, help="Concurrent target calls."),
    rpm: Optional[float] = typer.Option(None, help="Requests-per-minute limit, > 0 (leave it out for no limit)."),
    tpm: Optional[float] = typer.Option(None, help="Tokens-per-minute limit, > 0 (leave it out for no limit)."),
    prices: Optional[Path] = typer.Option(None, help="JSON price table {model: [in, out]} in USD per 1M tokens."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Do not read or write the call cache."),
    soft_prompt: Optional[str] = typer.Option(None, help="Score a DDPT soft prompt instead: RUN_DIR of `dlmpo ddpt train`, "
                                                        "or RUN_DIR#prompt_tuning|ddpt|ddpt_conditioned (code tasks)."),
    allow_unisolated_code: bool = UNISOLATED_OPT,
    json_out: bool = JSON_OPT,
) -> None:
    """Score a system prompt on one split of a task."""
    ui = Output(json_out)
    with ui.progress() as progress:
        if soft_prompt is not None:
            api.allow_unisolated(allow_unisolated_code)
            summary = api.score_soft_prompt(soft_prompt, task=task, split=split, limit=limit, target=target,
                                            max_tokens=max_tokens, out=out, on_progress=Bars(progress))
            ui.print(f"[bold]{task}/{split}[/bold] soft prompt {summary['soft_prompt']['variant']} from "
                     f"{summary['soft_prompt']['run_dir']}: n={summary['n']}  "
                     + "  ".join(f"{k} {v:.4f}" for k, v in summary["metrics"].items() if v is not None))
            return ui.emit_json(summary)
        done = api.evaluate_split(
            task, split, target, prompt=None if prompt is None else read_prompt(prompt, ""), user_model=user_model,
            trials=trials, max_steps=max_steps, limit=limit, data_dir=data_dir, out=out, max_tokens=max_tokens,
            concurrency=concurrency, rpm=rpm, tpm=tpm, prices=prices, use_cache=not no_cache,
            allow_unisolated_code=allow_unisolated_code, on_note=ui.note, on_progress=Bars(progress))
    r, usage = done.result, done.usage
    ui.print(f"[bold]{done.task}/{split}[/bold]  score {r.score:.4f}  n={r.n}  "
             + "  ".join(f"{k} {v:.4f}" for k, v in r.metrics.items()))
    ui.print(f"parse failures {r.parse_failures}  target failures {r.failures}  calls {usage['calls']} (cache hits "
             f"{usage['cache_hits']})  tokens {usage['total_tokens']}  cost ${usage['cost_usd']:.4f}")
    if "traces" in done.written:
        ui.print(f"traces written to {done.written['traces']}")
    ui.emit_json(done.to_json())


@app.command("infill")
def infill_command(
    dlm: str = typer.Option("embedded", help="DLM specifier: embedded, dream:, llada:, mlm:<repo-or-path>, smollm2:base, "
                                             "tiny-random:<arch>."),
    text: str = typer.Option(..., help="Text with masks: [MASK:n] or the model's own mask token."),
    context: Optional[Path] = typer.Option(None, help="JSONL traces {query|user, output, score?, feedback?}."),
    examples: Optional[Path] = typer.Option(None, help="JSONL input -> output examples for template infilling."),
    steps: int = typer.Option(sampler_defaults.STEPS, min=1, help="Denoising steps (NFE upper bound)."),
    alg: str = typer.Option(sampler_defaults.ALG, help="Reveal rule: origin, maskgit_plus, topk_margin, entropy, random."),
    alg_temp: float = typer.Option(0.0, help="> 0 samples the reveal order."),
    temperature: float = typer.Option(sampler_defaults.TEMPERATURE, help="Token sampling temperature (0 = argmax)."),
    top_p: Optional[float] = typer.Option(sampler_defaults.TOP_P, help="Nucleus sampling (1 = off)."),
    top_k: Optional[int] = typer.Option(None, help="Top-k sampling."),
    block_length: Optional[int] = typer.Option(None, help="Semi-autoregressive blocks of this many masks."),
    threshold: Optional[float] = typer.Option(None, help="Parallel decoding: reveal every token above this probability."),
    kv_refresh: Optional[int] = typer.Option(None, help="Reuse context K/V, refreshed every k steps."),
    schedule: str = typer.Option(sampler_defaults.SCHEDULE, help="Tokens revealed per step: even, dream, mdlm, auto (the family's)."),
    candidates: int = typer.Option(1, min=1, help="Candidates sampled in one batch, each with its own draws."),
    seed: int = typer.Option(0, help="Random seed."),
    device: Optional[str] = typer.Option(None, help="cpu, cuda, cuda:1 ... (default: cuda when available)."),
    adapter: Optional[Path] = typer.Option(None, help="Output directory of `dlmpo train` to apply to --dlm."),
    json_out: bool = JSON_OPT,
) -> None:
    """Fill the masked spans of a text with a diffusion language model."""
    from dlmpo.dlm import SamplerConfig

    ui = Output(json_out)
    cfg = SamplerConfig(steps=steps, alg=alg, alg_temp=alg_temp, temperature=temperature, top_p=top_p, top_k=top_k,
                        block_length=block_length, threshold=threshold, kv_refresh=kv_refresh, seed=seed,
                        schedule=schedule)
    result, seconds = api.infill_text(dlm, text, cfg, context=context, examples=examples, candidates=candidates,
                                      device=device, adapter=adapter)
    for note in result.notes:
        ui.note(note)
    for i, cand in enumerate(result.candidates, 1):
        ui.print(f"[bold]candidate {i}[/bold]: {cand.text}")
    ui.print(f"{result.masks} masks, {result.nfe} forwards ({result.masks / result.nfe:.2f} tokens/forward), "
             f"sampling {result.seconds:.2f}s, canvas {result.canvas_tokens} tokens, traces {result.traces_used}")
    ui.emit_json({"candidates": [{"text": c.text, "spans": c.spans, "nfe": c.nfe} for c in result.candidates],
                  "steps": steps, "alg": alg, "seconds": round(seconds, 3),
                  "sampling_seconds": round(result.seconds, 3), "masks": result.masks})


SET_OPT = typer.Option(None, "--set", help="Any other optimize setting, as key=value (repeatable).")
CONFIG_OPT = typer.Option(None, help="TOML/JSON/YAML file of settings (flags override it).")


@app.command("optimize")
@with_options(OptimizeSettings, overrides=True, skip={"seed_prompt"})
def optimize_command(
    seed_prompt: Optional[str] = typer.Option(None, "--prompt", help="Seed system prompt: file or text; '' (or an empty "
                                                                     "file) is no system prompt [default: the task's]."),
    out: Optional[Path] = typer.Option(None, help="Run directory [default: runs/<task>-<settings hash>]."),
    config: Optional[Path] = CONFIG_OPT,
    sets: Optional[list[str]] = SET_OPT,
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the call and cost estimate, then stop."),
    json_out: bool = JSON_OPT,
    **flags,
) -> None:
    """Optimize a system prompt with a diffusion language model."""
    ui = Output(json_out)
    settings = api.make_settings(config, flags, sets)
    if seed_prompt is not None:
        settings = settings.model_copy(update={"seed_prompt": read_prompt(seed_prompt, "")})
    run_dir = api.run_dir_for(settings, out)
    if dry_run:
        optimizer = api.prepare_optimizer(settings, run_dir)
        for note in optimizer.task.notes:
            ui.note(note)
        optimizer.check()  # the DLM, its adapter, the seed prompt's length and the notes, or the dry run says why
        est = optimizer.estimate()
        ui.print(f"estimate (no cache hits, full batches): {est['calls']} target calls, "
                 f"~{est['prompt_tokens'] + est['completion_tokens']} tokens")
        return ui.emit_json({"run_dir": str(run_dir), "estimate": est})
    ui.print(f"run directory: {run_dir}")
    with ui.progress() as progress:
        result = api.run_optimizer(settings, run_dir, on_event=event_printer(ui), on_note=ui.note,
                                   on_progress=Bars(progress, one=True))
    ui.print(f"[bold]val[/bold] {result.val['seed']:.4f} -> {result.val['best']:.4f}   "
             f"[bold]test[/bold] {result.test['seed']:.4f} -> {result.test['best']:.4f}   ({len(result.rounds)} rounds, "
             f"{result.calls} calls, ${result.usage['cost_usd']:.4f}, {result.seconds:.0f}s)")
    ui.print(f"best prompt: {run_dir / 'best_prompt.txt'}\nreport: {run_dir / 'report.md'} and {run_dir / 'report.html'}")
    ui.emit_json(result.summary())


@app.command("report")
def report_command(
    run_dir: Path = typer.Argument(..., help="A run directory of `dlmpo optimize`."),
    json_out: bool = JSON_OPT,
) -> None:
    """(Re)write report.md, report.html and scores.png of a run directory."""
    ui = Output(json_out)
    paths, result = api.write_report(run_dir)
    ui.print(f"val {result.val['seed']:.4f} -> {result.val['best']:.4f}, "
             f"test {result.test['seed']:.4f} -> {result.test['best']:.4f}")
    ui.print(f"report: {paths['markdown']}, {paths['html']}, {paths['plot']}")
    ui.emit_json({k: str(v) for k, v in paths.items()} | {"val": result.val, "test": result.test})


@app.command("train")
@with_options(TrainConfig, help=TRAIN_HELP, skip={"lora", "lora_alpha", "time_limit"})
def train_command(
    full: bool = typer.Option(False, "--full", help="Full fine-tuning instead of LoRA."),
    time_limit: Optional[str] = typer.Option(None, help="Stop cleanly and save after this long, e.g. 110m or 2h."),
    json_out: bool = JSON_OPT,
    **flags,
) -> None:
    """Fine-tune a DLM to infill prompts (full-sequence joint masking) or responses."""
    ui = Output(json_out)
    flags = {k: str(v) if isinstance(v, Path) else v for k, v in flags.items()}
    cfg = TrainConfig(**flags, lora=not full, lora_alpha=2 * flags["lora_rank"],
                      time_limit=parse_duration(time_limit) if time_limit else None)

    def show(e):
        if e["type"] == "eval":
            ui.print(f"step {e['step']}: held-out {cfg.eval_on} tokens loss {e['loss']:.4f}, accuracy {e['accuracy']:.4f}")
        elif e["type"] == "resume":
            ui.print(f"resuming at step {e['step']} ({e['tokens_seen']:,} tokens seen)")
        elif e["type"] == "data" and (e["train_dropped"] or e["held_out_dropped"]):
            ui.print(f"{e['train_dropped']} training and {e['held_out_dropped']} held-out examples are longer than "
                     f"{e['max_length']} tokens and were left out")

    with ui.progress() as progress:
        summary = api.train(cfg, on_log=show, on_progress=Bars(progress))
    if summary["finished"]:
        ui.print(f"done: {summary['steps']} steps, {summary['tokens_seen']:,} tokens, weights {summary['weights_mb']} MB in {cfg.out}")
    else:
        ui.print(f"stopped at the time limit after step {summary['steps']} of {cfg.steps}: run the same command to resume")
    ui.emit_json(summary)


def parse_duration(text: str) -> float:
    """'90s', '110m', '2h' or plain seconds, in seconds; one sentence otherwise."""
    import re

    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", text)
    if not match or float(match.group(1)) <= 0:
        raise UserError(f"Cannot read the duration '{text}': write e.g. 90s, 110m or 2h.")
    return float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[match.group(2)]


# the settings every run of `compare` and `sweep` gets (flags generated from OptimizeSettings)
RUN_SETTINGS = ("task", "target", "dlm", "adapter", "optimizer_model", "max_calls", "max_cost", "rounds", "candidates",
                "train_size", "val_size", "test_size", "data_dir")


@app.command("compare")
@with_options(OptimizeSettings, overrides=True, only=RUN_SETTINGS)
def compare_command(
    optimizers: str = typer.Option("dlm,ar,textgrad,gepa", help="Comma-separated: dlm, ar, textgrad, gepa, mipro."),
    seeds: int = typer.Option(3, min=1, help="Runs per optimizer (seeds 0..n-1)."),
    out: Path = typer.Option(Path("runs/compare"), help="Folder of the comparison (one run directory per optimizer and seed)."),
    config: Optional[Path] = CONFIG_OPT,
    sets: Optional[list[str]] = SET_OPT,
    json_out: bool = JSON_OPT,
    **flags,
) -> None:
    """Run several optimizers from the same seed prompt under one budget; table and plot of held-out scores."""
    ui = Output(json_out)
    names = [o.strip() for o in optimizers.split(",") if o.strip()]
    show = lambda o, seed, r: ui.print(f"{o} seed {seed}: test {r.test['seed']:.4f} -> {r.test['best']:.4f}, "  # noqa: E731
                                       f"{r.calls} calls, {r.seconds:.0f}s")
    summary = asyncio.run(api.compare(api.make_settings(config, flags, sets), names, seeds, out, on_run=show))
    ui.print((out / "compare.md").read_text())
    ui.print(f"table {out / 'compare.md'}, plot {out / 'compare.png'}")
    ui.emit_json({"results": summary["results"], "baseline_test": summary["baseline_test"]})


@app.command("sweep")
@with_options(OptimizeSettings, overrides=True, only=RUN_SETTINGS)
def sweep_command(
    param: str = typer.Option(..., help="The optimize setting to vary, e.g. steps, mask_tokens, candidates."),
    values: str = typer.Option(..., help="Comma-separated values, e.g. 8,16,32,64,128,256,512."),
    out: Path = typer.Option(Path("runs/sweep"), help="Folder of the sweep (one run directory per value)."),
    config: Optional[Path] = CONFIG_OPT,
    sets: Optional[list[str]] = SET_OPT,
    json_out: bool = JSON_OPT,
    **flags,
) -> None:
    """Vary one optimizer setting; table and plot of held-out test score against it (the paper's Figure 3)."""
    ui = Output(json_out)
    base = api.make_settings(config, flags, sets)
    chosen = [v.strip() for v in values.split(",") if v.strip()]
    if not chosen:
        raise UserError("--values needs at least one value.")
    summary = asyncio.run(api.sweep(base, param.replace("-", "_"), chosen, out, on_run=lambda v, r: ui.print(
        f"{param}={v}: test {r.test['best']:.4f}, {r.calls} calls")))
    ui.print(f"{param:>12}  test    val     calls  seconds")
    for r in summary["results"]:
        ui.print(f"{r['value']:>12}  {r['test']:.4f}  {r['val']:.4f}  {r['calls']:>5}  {r['seconds']}")
    ui.print(f"plot {out / 'sweep.png'}")
    ui.emit_json(summary)


tau_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None, help="τ-bench tools: replay recorded episodes.")
data_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None, help="Download benchmark data.")
app.add_typer(tau_app, name="tau")
app.add_typer(ddpt_app, name="ddpt")
app.add_typer(data_app, name="data")


@tau_app.command("replay")
def tau_replay_command(
    trajectories: Path = typer.Option(..., help="Recorded episodes: a JSON list of {task_id, reward, info, traj}."),
    domain: str = typer.Option(..., help="airline or retail."),
    data_dir: Optional[Path] = typer.Option(None, help="Data directory holding tau/<domain> (else DLMPO_DATA_DIR, else the fetch cache)."),
    show: int = typer.Option(3, min=0, help="Print up to this many mismatches."),
    json_out: bool = JSON_OPT,
) -> None:
    """Re-run recorded tool calls on a fresh database and recompute every reward."""
    ui = Output(json_out)
    report = api.tau_replay(trajectories, domain, data_dir)
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


@data_app.command("fetch")
def data_fetch_command(
    name: str = typer.Argument(..., help="What to fetch: tau."),
    dest: Optional[Path] = typer.Option(None, help="Data directory [default: the dlmpo cache, ~/.cache/dlmpo/data]."),
    ref: Optional[str] = typer.Option(None, help="Upstream git commit [default: the pinned one]."),
    json_out: bool = JSON_OPT,
) -> None:
    """Download τ-bench (airline, retail) from upstream and convert it to dlmpo's data layout."""
    ui = Output(json_out)
    with ui.progress() as progress:
        bars = Bars(progress)
        path, ref = api.fetch_data(name, dest, ref, on_file=lambda f: bars("fetch tau", None, None, f))
    ui.print(f"τ-bench written to {path}; use --data-dir {path.parent}")
    ui.emit_json({"path": str(path), "ref": ref})


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """dlmpo's own warnings as one `warning: ...` line; others as Python prints them."""
    from dlmpo.errors import DlmpoWarning

    if issubclass(category, DlmpoWarning):
        print(f"warning: {_one_line(str(message))}", file=sys.stderr)
    else:
        _python_showwarning(message, category, filename, lineno, file, line)


def main(argv: list[str] | None = None) -> None:
    """Every user mistake, ours (UserError) or a usage error click finds, is one `error: ...` line
    on stderr and exit code 2; never a traceback."""
    try:  # typer >= 0.26 runs its own copy of click
        from typer._click import exceptions as click
    except ImportError:  # pragma: no cover
        from click import exceptions as click

    warnings.showwarning = _show_warning
    command = typer.main.get_command(app)
    try:
        rv = command.main(args=argv, prog_name="dlmpo", standalone_mode=False)
    except UserError as exc:
        print(f"error: {_one_line(str(exc))}", file=sys.stderr)
        sys.exit(2)
    except click.NoArgsIsHelpError as exc:  # `dlmpo`, `dlmpo tau`: the help, as before
        exc.show()
        sys.exit(2)
    except click.ClickException as exc:  # a bad option or value: click's message, on one line
        hint = f" (see `{exc.ctx.command_path} --help`)" if getattr(exc, "ctx", None) is not None else ""
        print(f"error: {_one_line(exc.format_message()).rstrip('.')}{hint}.", file=sys.stderr)
        sys.exit(2)
    except getattr(click, "Abort", ()):  # absent from typer's own click
        print("aborted", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("interrupted: re-run the same command to resume", file=sys.stderr)
        sys.exit(130)
    if isinstance(rv, int) and not isinstance(rv, bool):  # --help, or a command's exit code
        sys.exit(rv)


_python_showwarning = warnings.showwarning


if __name__ == "__main__":
    main()
