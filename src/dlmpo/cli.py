"""The `dlmpo` command line."""

from __future__ import annotations

import asyncio
import sys
import warnings
from pathlib import Path
from typing import Optional

import typer

from dlmpo import sampling_defaults as sampler_defaults
from dlmpo.cli_ddpt import ddpt_app
from dlmpo.console import Output
from dlmpo.errors import UserError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Optimize the system prompt of a frozen LLM with a masked diffusion language model.",
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """dlmpo: prompt optimization with diffusion language models."""


JSON_OPT = typer.Option(False, "--json", help="Print one machine-readable JSON object as the last line.")
UNISOLATED_OPT = typer.Option(False, "--allow-unisolated-code",
                              help="Code tasks: run generated code without isolation where no sandbox (bwrap) isolates it.")


def read_prompt(value: str | None, default: str) -> str:
    """A prompt given as a file path or as literal text. Left out (None): `default`, the task's
    prompt; empty ('' or an empty file): no system prompt, in every command."""
    from dlmpo.files import read_text

    if value is None:
        return default
    if not value.strip():
        return ""
    path = Path(value)
    try:
        is_file = "\n" not in value and path.is_file()
        is_dir = "\n" not in value and not is_file and path.is_dir()
    except OSError:  # text too long to be a file name: it is the prompt itself
        is_file = is_dir = False
    if is_dir:
        raise UserError(f"Prompt file {path} is a folder: pass a file or the prompt's text.")
    if not is_file and "\n" not in value and len(value) < 256 and path.suffix in (".txt", ".md", ".prompt"):
        raise UserError(f"Prompt file {path} does not exist.")
    return read_text(path, "Prompt").strip() if is_file else value


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
    import json

    from dlmpo.catalog import get_task
    from dlmpo.evaluate import answer_cap, evaluate
    from dlmpo.lm import open_target
    from dlmpo.lm.pricing import PriceTable
    from dlmpo.files import check_out_dir, write_text_atomic
    from dlmpo.lm.ratelimit import check_limits
    from dlmpo.lm.spec import parse_target_spec
    from dlmpo.tasks import is_episodic

    ui = Output(json_out)
    if soft_prompt is not None:
        from dlmpo.cli_ddpt import eval_soft_prompt, allow_unisolated

        allow_unisolated(allow_unisolated_code)
        return eval_soft_prompt(ui, soft_prompt, task=task, split=split, limit=limit, target=target,
                                max_tokens=max_tokens, out=out)
    parse_target_spec(target)  # a bad specifier, limit or --out fails before any data is read
    if user_model != "scripted":
        parse_target_spec(user_model)
    check_limits(rpm=rpm, tpm=tpm, concurrency=concurrency)
    if out is not None:
        check_out_dir(out)
    the_task = get_task(task, data_dir, allow_unisolated_code=allow_unisolated_code)
    episodic = is_episodic(the_task)
    if not episodic and (trials > 1 or user_model != "scripted"):
        raise UserError("--trials and --user-model apply to τ-bench tasks only.")
    max_tokens = answer_cap(the_task, max_tokens)
    for note in the_task.notes:
        ui.note(note)
    examples = the_task.examples(split)[:limit] if limit else the_task.examples(split)
    if not examples:
        raise UserError(f"Split '{split}' of task '{the_task.name}' has no examples.")
    system_prompt = read_prompt(prompt, the_task.seed_prompt)
    model = open_target(target, use_cache=not no_cache, concurrency=concurrency, rpm=rpm, tpm=tpm,
                        prices=PriceTable.from_file(prices) if prices else None)
    if not model.price_known:
        ui.note(f"no price known for '{model.name}': its cost is counted as $0 (pass --prices).")
    simulator = None
    if episodic:
        the_task.max_steps, the_task.trials = max_steps, trials
        if user_model != "scripted":
            simulator = model if user_model == target else open_target(
                user_model, use_cache=not no_cache, concurrency=concurrency, rpm=rpm, tpm=tpm)
        the_task.bind_user_model(simulator)

    async def run():
        with ui.progress() as progress:
            bar = progress.add_task(f"eval {the_task.name}/{split}", total=len(examples) * trials, status="")
            correct = 0

            def done(trace):
                nonlocal correct
                correct += trace.score > 0
                progress.update(bar, advance=1, status=f"score {correct / (progress.tasks[bar].completed + 1):.3f}")

            try:
                return await evaluate(the_task, model, system_prompt, examples, split=split,
                                      max_tokens=max_tokens, on_done=done)
            finally:
                await model.aclose()
                if simulator is not None and simulator is not model:
                    await simulator.aclose()

    result = asyncio.run(run())
    usage = model.accounting.to_json()
    summary = {
        "task": the_task.name,
        "split": split,
        "n": result.n,
        "score": round(result.score, 4),
        "metrics": {k: round(v, 4) for k, v in result.metrics.items()},
        "parse_failures": result.parse_failures,
        "target_failures": result.failures,
        "usage": usage,
    }
    if episodic:
        summary["pass_hat_k"] = {str(k): round(result.metrics[f"pass^{k}"], 4) for k in range(1, trials + 1)}
        summary["trials"] = trials
        if simulator is not None:
            summary["user_usage"] = simulator.accounting.to_json()
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        result.write_traces(out / "traces.jsonl")
        if episodic:
            from dlmpo.tau.agent import episode_json

            with (out / "episodes.jsonl").open("w", encoding="utf-8") as f:
                for ep in the_task.episodes:
                    f.write(json.dumps(episode_json(ep), ensure_ascii=False) + "\n")
        write_text_atomic(out / "summary.json", json.dumps({**summary, "prompt": system_prompt}, indent=2))
    ui.print(f"[bold]{the_task.name}/{split}[/bold]  score {result.score:.4f}  n={result.n}  "
             + "  ".join(f"{k} {v:.4f}" for k, v in result.metrics.items()))
    ui.print(f"parse failures {result.parse_failures}  target failures {result.failures}  "
             f"calls {usage['calls']} (cache hits {usage['cache_hits']})  tokens {usage['total_tokens']}  "
             f"cost ${usage['cost_usd']:.4f}")
    if out is not None:
        ui.print(f"traces written to {out / 'traces.jsonl'}")
    ui.emit_json(summary)


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
    import time

    from dlmpo.dlm import SamplerConfig, infill, load_dlm
    from dlmpo.dlm.canvas import EXAMPLES_INSTRUCTION
    from dlmpo.jsonl import read_objects

    ui = Output(json_out)
    cfg = SamplerConfig(steps=steps, alg=alg, alg_temp=alg_temp, temperature=temperature, top_p=top_p,
                        top_k=top_k, block_length=block_length, threshold=threshold, kv_refresh=kv_refresh,
                        seed=seed, schedule=schedule)
    cfg.validate()
    items = [obj for _, obj in read_objects(context, "Context")] if context else []
    instruction = None
    if examples:
        items += [{"query": r.get("input", r.get("query", r.get("user"))),
                   "output": r.get("output", r.get("assistant"))} for _, r in read_objects(examples, "Examples")]
        instruction = EXAMPLES_INSTRUCTION
    start = time.perf_counter()
    model = load_dlm(dlm, device, adapter=adapter)
    result = infill(model, text, context=items, instruction=instruction, n_candidates=candidates, sampler=cfg)
    seconds = time.perf_counter() - start
    for note in result.notes:
        ui.note(note)
    for i, cand in enumerate(result.candidates, 1):
        ui.print(f"[bold]candidate {i}[/bold]: {cand.text}")
    ui.print(f"{result.masks} masks, {result.nfe} forwards ({result.masks / result.nfe:.2f} tokens/forward), "
             f"sampling {result.seconds:.2f}s, canvas {result.canvas_tokens} tokens, traces {result.traces_used}")
    ui.emit_json({
        "candidates": [{"text": c.text, "spans": c.spans, "nfe": c.nfe} for c in result.candidates],
        "steps": steps, "alg": alg, "seconds": round(seconds, 3),
        "sampling_seconds": round(result.seconds, 3), "masks": result.masks,
    })


def _event_printer(ui: Output):
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
                ui.print(f"  candidate {c.index} \\[{c.strategy}] screening {c.minibatch:.3f} "
                         f"(+{c.wins}/-{c.losses} vs incumbent), {c.nfe} DLM forwards {c.dlm_seconds:.1f}s{drawn}")
        elif isinstance(e, Decision):
            v, verdict = e.verdict, "accepted" if e.accepted else "kept incumbent"
            if v.dropped:
                ui.print(f"  challenger {e.index} on the first {v.scored} val examples {e.val:.4f} "
                         f"(+{v.wins}/-{v.losses}): not ahead, dropped; {verdict}")
            else:
                second = (f" with {v.confirmed_on} confirmation examples (first look p {v.first_p:.3g})"
                          if v.first_p is not None else "")
                ui.print(f"  challenger {e.index} on val {e.val:.4f} vs {e.incumbent_val:.4f} "
                         f"(+{v.wins}/-{v.losses}{second}, sign test p {v.p_value:.3g} vs {v.level:.3g}): {verdict}")
        elif isinstance(e, RoundEnd):
            sp = e.spend
            ui.print(f"  best val {e.best_val:.4f} | spent {sp['calls']} calls, {sp['total_tokens']} tokens, ${sp['cost_usd']:.4f}")
        elif isinstance(e, Stop) and e.reason != "rounds":
            ui.print(f"stopped early: {e.reason}")

    return show


def _settings(config, sets, **flags):
    """Optimize settings: config file, then flags, then --set k=v."""
    from dlmpo.optimizer import load_settings

    extra = {}
    for item in sets or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise UserError(f"--set expects key=value, got '{item}'.")
        extra[key.strip().replace("-", "_")] = value.strip()
    flags = {k: (str(v) if isinstance(v, Path) else v) for k, v in flags.items()}
    return load_settings(config, {**flags, **extra})


SET_OPT = typer.Option(None, "--set", help="Any other optimize setting, as key=value (repeatable).")


@app.command("optimize")
def optimize_command(
    task: Optional[str] = typer.Option(None, help="Built-in task or task config file [default: sst2]."),
    target: Optional[str] = typer.Option(None, help="Target model specifier [default: embedded]."),
    dlm: Optional[str] = typer.Option(None, help="DLM specifier [default: embedded]."),
    adapter: Optional[Path] = typer.Option(None, help="Output directory of `dlmpo train` to apply to --dlm."),
    proposer: Optional[str] = typer.Option(None, help="dlm; ar (a chat model fills the blanks); textgrad (critique, rewrite)."),
    optimizer_model: Optional[str] = typer.Option(None, help="Chat-model specifier of the ar and textgrad proposers [default: embedded]."),
    rounds: Optional[int] = typer.Option(None, help="Optimization rounds [default: 5]."),
    candidates: Optional[int] = typer.Option(None, help="Candidate prompts per round [default: 4]."),
    steps: Optional[int] = typer.Option(None, help=f"DLM denoising steps [default: {sampler_defaults.STEPS}]."),
    mask_tokens: Optional[int] = typer.Option(None, help="Mask tokens the DLM fills per edit [default: 16]."),
    strategy: Optional[str] = typer.Option(None, help="append, span, sentence, regrow; ',' alternates, '+' combines [default: append]."),
    feedback: Optional[str] = typer.Option(None, help="metric, judge, human or none [default: metric]."),
    judge: Optional[str] = typer.Option(None, help="Chat-model specifier of the judge (feedback judge)."),
    user_model: Optional[str] = typer.Option(None, help="τ-bench user simulator: chat-model specifier or scripted [default: scripted]."),
    human_notes: Optional[str] = typer.Option(None, help="Notes file for feedback human (text or JSONL)."),
    alg: Optional[str] = typer.Option(None, help=f"DLM reveal rule [default: {sampler_defaults.ALG}]."),
    temperature: Optional[float] = typer.Option(None, help=f"DLM sampling temperature [default: {sampler_defaults.TEMPERATURE}]."),
    threshold: Optional[float] = typer.Option(None, help="DLM parallel-decoding threshold."),
    kv_refresh: Optional[int] = typer.Option(None, help="DLM context K/V reuse, refreshed every k steps."),
    train_size: Optional[int] = typer.Option(None, help="Train pool for traces [default: 32]."),
    val_size: Optional[int] = typer.Option(None, help="Validation pool for selection [default: 150]."),
    test_size: Optional[int] = typer.Option(None, help="Held-out test examples (seed and best) [default: 500, or the whole split]."),
    batch_size: Optional[int] = typer.Option(None, help="Train examples run per round [default: 8]."),
    screen_batch: Optional[int] = typer.Option(None, help="Examples on which candidates are screened: val-split rows outside the val pool, else train rows [default: 16]."),
    patience: Optional[int] = typer.Option(None, help="Stop after this many rounds without improvement."),
    max_calls: Optional[int] = typer.Option(None, help="Target-call budget (never exceeded)."),
    max_cost: Optional[float] = typer.Option(None, help="Dollar budget (never exceeded)."),
    max_tokens: Optional[int] = typer.Option(None, help="Token budget (never exceeded)."),
    max_seconds: Optional[float] = typer.Option(None, help="Stop starting rounds after this many seconds."),
    seed_prompt: Optional[str] = typer.Option(None, "--prompt", help="Seed system prompt: file or text; '' (or an empty file) "
                                                                     "is no system prompt [default: the task's]."),
    data_dir: Optional[Path] = typer.Option(None, help="Local data directory (else DLMPO_DATA_DIR, else the hub)."),
    out: Optional[Path] = typer.Option(None, help="Run directory [default: runs/<task>-<settings hash>]."),
    seed: Optional[int] = typer.Option(None, help="Random seed [default: 0]."),
    device: Optional[str] = typer.Option(None, help="DLM device (default: cuda when available)."),
    prices: Optional[str] = typer.Option(None, help="JSON price table {model: [in, out]} USD per 1M tokens."),
    config: Optional[Path] = typer.Option(None, help="TOML/JSON/YAML file of settings (flags override it)."),
    sets: Optional[list[str]] = SET_OPT,
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the call and cost estimate, then stop."),
    allow_unisolated_code: bool = UNISOLATED_OPT,
    json_out: bool = JSON_OPT,
) -> None:
    """Optimize a system prompt with a diffusion language model."""
    from dlmpo.optimizer import Optimizer
    from dlmpo.report.render import write_report
    from dlmpo.runs.rundir import default_run_dir

    ui = Output(json_out)
    overrides = dict(
        task=task, target=target, dlm=dlm, adapter=str(adapter) if adapter else None, proposer=proposer,
        optimizer_model=optimizer_model, rounds=rounds,
        candidates=candidates, steps=steps,
        mask_tokens=mask_tokens, strategy=strategy, feedback=feedback, judge=judge, user_model=user_model,
        human_notes=human_notes,
        alg=alg, temperature=temperature, threshold=threshold, kv_refresh=kv_refresh, train_size=train_size,
        val_size=val_size, test_size=test_size, batch_size=batch_size, screen_batch=screen_batch, patience=patience,
        max_calls=max_calls, max_cost=max_cost, max_tokens=max_tokens, max_seconds=max_seconds,
        data_dir=str(data_dir) if data_dir else None, seed=seed, device=device, prices=prices,
        allow_unisolated_code=allow_unisolated_code or None,
    )
    settings = _settings(config, sets, **overrides)
    if seed_prompt is not None:
        settings = settings.model_copy(update={"seed_prompt": read_prompt(seed_prompt, "")})
    run_dir = out or default_run_dir(settings.identity())
    optimizer = Optimizer(settings, run_dir, on_event=_event_printer(ui))
    for note in optimizer.task.notes:
        ui.note(note)
    if dry_run:
        optimizer.check()  # the DLM, its adapter, the seed prompt's length and the notes, or the dry run says why
        est = optimizer.estimate()
        ui.print(f"estimate (no cache hits, full batches): {est['calls']} target calls, "
                 f"~{est['prompt_tokens'] + est['completion_tokens']} tokens")
        ui.emit_json({"run_dir": str(run_dir), "estimate": est})
        return
    ui.print(f"run directory: {run_dir}")
    with ui.progress() as progress:
        bar = progress.add_task("starting", total=None, status="")
        optimizer.on_progress = lambda what, done, total: progress.update(bar, description=what, completed=done,
                                                                           total=total)
        result = asyncio.run(optimizer.run())
    paths = write_report(run_dir)
    ui.print(f"[bold]val[/bold] {result.val['seed']:.4f} -> {result.val['best']:.4f}   "
             f"[bold]test[/bold] {result.test['seed']:.4f} -> {result.test['best']:.4f}   "
             f"({len(result.rounds)} rounds, {result.calls} calls, ${result.usage['cost_usd']:.4f}, {result.seconds:.0f}s)")
    ui.print(f"best prompt: {run_dir / 'best_prompt.txt'}\nreport: {paths['markdown']} and {paths['html']}")
    ui.emit_json(result.summary())


@app.command("report")
def report_command(
    run_dir: Path = typer.Argument(..., help="A run directory of `dlmpo optimize`."),
    json_out: bool = JSON_OPT,
) -> None:
    """(Re)write report.md, report.html and scores.png of a run directory."""
    from dlmpo.optimizer import OptimizeResult
    from dlmpo.report.render import write_report

    ui = Output(json_out)
    paths = write_report(run_dir)
    result = OptimizeResult.load(run_dir)
    ui.print(f"val {result.val['seed']:.4f} -> {result.val['best']:.4f}, "
             f"test {result.test['seed']:.4f} -> {result.test['best']:.4f}")
    ui.print(f"report: {paths['markdown']}, {paths['html']}, {paths['plot']}")
    ui.emit_json({k: str(v) for k, v in paths.items()} | {"val": result.val, "test": result.test})


@app.command("train")
def train_command(
    dlm: str = typer.Option(..., help="Base DLM specifier (smollm2:base, dream:, llada:, mlm:, tiny-random:)."),
    data: Path = typer.Option(..., help="JSONL rows: canvas {prompt, context?} or chat {messages} / {system?, user, assistant}."),
    out: Path = typer.Option(..., help="Output directory (re-run the same command to resume)."),
    eval_data: Optional[Path] = typer.Option(None, help="Held-out JSONL for loss and masked-token accuracy."),
    masking: str = typer.Option("joint", help="joint (every token) or target (only the text the DLM writes)."),
    span_fraction: float = typer.Option(0.0, help="Share of sequences masked as the optimizer masks: target spans only."),
    attention: str = typer.Option("full", help="full, block:B (block-causal) or anneal:N (causal opened over N steps)."),
    full: bool = typer.Option(False, "--full", help="Full fine-tuning instead of LoRA."),
    lora_rank: int = typer.Option(16, help="LoRA rank."),
    train_mask_row: bool = typer.Option(False, help="Also train the mask token's embedding row."),
    steps: int = typer.Option(200, help="Optimizer steps in all (raise it to continue a finished run)."),
    batch_size: int = typer.Option(8, help="Sequences per step."),
    lr: float = typer.Option(2e-4, help="Learning rate."),
    warmup: int = typer.Option(10, help="Warm-up steps."),
    max_length: int = typer.Option(512, help="Tokens per sequence (longer examples are dropped and counted)."),
    eval_every: int = typer.Option(50, help="Evaluate every N steps."),
    save_every: int = typer.Option(100, help="Checkpoint every N steps."),
    eval_on: str = typer.Option("target", help="Held-out metric on target, context or all tokens."),
    bf16: bool = typer.Option(False, help="bf16 autocast (faster on recent CPUs and GPUs)."),
    time_limit: Optional[str] = typer.Option(None, help="Stop cleanly and save after this long, e.g. 110m or 2h."),
    init_from: Optional[Path] = typer.Option(None, help="Adapter folder to start from when --out holds no checkpoint."),
    seed: int = typer.Option(0, help="Random seed."),
    device: Optional[str] = typer.Option(None, help="cpu, cuda, ..."),
    json_out: bool = JSON_OPT,
) -> None:
    """Fine-tune a DLM to infill prompts (full-sequence joint masking) or responses."""
    from dlmpo.train import TrainConfig, Trainer

    ui = Output(json_out)
    cfg = TrainConfig(dlm=dlm, data=str(data), out=str(out), eval_data=str(eval_data) if eval_data else None,
                      masking=masking, span_fraction=span_fraction, attention=attention, lora=not full,
                      lora_rank=lora_rank, lora_alpha=2 * lora_rank, train_mask_row=train_mask_row, steps=steps,
                      batch_size=batch_size, lr=lr, warmup=warmup, max_length=max_length, eval_every=eval_every,
                      save_every=save_every, eval_on=eval_on, bf16=bf16, seed=seed,
                      time_limit=parse_duration(time_limit) if time_limit else None,
                      init_from=str(init_from) if init_from else None, device=device)

    def show(e):
        if e["type"] == "eval":
            ui.print(f"step {e['step']}: held-out {eval_on} tokens loss {e['loss']:.4f}, accuracy {e['accuracy']:.4f}")
        elif e["type"] == "resume":
            ui.print(f"resuming at step {e['step']} ({e['tokens_seen']:,} tokens seen)")
        elif e["type"] == "data" and (e["train_dropped"] or e["held_out_dropped"]):
            ui.print(f"{e['train_dropped']} training and {e['held_out_dropped']} held-out examples are longer than "
                     f"{e['max_length']} tokens and were left out")

    trainer = Trainer(cfg, on_log=show)
    with ui.progress() as progress:
        bar = progress.add_task(f"train {masking}", total=steps, status="")

        def tick(step, total, last):
            progress.update(bar, completed=step, status=f"loss {last['loss']:.3f} acc {last['masked_acc']:.3f}")

        summary = trainer.run(progress=tick)
    if summary["finished"]:
        ui.print(f"done: {summary['steps']} steps, {summary['tokens_seen']:,} tokens, weights {summary['weights_mb']} MB in {out}")
    else:
        ui.print(f"stopped at the time limit after step {summary['steps']} of {steps}: run the same command to resume")
    ui.emit_json(summary)


def parse_duration(text: str) -> float:
    """'90s', '110m', '2h' or plain seconds, in seconds; one sentence otherwise."""
    import re

    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", text)
    if not match or float(match.group(1)) <= 0:
        raise UserError(f"Cannot read the duration '{text}': write e.g. 90s, 110m or 2h.")
    return float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[match.group(2)]


# options `compare` and `sweep` share: the settings every one of their runs gets
RUN_TASK = typer.Option(None, help="Task [default: sst2].")
RUN_TARGET = typer.Option(None, help="Target model specifier [default: embedded].")
RUN_DLM = typer.Option(None, help="DLM specifier of the dlm optimizer.")
RUN_MAX_CALLS = typer.Option(None, help="The call budget of every run (target + optimizer-model calls).")
RUN_ROUNDS = typer.Option(None, help="Rounds [default: 5].")
RUN_ADAPTER = typer.Option(None, help="Output directory of `dlmpo train` to apply to --dlm.")
RUN_CANDIDATES = typer.Option(None, help="Candidates per round [default: 4].")
RUN_TRAIN = typer.Option(None, help="Train pool.")
RUN_VAL = typer.Option(None, help="Validation pool.")
RUN_TEST = typer.Option(None, help="Held-out test examples.")
RUN_DATA = typer.Option(None, help="Local data directory.")
RUN_CONFIG = typer.Option(None, help="Settings file shared by every run.")


@app.command("compare")
def compare_command(
    optimizers: str = typer.Option("dlm,ar,textgrad,gepa", help="Comma-separated: dlm, ar, textgrad, gepa, mipro."),
    seeds: int = typer.Option(3, min=1, help="Runs per optimizer (seeds 0..n-1)."),
    task: Optional[str] = RUN_TASK,
    target: Optional[str] = RUN_TARGET,
    dlm: Optional[str] = RUN_DLM,
    adapter: Optional[Path] = RUN_ADAPTER,
    optimizer_model: Optional[str] = typer.Option(None, help="Chat model of ar, textgrad, gepa (reflection) and mipro (proposals)."),
    max_calls: Optional[int] = RUN_MAX_CALLS,
    max_cost: Optional[float] = typer.Option(None, help="Dollar budget every run gets."),
    rounds: Optional[int] = RUN_ROUNDS,
    candidates: Optional[int] = RUN_CANDIDATES,
    train_size: Optional[int] = RUN_TRAIN,
    val_size: Optional[int] = RUN_VAL,
    test_size: Optional[int] = RUN_TEST,
    data_dir: Optional[Path] = RUN_DATA,
    out: Path = typer.Option(Path("runs/compare"), help="Folder of the comparison (one run directory per optimizer and seed)."),
    config: Optional[Path] = RUN_CONFIG,
    sets: Optional[list[str]] = SET_OPT,
    json_out: bool = JSON_OPT,
) -> None:
    """Run several optimizers from the same seed prompt under one budget; table and plot of held-out scores."""
    from dlmpo.compare import compare

    ui = Output(json_out)
    base = _settings(config, sets, task=task, target=target, dlm=dlm, adapter=adapter, optimizer_model=optimizer_model,
                                max_calls=max_calls, max_cost=max_cost, rounds=rounds, candidates=candidates,
                                train_size=train_size, val_size=val_size, test_size=test_size, data_dir=data_dir)
    names = [o.strip() for o in optimizers.split(",") if o.strip()]

    def show(optimizer, seed, run):
        ui.print(f"{optimizer} seed {seed}: test {run.test['seed']:.4f} -> {run.test['best']:.4f}, "
                 f"{run.calls} calls, {run.seconds:.0f}s")

    summary = asyncio.run(compare(base, names, seeds, out, on_run=show))
    ui.print((out / "compare.md").read_text())
    ui.print(f"table {out / 'compare.md'}, plot {out / 'compare.png'}")
    ui.emit_json({"results": summary["results"], "baseline_test": summary["baseline_test"]})


@app.command("sweep")
def sweep_command(
    param: str = typer.Option(..., help="The optimize setting to vary, e.g. steps, mask_tokens, candidates."),
    values: str = typer.Option(..., help="Comma-separated values, e.g. 8,16,32,64,128,256,512."),
    task: Optional[str] = RUN_TASK,
    target: Optional[str] = RUN_TARGET,
    dlm: Optional[str] = RUN_DLM,
    adapter: Optional[Path] = RUN_ADAPTER,
    max_calls: Optional[int] = RUN_MAX_CALLS,
    rounds: Optional[int] = RUN_ROUNDS,
    candidates: Optional[int] = RUN_CANDIDATES,
    train_size: Optional[int] = RUN_TRAIN,
    val_size: Optional[int] = RUN_VAL,
    test_size: Optional[int] = RUN_TEST,
    data_dir: Optional[Path] = RUN_DATA,
    out: Path = typer.Option(Path("runs/sweep"), help="Folder of the sweep (one run directory per value)."),
    config: Optional[Path] = RUN_CONFIG,
    sets: Optional[list[str]] = SET_OPT,
    json_out: bool = JSON_OPT,
) -> None:
    """Vary one optimizer setting; table and plot of held-out test score against it (the paper's Figure 3)."""
    from dlmpo.compare import sweep

    ui = Output(json_out)
    base = _settings(config, sets, task=task, target=target, dlm=dlm, adapter=adapter, max_calls=max_calls, rounds=rounds,
                                candidates=candidates, train_size=train_size, val_size=val_size, test_size=test_size,
                                data_dir=data_dir)
    chosen = [v.strip() for v in values.split(",") if v.strip()]
    if not chosen:
        raise UserError("--values needs at least one value.")

    summary = asyncio.run(sweep(base, param.replace("-", "_"), chosen, out,
                                on_run=lambda v, r: ui.print(f"{param}={v}: test {r.test['best']:.4f}, {r.calls} calls")))
    ui.print(f"{param:>12}  test    val     calls  seconds")
    for r in summary["results"]:
        ui.print(f"{r['value']:>12}  {r['test']:.4f}  {r['val']:.4f}  {r['calls']:>5}  {r['seconds']}")
    ui.print(f"plot {out / 'sweep.png'}")
    ui.emit_json(summary)


tau_app = typer.Typer(no_args_is_help=True, help="τ-bench tools: replay recorded episodes.")
data_app = typer.Typer(no_args_is_help=True, help="Download benchmark data.")
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
    from dlmpo.catalog import resolve_data_dir
    from dlmpo.tau.domain import load_domain
    from dlmpo.tau.replay import replay

    ui = Output(json_out)
    loaded = load_domain(domain, resolve_data_dir(data_dir))
    report = replay(trajectories, loaded)
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
    from dlmpo.tau.fetch import PINNED_REF, fetch_tau

    if name != "tau":
        raise UserError(f"Unknown dataset '{name}': only tau can be fetched (the GLUE tasks load from the hub).")
    ui = Output(json_out)
    with ui.progress() as progress:
        bar = progress.add_task("fetch tau", total=None, status="")
        path = fetch_tau(dest, ref or PINNED_REF, on_file=lambda f: progress.update(bar, advance=1, status=f))
    ui.print(f"τ-bench written to {path}; use --data-dir {path.parent}")
    ui.emit_json({"path": str(path), "ref": ref or PINNED_REF})


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
    except click.Abort:
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
