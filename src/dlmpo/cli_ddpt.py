"""`dlmpo ddpt train|sample`: diffusion-driven prompt tuning (options generated from DDPTConfig)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from dlmpo import api
from dlmpo.cli_options import JSON_OPT, UNISOLATED_OPT, Bars, with_options
from dlmpo.console import Output
from dlmpo.ddpt.config import HELP, DDPTConfig

ddpt_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None,
                       help="DDPT: diffusion-driven prompt tuning of soft prompts for code generation.")


def _show_event(ui: Output):
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
        result = api.ddpt_train(cfg, out, device=device, on_event=_show_event(ui), on_progress=Bars(progress),
                                on_note=ui.note, on_start=lambda: ui.print(f"run directory: {out}"),
                                allow_unisolated_code=allow_unisolated_code)
    ui.print(f"{'held-out test':>16}  {'nll':>7}  pass@1")
    for name, score in result.test.items():
        passed = "n/a" if score.get("pass@1") is None else f"{score['pass@1']:.3f}"
        ui.print(f"{name:>16}  {score['nll']:7.4f}  {passed}")
    ui.print(f"done in {result.seconds:.0f}s; soft prompts: dlmpo eval --task {cfg.task} --split test --soft-prompt {out}")
    ui.emit_json(result.summary())


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
    from rich.markup import escape

    ui = Output(json_out)
    rows = api.ddpt_sample(run_dir, n=n, seed=seed, problem=problem, sampler=sampler, steps=steps, words=words, out=out,
                           device=device, on_note=ui.note)
    for row in rows:
        ui.print(f"[bold]sample seed {row['seed']}[/bold]: |z| = {row['norm']:.3f}")
        for r in row["words"]:
            ui.print(f"  {escape(repr(r['token'])):>14} (shift {r['shift']:.2f}) -> nearest "
                     f"{escape(', '.join(map(repr, r['nearest'])))}; direction {escape(', '.join(map(repr, r['direction'])))}")
    if out is not None:
        ui.print(f"samples written to {out}")
    ui.emit_json({"run_dir": str(run_dir), "samples": rows})
