"""`dlmpo ddpt train|sample` and `dlmpo eval --soft-prompt`: diffusion-driven prompt tuning."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from dlmpo.console import Output
from dlmpo.ddpt.config import DDPTConfig
from dlmpo.errors import UserError
from dlmpo.files import check_out_dir, check_out_file

ddpt_app = typer.Typer(no_args_is_help=True, help="DDPT: diffusion-driven prompt tuning of soft prompts for code generation.")
JSON_OPT = typer.Option(False, "--json", help="Print one machine-readable JSON object as the last line.")
UNISOLATED_OPT = typer.Option(False, "--allow-unisolated-code",
                              help="Run generated code without isolation where no sandbox (bwrap) isolates it.")


def allow_unisolated(allowed: bool) -> None:
    """The opt-in of this process's sandbox (`DLMPO_ALLOW_UNISOLATED_CODE`): DDPT's scoring reads it."""
    if allowed:
        import os

        from dlmpo.code.sandbox import OPT_IN_ENV

        os.environ[OPT_IN_ENV] = "1"
D = DDPTConfig()


class StageBars:
    """One rich progress bar per stage, opened the first time the stage reports."""

    def __init__(self, progress):
        self.progress, self.bars = progress, {}

    def __call__(self, stage: str, completed: int, total: int, status: str) -> None:
        if stage not in self.bars:
            self.bars[stage] = self.progress.add_task(stage, total=total, status="")
        self.progress.update(self.bars[stage], completed=completed, total=total, status=status)


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
def train_command(
    task: str = typer.Option(D.task, help="humaneval, mbpp, codealpaca, conala (hub), or a .jsonl of problems."),
    target: str = typer.Option(D.target, help="A local causal LM: embedded or hf:<repo-or-path>."),
    out: Path = typer.Option(Path("runs/ddpt"), help="Run directory (re-run the same command to resume)."),
    method: str = typer.Option(D.method, help="ddpt, or prompt-tuning (the plain baseline alone)."),
    seed: int = typer.Option(D.seed, help="Seed of every random choice (same seed, same z, same outputs)."),
    split_seed: int = typer.Option(D.split_seed, help="Seed of the train/val/test split."),
    context: str = typer.Option(D.context, help="The context text: its embeddings are what gets tuned."),
    instruction: str = typer.Option(D.instruction, help="The instruction text after the context (kept as written)."),
    z_dim: int = typer.Option(D.z_dim, help="Dimension of the prompt vector z."),
    train_limit: Optional[int] = typer.Option(None, help="Use only the first N train problems."),
    test_limit: Optional[int] = typer.Option(None, help="Score only the first N test problems."),
    max_prompt_tokens: int = typer.Option(D.max_prompt_tokens, help="Train problems with longer prompts are left out."),
    max_solution_tokens: int = typer.Option(D.max_solution_tokens, help="Training scores this many solution tokens."),
    clusters: int = typer.Option(D.clusters, help="Stage 1: clusters of train problems."),
    directions_per_cluster: int = typer.Option(D.directions_per_cluster, help="Stage 1: z* per cluster (seeds)."),
    direction_steps: int = typer.Option(D.direction_steps, help="Stage 1: Adam steps per z*."),
    prompt_tuning_steps: int = typer.Option(D.prompt_tuning_steps, help="Baseline: Adam steps on one z."),
    batch_size: int = typer.Option(D.batch_size, help="Problems per step (stage 1 and the baseline)."),
    lr: float = typer.Option(D.lr, help="Learning rate of z."),
    timesteps: int = typer.Option(D.timesteps, help="Diffusion timesteps T."),
    denoiser_hidden: int = typer.Option(D.denoiser_hidden, help="Width of the denoiser MLP."),
    denoiser_steps: int = typer.Option(D.denoiser_steps, help="Stage 2: steps of the diffusion loss alone."),
    code_steps: int = typer.Option(D.code_steps, help="Stage 2: further steps with the code loss added."),
    code_batch: int = typer.Option(D.code_batch, help="Stage 2: problems per code-loss step."),
    code_weight: float = typer.Option(D.code_weight, help="Stage 2: weight of the code loss."),
    cond_dropout: float = typer.Option(D.cond_dropout, help="Stage 2: share of pairs trained without their condition."),
    denoiser_lr: float = typer.Option(D.denoiser_lr, help="Stage 2: learning rate."),
    sampler: str = typer.Option(D.sampler, help="ddim or ddpm."),
    sample_steps: int = typer.Option(D.sample_steps, help="DDIM steps."),
    max_new_tokens: int = typer.Option(D.max_new_tokens, help="Generation cap for pass@k."),
    samples: int = typer.Option(D.samples, help="Completions per problem: 1 greedy, more sampled (pass@k)."),
    temperature: float = typer.Option(D.temperature, help="Sampling temperature when samples > 1."),
    timeout_s: float = typer.Option(D.timeout_s, help="Sandbox: seconds per program."),
    memory_mb: int = typer.Option(D.memory_mb, help="Sandbox: address-space limit per program."),
    device: Optional[str] = typer.Option(None, help="cpu, cuda, ... (default: cuda when available)."),
    allow_unisolated_code: bool = UNISOLATED_OPT,
    json_out: bool = JSON_OPT,
) -> None:
    """Tune soft prompts for code: optimal directions z*, a diffusion model of them, held-out scores."""
    from dlmpo.ddpt.run import DDPTRun

    ui = Output(json_out)
    allow_unisolated(allow_unisolated_code)
    cfg = DDPTConfig(task=task, target=target, method=method, seed=seed, split_seed=split_seed, context=context,
                     instruction=instruction, z_dim=z_dim, train_limit=train_limit, test_limit=test_limit,
                     max_prompt_tokens=max_prompt_tokens, max_solution_tokens=max_solution_tokens, clusters=clusters,
                     directions_per_cluster=directions_per_cluster, direction_steps=direction_steps,
                     prompt_tuning_steps=prompt_tuning_steps, batch_size=batch_size, lr=lr, timesteps=timesteps,
                     denoiser_hidden=denoiser_hidden, denoiser_steps=denoiser_steps, code_steps=code_steps,
                     code_batch=code_batch, code_weight=code_weight, cond_dropout=cond_dropout, denoiser_lr=denoiser_lr,
                     sampler=sampler, sample_steps=sample_steps, max_new_tokens=max_new_tokens, samples=samples,
                     temperature=temperature, timeout_s=timeout_s, memory_mb=memory_mb)
    with ui.progress() as progress:
        run = DDPTRun(cfg, out, device=device, on_event=_show_event(ui), on_progress=StageBars(progress))
        for note in run.notes:
            ui.note(note)
        ui.print(f"run directory: {out}")
        result = run.run()
    ui.print(f"{'held-out test':>16}  {'nll':>7}  pass@1")
    for name, score in result.test.items():
        passed = "n/a" if score.get("pass@1") is None else f"{score['pass@1']:.3f}"
        ui.print(f"{name:>16}  {score['nll']:7.4f}  {passed}")
    ui.print(f"done in {result.seconds:.0f}s; soft prompts: dlmpo eval --task {task} --split test --soft-prompt {out}")
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

    from dlmpo.code.problems import load_code_problems
    from dlmpo.ddpt.config import SAMPLERS
    from dlmpo.ddpt.interpret import interpret
    from dlmpo.ddpt.trained import TrainedSoftPrompt

    if sampler is not None and sampler not in SAMPLERS:
        raise UserError(f"Unknown sampler '{sampler}': use ddim or ddpm.")
    if out is not None:
        check_out_file(out)
    ui = Output(json_out)
    trained = TrainedSoftPrompt(run_dir, device)
    chosen = None
    if problem is not None:
        splits = load_code_problems(trained.cfg.task, trained.cfg.split_seed)
        found = [p for p in splits.train + splits.val + splits.test if p.task_id == problem]
        if not found:
            raise UserError(f"Task '{trained.cfg.task}' has no problem '{problem}'.")
        chosen = found[0]
    if trained.prior is None:
        ui.note(f"{run_dir} has no diffusion prior (a prompt-tuning run): showing its one tuned z.")
    rows = []
    for i in range(n if trained.prior is not None else 1):
        z = trained.sample(seed + i, chosen, method=sampler, steps=steps)
        reading = interpret(trained.space, z, words)
        rows.append({"seed": seed + i, "problem": problem, "norm": round(z.norm().item(), 4),
                     "z": [round(v, 6) for v in z.tolist()], "words": reading})
        ui.print(f"[bold]sample seed {seed + i}[/bold]: |z| = {rows[-1]['norm']:.3f}")
        for r in reading:
            ui.print(f"  {escape(repr(r['token'])):>14} (shift {r['shift']:.2f}) -> nearest "
                     f"{escape(', '.join(map(repr, r['nearest'])))}; direction {escape(', '.join(map(repr, r['direction'])))}")
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"run_dir": str(run_dir), "samples": rows}, indent=2, ensure_ascii=False))
        ui.print(f"samples written to {out}")
    ui.emit_json({"run_dir": str(run_dir), "samples": rows})


def eval_soft_prompt(ui: Output, spec: str, *, task: str, split: str, limit: int | None, target: str,
                     max_tokens: int | None, out: Path | None) -> None:
    """`dlmpo eval --soft-prompt RUN_DIR[#variant]`: NLL and pass@k of a tuned soft prompt on a code task."""
    from dlmpo.code.problems import is_code_task, load_code_problems
    from dlmpo.ddpt.trained import TrainedSoftPrompt, parse_soft_prompt
    from dlmpo.ddpt.whitebox import require_white_box

    require_white_box(target)
    if out is not None:
        check_out_dir(out)
    if not is_code_task(task):
        raise UserError("--soft-prompt needs a code task: humaneval, mbpp, codealpaca, conala or a .jsonl of problems.")
    run_dir, variant = parse_soft_prompt(spec)
    splits = load_code_problems(task)  # a bad task fails before the model loads
    trained = TrainedSoftPrompt(run_dir)
    if trained.cfg.target != target:
        raise UserError(f"The soft prompts in {run_dir} were trained on {trained.cfg.target}: pass --target {trained.cfg.target}.")
    if task == trained.cfg.task and trained.cfg.split_seed != 0:
        splits = load_code_problems(task, trained.cfg.split_seed)  # the run's own held-out problems
    variant = trained.resolve(variant)
    problems = splits.get(split)[:limit] if limit else splits.get(split)
    if not problems:
        raise UserError(f"Split '{split}' of task '{task}' has no problems.")
    with ui.progress() as progress:
        bar = progress.add_task(f"eval {task}/{split} [{variant}]", total=trained.units(problems), status="")
        score = trained.score(variant, problems, seed=trained.cfg.seed, max_new_tokens=max_tokens,
                              on_progress=lambda k: progress.update(bar, advance=k))
    metrics = score.summary()
    summary = {"task": task, "split": split, "n": len(problems), "score": metrics.get("pass@1"), "metrics": metrics,
               "soft_prompt": {"run_dir": str(run_dir), "variant": variant}}
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        with (out / "generations.jsonl").open("w", encoding="utf-8") as f:
            for row in score.rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
        (out / "summary.json").write_text(json.dumps(summary, indent=2))
    ui.print(f"[bold]{task}/{split}[/bold] soft prompt {variant} from {run_dir}: n={len(problems)}  "
             + "  ".join(f"{k} {v:.4f}" for k, v in metrics.items() if v is not None))
    ui.emit_json(summary)
