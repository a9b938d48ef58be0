"""The `dlmpo` command line: parse, call `dlmpo.api`, print (`dlmpo.printing`). Options of optimize,
compare, sweep, train and ddpt train are generated from their settings models (`cli_options`)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Optional

import typer

from dlmpo import api, printing
from dlmpo.cli_ddpt import ddpt_app
from dlmpo.cli_options import CONFIG_OPT, JSON_OPT, RAY_OPT, SET_OPT, UNISOLATED_OPT, with_options
from dlmpo.compare import RUN_SETTINGS
from dlmpo.console import Bars, Output, run_command
from dlmpo.dlm.sampler import SAMPLER_HELP, SamplerConfig
from dlmpo.errors import UserError
from dlmpo.files import read_prompt
from dlmpo.optimizer.settings import OptimizeSettings
from dlmpo.optimizers import optimizers
from dlmpo.train.trainer import HELP as TRAIN_HELP
from dlmpo.train.trainer import TrainConfig

app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None, pretty_exceptions_enable=False,
                  help="Optimize the system prompt of a frozen LLM with a masked diffusion language model.")


@app.callback()
def _root() -> None:
    """dlmpo: prompt optimization with diffusion language models."""


@app.command("eval")
@with_options(api.EvalOptions, help=api.EVAL_HELP,
              extra={name: {"min": 1} for name in ("trials", "max_steps", "limit", "max_tokens", "concurrency")})
def eval_command(
    prompt: Optional[str] = typer.Option(None, help="System prompt: a file path or the text itself; '' (or an empty "
                                                   "file) is no system prompt [default: the task's]."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Do not read or write the call cache."),
    soft_prompt: Optional[str] = typer.Option(None, help="Score a DDPT soft prompt instead: RUN_DIR of `dlmpo ddpt train`, "
                                                        "or RUN_DIR#prompt_tuning|ddpt|ddpt_conditioned (code tasks)."),
    allow_unisolated_code: bool = UNISOLATED_OPT,
    json_out: bool = JSON_OPT,
    **flags,
) -> None:
    """Score a system prompt on one split of a task."""
    ui = Output(json_out)
    with ui.progress() as progress:
        if soft_prompt is not None:
            summary = api.score_soft_prompt(soft_prompt, **{k: flags[k] for k in ("task", "split", "limit", "target", "max_tokens", "out")},
                                            allow_unisolated_code=allow_unisolated_code, on_progress=Bars(progress))
            return printing.soft_prompt_scored(ui, flags["task"], flags["split"], summary)
        done = api.evaluate_split(**flags, prompt=None if prompt is None else read_prompt(prompt, ""), use_cache=not no_cache,
                                  allow_unisolated_code=allow_unisolated_code, on_note=ui.note, on_progress=Bars(progress))
    printing.evaluated(ui, done, flags["split"])


@app.command("infill")
@with_options(SamplerConfig, help=SAMPLER_HELP, skip={"noise"}, extra={"steps": {"min": 1}})
def infill_command(
    dlm: str = typer.Option("embedded", help="DLM specifier: embedded, dream:, llada:, mlm:<repo-or-path>, smollm2:base, "
                                             "tiny-random:<arch>."),
    text: str = typer.Option(..., help="Text with masks: [MASK:n] or the model's own mask token."),
    context: Optional[Path] = typer.Option(None, help="JSONL traces {query|user, output, score?, feedback?}."),
    examples: Optional[Path] = typer.Option(None, help="JSONL input -> output examples for template infilling."),
    candidates: int = typer.Option(1, min=1, help="Candidates sampled in one batch, each with its own draws."),
    device: Optional[str] = typer.Option(None, help="cpu, cuda, cuda:1 ... (default: cuda when available)."),
    adapter: Optional[Path] = typer.Option(None, help="Output directory of `dlmpo train` to apply to --dlm."),
    json_out: bool = JSON_OPT,
    **sampler,
) -> None:
    """Fill the masked spans of a text with a diffusion language model."""
    result, seconds = api.infill_text(dlm, text, sampler, context=context, examples=examples, candidates=candidates,
                                      device=device, adapter=adapter)
    printing.infilled(Output(json_out), result, seconds, sampler["steps"], sampler["alg"])


@app.command("optimize")
@with_options(OptimizeSettings, overrides=True, skip={"seed_prompt"})
def optimize_command(
    seed_prompt: Optional[str] = typer.Option(None, "--prompt", help="Seed system prompt: file or text; '' (or an empty "
                                                                     "file) is no system prompt [default: the task's]."),
    out: Optional[Path] = typer.Option(None, help="Run directory [default: runs/<task>-<settings hash>]."),
    config: Optional[Path] = CONFIG_OPT,
    sets: Optional[list[str]] = SET_OPT,
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the call and cost estimate, then stop."),
    mlflow: Optional[str] = typer.Option(None, "--mlflow", metavar="URI",
                                         help="Also log the run into MLflow at this tracking URI, e.g. sqlite:///mlflow.db "
                                              "or http://host:5000 (pip install 'dlmpo[mlflow]'): settings, per-round "
                                              "metrics, the report and the best prompt."),
    json_out: bool = JSON_OPT,
    **flags,
) -> None:
    """Optimize a system prompt with a diffusion language model."""
    ui = Output(json_out)
    settings = api.make_settings(config, flags, sets, prompt=seed_prompt)
    run_dir = api.run_dir_for(settings, out)
    if dry_run:
        return printing.estimate(ui, run_dir, api.dry_run(settings, run_dir, on_note=ui.note))
    ui.print(f"run directory: {run_dir}")
    with ui.progress() as progress:
        result = api.run_optimizer(settings, run_dir, on_event=printing.optimizer_events(ui), on_note=ui.note,
                                   on_progress=Bars(progress, one=True), mlflow=mlflow)
    printing.optimized(ui, run_dir, result)


@app.command("report")
def report_command(
    run_dir: Path = typer.Argument(..., help="A run directory of `dlmpo optimize`."),
    json_out: bool = JSON_OPT,
) -> None:
    """(Re)write report.md, report.html and the plots (scores.png, round_times.png) of a run directory."""
    printing.report(Output(json_out), *api.write_report(run_dir))


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
    cfg = api.train_config(flags, full=full, time_limit=time_limit)
    with ui.progress() as progress:
        summary = api.train(cfg, on_log=printing.train_events(ui, cfg.eval_on), on_progress=Bars(progress))
    printing.trained(ui, cfg, summary)


@app.command("compare")
@with_options(OptimizeSettings, overrides=True, only=RUN_SETTINGS)
def compare_command(
    optimizers: str = typer.Option("dlm,ar,textgrad,gepa", help=f"Comma-separated: {', '.join(optimizers())}."),
    tasks: Optional[str] = typer.Option(None, help="Comma-separated tasks for one table in the paper's layout (tasks as "
                                                  "columns, optimizers as rows); runs under --out/<task>/. Instead of --task."),
    seeds: int = typer.Option(3, min=1, help="Runs per optimizer (seeds 0..n-1)."),
    out: Path = typer.Option(Path("runs/compare"), help="Folder of the comparison (one run directory per optimizer and seed)."),
    ray: Optional[str] = RAY_OPT,
    config: Optional[Path] = CONFIG_OPT,
    sets: Optional[list[str]] = SET_OPT,
    json_out: bool = JSON_OPT,
    **flags,
) -> None:
    """Run several optimizers from the same seed prompt under one budget; table and plot of held-out scores."""
    ui = Output(json_out)
    names = [o.strip() for o in optimizers.split(",") if o.strip()]
    task_names = [t.strip() for t in tasks.split(",") if t.strip()] if tasks is not None else None
    if task_names is not None and flags.get("task") is not None:
        raise UserError("Pass --task or --tasks, not both.")
    with ui.progress() as progress:
        summary = asyncio.run(api.compare(api.make_settings(config, flags, sets), names, seeds, out,
                                          on_run=printing.compare_run(ui, grid=bool(task_names and len(task_names) > 1)),
                                          tasks=task_names, ray=ray, on_progress=Bars(progress)))
    printing.compared(ui, out, summary)


@app.command("sweep")
@with_options(OptimizeSettings, overrides=True, only=RUN_SETTINGS)
def sweep_command(
    param: str = typer.Option(..., help="The optimize setting to vary, e.g. steps, mask_tokens, candidates."),
    values: str = typer.Option(..., help="Comma-separated values, e.g. 8,16,32,64,128,256,512."),
    out: Path = typer.Option(Path("runs/sweep"), help="Folder of the sweep (one run directory per value)."),
    ray: Optional[str] = RAY_OPT,
    config: Optional[Path] = CONFIG_OPT,
    sets: Optional[list[str]] = SET_OPT,
    json_out: bool = JSON_OPT,
    **flags,
) -> None:
    """Vary one optimizer setting; table and plot of held-out test score against it (the paper's Figure 3)."""
    ui = Output(json_out)
    with ui.progress() as progress:
        summary = asyncio.run(api.sweep(api.make_settings(config, flags, sets), param.replace("-", "_"), values, out,
                                        on_run=printing.sweep_run(ui, param), ray=ray, on_progress=Bars(progress)))
    printing.swept(ui, param, out, summary)


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
    printing.tau_replayed(Output(json_out), api.tau_replay(trajectories, domain, data_dir), show)


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
        path, ref = api.fetch_data(name, dest, ref, on_progress=Bars(progress))
    printing.fetched(ui, path, ref)


def main(argv: list[str] | None = None) -> None:
    """Every user mistake is one `error: ...` line on stderr and exit code 2; never a traceback."""
    run_command(typer.main.get_command(app), argv)


if __name__ == "__main__":
    main()
