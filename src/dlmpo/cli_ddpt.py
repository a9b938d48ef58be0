"""`dlmpo ddpt train|sample`: diffusion-driven prompt tuning (options generated from DDPTConfig)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from dlmpo import api, printing
from dlmpo.cli_options import JSON_OPT, UNISOLATED_OPT, with_options
from dlmpo.console import Bars, Output
from dlmpo.ddpt.config import HELP, DDPTConfig

ddpt_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None,
                       help="DDPT: diffusion-driven prompt tuning of soft prompts for code generation.")


@ddpt_app.command("train")
@with_options(DDPTConfig, help=HELP)
def train_command(
    out: Path = typer.Option(Path("runs/ddpt"), help="Run directory (re-run the same command to resume)."),
    device: Optional[str] = typer.Option(None, help="cpu, cuda, ... (default: cuda when available)."),
    allow_unisolated_code: bool = UNISOLATED_OPT,
    json_out: bool = JSON_OPT,
    **flags,
) -> None:
    """Tune soft prompts for code: optimal directions z*, a diffusion model of them, held-out scores."""
    ui = Output(json_out)
    cfg = DDPTConfig(**flags)
    with ui.progress() as progress:
        result = api.ddpt_train(cfg, out, device=device, on_event=printing.ddpt_events(ui), on_progress=Bars(progress),
                                on_note=ui.note, on_start=lambda: ui.print(f"run directory: {out}"),
                                allow_unisolated_code=allow_unisolated_code)
    printing.ddpt_trained(ui, cfg, out, result)


@ddpt_app.command("sample")
def sample_command(
    run_dir: Path = typer.Argument(..., help="A run directory of `dlmpo ddpt train`."),
    n: int = typer.Option(1, min=1, help="Samples (seeds seed, seed+1, ...)."),
    seed: int = typer.Option(0, help="Seed of the first sample."),
    problem: Optional[str] = typer.Option(None, help="Condition on this problem (a task_id of the run's task)."),
    sampler: Optional[str] = typer.Option(None, help="ddim or ddpm [default: the run's]."),
    steps: Optional[int] = typer.Option(None, min=1, help="DDIM steps [default: the run's]."),
    words: int = typer.Option(5, min=1, help="Nearest vocabulary words per context position."),
    out: Optional[Path] = typer.Option(None, help="Write the samples (z and words) to this JSON file."),
    device: Optional[str] = typer.Option(None, help="cpu, cuda, ..."),
    json_out: bool = JSON_OPT,
) -> None:
    """Sample prompt vectors z from a trained run and read them through the nearest vocabulary words."""
    ui = Output(json_out)
    rows = api.ddpt_sample(run_dir, n=n, seed=seed, problem=problem, sampler=sampler, steps=steps, words=words, out=out,
                           device=device, on_note=ui.note)
    printing.ddpt_sampled(ui, run_dir, rows, out)
