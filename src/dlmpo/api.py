"""The one place that builds things: settings -> task, models, optimizer -> run directory -> report.

The CLI, `dlmpo.optimize`, `compare` and `sweep` call these functions and nothing below them:

    make_settings(config, flags, sets) -> OptimizeSettings; dry_run(settings, out) -> the estimate
    run_optimizer(settings, out, on_event=..., on_progress=...) -> OptimizeResult (report written)
    evaluate_split(task, split, target, ...)                     -> EvalSummary (files written)
    train(train_config(fields), on_log=..., on_progress=...)     -> the trainer's summary
    ddpt_train(cfg, out, ...) / ddpt_sample(run_dir, ...) / score_soft_prompt(spec, ...)
    compare(base, optimizers, seeds, out) / sweep(base, param, values, out)

Progress callbacks take (what, done, total, status) and are transient; events are typed
(`optimizer.events`) and also land in the run directory."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from dlmpo.errors import UserError
from dlmpo.optimizer.result import OptimizeResult
from dlmpo.optimizer.settings import OptimizeSettings, load_settings

Progress = Callable[[str, int, "int | None", str], None]
Note = Callable[[str], None]


def _quiet(*_args: Any) -> None:
    pass


# ---------------------------------------------------------------- optimize


def make_settings(config: str | Path | None = None, overrides: dict | None = None,
                  sets: list[str] | None = None, *, prompt: str | None = None) -> OptimizeSettings:
    """Optimize settings: a config file, then `overrides` (None = not given), then `key=value` items;
    `prompt`, a file or the text itself ('' is no system prompt), replaces the seed prompt."""
    extra = {}
    for item in sets or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise UserError(f"--set expects key=value, got '{item}'.")
        extra[key.strip().replace("-", "_")] = value.strip()
    flags = {k: (str(v) if isinstance(v, Path) else v) for k, v in (overrides or {}).items()}
    settings = load_settings(config, {**flags, **extra})
    if prompt is None:
        return settings
    from dlmpo.files import read_prompt

    return settings.model_copy(update={"seed_prompt": read_prompt(prompt, "")})


def run_dir_for(settings: OptimizeSettings, out: str | Path | None = None) -> Path:
    from dlmpo.runs.rundir import default_run_dir

    return Path(out) if out else default_run_dir(settings.identity())


def dry_run(settings: OptimizeSettings, out: str | Path | None = None, *, on_note: Note = _quiet) -> dict:
    """The call and token estimate of a run, without running it: the task's notes, then the checks
    a run starts with (the DLM, its adapter, the seed prompt's length), or one sentence why not."""
    optimizer = prepare_optimizer(settings, out)
    for note in optimizer.task.notes:
        on_note(note)
    optimizer.check()
    return optimizer.estimate()


def prepare_optimizer(settings: OptimizeSettings, out: str | Path | None = None, *, on_event=None, on_progress=None):
    """The DLM optimizer on its run directory, not started: `.task.notes`, `.check()` and
    `.estimate()` serve a dry run; `run_optimizer` runs it."""
    from dlmpo.optimizer.loop import Optimizer

    sink = (lambda what, done, total: on_progress(what, done, total, "")) if on_progress else None
    return Optimizer(settings, run_dir_for(settings, out), on_event=on_event, on_progress=sink)


async def run_optimizer_async(settings: OptimizeSettings, out: str | Path | None = None, *, optimizer: str | None = None,
                              on_event=None, on_progress: Progress | None = None, on_note: Note = _quiet,
                              report: bool = True, reuse_finished: bool = False, mlflow: str | None = None) -> OptimizeResult:
    """Run one optimizer (`settings.proposer`'s loop, or a registered peer such as gepa) to its
    result, and write the report. `reuse_finished`: a run directory whose result.json holds these
    very settings is read back instead (an interrupted comparison resumes run by run). `mlflow`: a
    tracking URI the run is also logged to (settings, per-round metrics, report, best prompt;
    `integrations.mlflow_run`)."""
    run_dir = run_dir_for(settings, out)
    if mlflow is None:
        return (await _run_and_report(settings, run_dir, optimizer, on_event, on_progress, on_note, report,
                                      reuse_finished))[0]
    from dlmpo.integrations.mlflow_run import MLflowRun

    with MLflowRun(mlflow, settings, run_dir) as tracking:
        result, files = await _run_and_report(settings, run_dir, optimizer, tracking.chained(on_event), on_progress,
                                              on_note, report, reuse_finished)
        on_note(f"logged to MLflow run {tracking.finish(result, files)} (experiment '{tracking.experiment}', {mlflow}).")
    return result


async def _run_and_report(settings: OptimizeSettings, run_dir: Path, optimizer: str | None, on_event,
                          on_progress: Progress | None, on_note: Note, report: bool,
                          reuse_finished: bool) -> tuple[OptimizeResult, dict[str, Path]]:
    """The result and the report's files (none when `report` is off)."""
    from dlmpo.optimizers import optimizer_named
    from dlmpo.scale.grid import finished_result

    name = optimizer or settings.proposer
    result = finished_result(settings, run_dir) if reuse_finished else None
    if result is None:
        entry = optimizer_named(name)
        if entry.run is None:  # our loop, with the entry's proposer
            optimizer_obj = prepare_optimizer(settings, run_dir, on_event=on_event, on_progress=on_progress)
            for note in optimizer_obj.task.notes:
                on_note(note)
            result = await optimizer_obj.run()
        else:
            result = await entry.run(settings, run_dir, on_event)
    if not report:
        return result, {}
    from dlmpo.report.render import write_report as render

    return result, render(run_dir, result)


def run_optimizer(settings: OptimizeSettings, out: str | Path | None = None, **kwargs: Any) -> OptimizeResult:
    """`run_optimizer_async` from synchronous code."""
    return asyncio.run(run_optimizer_async(settings, out, **kwargs))


def write_report(run_dir: str | Path) -> tuple[dict[str, Path], OptimizeResult]:
    """(Re)write report.md, report.html and the plots of a run directory; its paths and result."""
    from dlmpo.report.render import load_finished
    from dlmpo.report.render import write_report as render

    result = load_finished(run_dir)
    return render(run_dir, result), result


# ---------------------------------------------------------------- evaluate, infill


@dataclass
class EvalSummary:
    """One prompt scored on one split: the result, the usage, and what was written where."""

    task: str
    split: str
    prompt: str
    result: Any  # tasks.EvalResult
    usage: dict
    episodic: bool = False
    trials: int = 1
    user_usage: dict | None = None
    written: dict[str, Path] = field(default_factory=dict)

    def to_json(self) -> dict:
        r = self.result
        summary = {"task": self.task, "split": self.split, "n": r.n, "score": round(r.score, 4),
                   "metrics": {k: round(v, 4) for k, v in r.metrics.items()}, "parse_failures": r.parse_failures,
                   "target_failures": r.failures, "usage": self.usage}
        if self.episodic:
            summary["pass_hat_k"] = {str(k): round(r.metrics[f"pass^{k}"], 4) for k in range(1, self.trials + 1)}
            summary["trials"] = self.trials
            if self.user_usage is not None:
                summary["user_usage"] = self.user_usage
        return summary


@dataclass
class EvalOptions:
    """`evaluate_split`'s options and their defaults, which it reads from here: `dlmpo eval` is generated from them."""

    task: str
    target: str = "embedded"
    split: str = "val"
    user_model: str = "scripted"
    trials: int = 1
    max_steps: int = 30
    limit: int | None = None
    data_dir: Path | None = None
    out: Path | None = None
    max_tokens: int | None = None
    concurrency: int | None = None
    rpm: float | None = None
    tpm: float | None = None
    prices: Path | None = None


EVAL_HELP = {
    "task": "Built-in task (sst2, sst5, mrpc, snli, tau-airline, tau-retail) or a task config file.",
    "target": "Target model specifier.",
    "split": "train, val or test.",
    "user_model": "τ-bench user simulator: a chat-model specifier, or scripted (offline).",
    "trials": "τ-bench: episodes per task; pass^1..pass^k are reported.",
    "max_steps": "τ-bench: agent actions per episode before it is cut off (scores 0).",
    "limit": "Evaluate only the first N examples.",
    "data_dir": "Local data directory (else DLMPO_DATA_DIR, else the hub).",
    "out": "Folder for traces.jsonl and summary.json (checked before the run).",
    "max_tokens": "Answer length cap for the target [default: 16; τ-bench 512].",
    "concurrency": "Concurrent target calls.",
    "rpm": "Requests-per-minute limit, > 0 (leave it out for no limit).",
    "tpm": "Tokens-per-minute limit, > 0 (leave it out for no limit).",
    "prices": "JSON price table {model: [in, out]} in USD per 1M tokens.",
}


def evaluate_split(task: str, split: str = EvalOptions.split, target: str = EvalOptions.target, *,
                   prompt: str | None = None, user_model: str = EvalOptions.user_model, trials: int = EvalOptions.trials,
                   max_steps: int = EvalOptions.max_steps, limit: int | None = None,
                   data_dir: str | Path | None = None, out: str | Path | None = None, max_tokens: int | None = None,
                   concurrency: int | None = None, rpm: float | None = None, tpm: float | None = None,
                   prices: str | Path | None = None, use_cache: bool = True, allow_unisolated_code: bool = False,
                   on_note: Note = _quiet, on_progress: Progress = _quiet) -> EvalSummary:
    """Score `prompt` (None: the task's own) on a split; with `out`, write traces.jsonl,
    summary.json (and episodes.jsonl for τ-bench). Every mistake fails before the first call."""
    from dlmpo.catalog import get_task
    from dlmpo.evaluate import answer_cap, evaluate
    from dlmpo.files import check_out_dir
    from dlmpo.lm import open_target
    from dlmpo.lm.pricing import PriceTable
    from dlmpo.lm.ratelimit import check_limits
    from dlmpo.lm.spec import parse_target_spec
    from dlmpo.tasks import is_episodic

    parse_target_spec(target)  # a bad specifier, limit or out folder fails before any data is read
    if user_model != "scripted":
        parse_target_spec(user_model)
    check_limits(rpm=rpm, tpm=tpm, concurrency=concurrency)
    out = check_out_dir(out) if out is not None else None
    the_task = get_task(task, data_dir, allow_unisolated_code=allow_unisolated_code)
    episodic = is_episodic(the_task)
    if not episodic and (trials > 1 or user_model != "scripted"):
        raise UserError("--trials and --user-model apply to τ-bench tasks only.")
    max_tokens = answer_cap(the_task, max_tokens)
    for note in the_task.notes:
        on_note(note)
    examples = the_task.examples(split)[:limit] if limit else the_task.examples(split)
    if not examples:
        raise UserError(f"Split '{split}' of task '{the_task.name}' has no examples.")
    system_prompt = the_task.seed_prompt if prompt is None else prompt
    model = open_target(target, use_cache=use_cache, concurrency=concurrency, rpm=rpm, tpm=tpm,
                        prices=PriceTable.from_file(prices) if prices else None)
    if not model.price_known:
        on_note(f"no price known for '{model.name}': its cost is counted as $0 (pass --prices).")
    simulator = None
    if episodic:
        the_task.max_steps, the_task.trials = max_steps, trials
        if user_model != "scripted":  # the target plays the user when both are the same specifier
            simulator = model if user_model == target else open_target(
                user_model, use_cache=use_cache, concurrency=concurrency, rpm=rpm, tpm=tpm)
        the_task.bind_user_model(simulator)
    what, total = f"eval {the_task.name}/{split}", len(examples) * trials
    on_progress(what, 0, total, "")
    counts = {"done": 0, "correct": 0}

    def done(trace) -> None:
        counts["done"] += 1
        counts["correct"] += trace.score > 0
        on_progress(what, counts["done"], total, f"score {counts['correct'] / counts['done']:.3f}")

    async def run():
        try:
            return await evaluate(the_task, model, system_prompt, examples, split=split, max_tokens=max_tokens,
                                  on_done=done)
        finally:
            await model.aclose()
            if simulator is not None and simulator is not model:
                await simulator.aclose()

    result = asyncio.run(run())
    summary = EvalSummary(the_task.name, split, system_prompt, result, model.accounting.to_json(), episodic, trials,
                          simulator.accounting.to_json() if simulator is not None else None)
    if out is not None:
        _write_eval(out, summary, the_task.episodes if episodic else None)
    return summary


def _write_eval(out: Path, summary: EvalSummary, episodes) -> None:
    from dlmpo.files import atomic_write

    out.mkdir(parents=True, exist_ok=True)
    summary.result.write_traces(out / "traces.jsonl")
    summary.written["traces"] = out / "traces.jsonl"
    if episodes is not None:
        from dlmpo.tau.agent import episode_json

        with (out / "episodes.jsonl").open("w", encoding="utf-8") as f:
            for ep in episodes:
                f.write(json.dumps(episode_json(ep), ensure_ascii=False) + "\n")
    atomic_write(out / "summary.json", json.dumps({**summary.to_json(), "prompt": summary.prompt}, indent=2))
    summary.written["summary"] = out / "summary.json"


def infill_text(dlm: str, text: str, sampler, *, context: str | Path | None = None, examples: str | Path | None = None,
                candidates: int = 1, device: str | None = None, adapter: str | Path | None = None):
    """Fill the masks of `text` with a DLM, conditioned on JSONL traces (`context`) and/or input ->
    output `examples`; `sampler` a `SamplerConfig` or its fields; (InfillResult, seconds including loading)."""
    import time

    from dlmpo.dlm import SamplerConfig, infill, load_dlm
    from dlmpo.dlm.canvas import EXAMPLES_INSTRUCTION
    from dlmpo.jsonl import read_objects

    sampler = SamplerConfig(**sampler) if isinstance(sampler, dict) else sampler
    sampler.validate()
    items = [obj for _, obj in read_objects(context, "Context")] if context else []
    instruction = None
    if examples:
        items += [{"query": r.get("input", r.get("query", r.get("user"))),
                   "output": r.get("output", r.get("assistant"))} for _, r in read_objects(examples, "Examples")]
        instruction = EXAMPLES_INSTRUCTION
    start = time.perf_counter()
    model = load_dlm(dlm, device, adapter=adapter)
    result = infill(model, text, context=items, instruction=instruction, n_candidates=candidates, sampler=sampler)
    return result, time.perf_counter() - start


def tau_replay(trajectories: str | Path, domain: str, data_dir: str | Path | None = None):
    """Recorded τ-bench episodes re-run on a fresh database, every reward recomputed."""
    from dlmpo.catalog import resolve_data_dir
    from dlmpo.tau.domain import load_domain
    from dlmpo.tau.replay import replay

    return replay(trajectories, load_domain(domain, resolve_data_dir(data_dir)))


def fetch_data(name: str, dest: str | Path | None = None, ref: str | None = None,
               on_progress: Progress = _quiet) -> tuple[Path, str]:
    """Download τ-bench and convert it to dlmpo's layout; (its path, the commit)."""
    from dlmpo.tau.fetch import PINNED_REF, fetch_tau

    if name != "tau":
        raise UserError(f"Unknown dataset '{name}': only tau can be fetched (the GLUE tasks load from the hub).")
    ref = ref or PINNED_REF
    return fetch_tau(dest, ref, on_file=lambda f: on_progress(f"fetch {name}", None, None, f)), ref


# ---------------------------------------------------------------- train, DDPT


def parse_duration(text: str) -> float:
    """'90s', '110m', '2h' or plain seconds, in seconds; one sentence otherwise."""
    import re

    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", text)
    if not match or float(match.group(1)) <= 0:
        raise UserError(f"Cannot read the duration '{text}': write e.g. 90s, 110m or 2h.")
    return float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[match.group(2)]


def train_config(fields: dict, *, full: bool = False, time_limit: str | None = None):
    """`train.TrainConfig` from the command's fields: LoRA unless `full` (alpha twice the rank),
    `time_limit` as written (e.g. 110m)."""
    from dlmpo.train.trainer import TrainConfig

    fields = {k: str(v) if isinstance(v, Path) else v for k, v in fields.items()}
    return TrainConfig(**fields, lora=not full, lora_alpha=2 * fields["lora_rank"],
                       time_limit=parse_duration(time_limit) if time_limit else None)


def train(cfg, *, on_log: Callable[[dict], None] | None = None, on_progress: Progress = _quiet) -> dict:
    """Fine-tune a DLM (`train.TrainConfig`); resumable from its output directory."""
    from dlmpo.train import Trainer

    trainer = Trainer(cfg, on_log=on_log)
    what = f"train {cfg.masking}"
    on_progress(what, 0, cfg.steps, "")
    return trainer.run(progress=lambda step, total, last: on_progress(
        what, step, total, f"loss {last['loss']:.3f} acc {last['masked_acc']:.3f}"))


def ddpt_train(cfg, out: str | Path, *, device: str | None = None, on_event=None, on_progress: Progress = _quiet,
               on_note: Note = _quiet, on_start: Callable[[], None] | None = None, allow_unisolated_code: bool = False):
    """A DDPT run (`ddpt.DDPTConfig`) in `out`, resumable; returns its `DDPTResult`."""
    from dlmpo.ddpt.run import DDPTRun

    run = DDPTRun(cfg, out, device=device, on_event=on_event, allow_unisolated=allow_unisolated_code,
                  on_progress=lambda stage, done, total, status: on_progress(stage, done, total, status))
    for note in run.notes:
        on_note(note)
    if on_start:
        on_start()
    return run.run()


def ddpt_sample(run_dir: str | Path, *, n: int = 1, seed: int = 0, problem: str | None = None,
                sampler: str | None = None, steps: int | None = None, words: int = 5, out: str | Path | None = None,
                device: str | None = None, on_note: Note = _quiet) -> list[dict]:
    """Prompt vectors z sampled from a trained DDPT run, read through their nearest vocabulary words."""
    from dlmpo.code.problems import load_code_problems
    from dlmpo.ddpt.config import SAMPLERS
    from dlmpo.ddpt.interpret import interpret
    from dlmpo.ddpt.trained import TrainedSoftPrompt
    from dlmpo.files import check_out_file

    if sampler is not None and sampler not in SAMPLERS:
        raise UserError(f"Unknown sampler '{sampler}': use ddim or ddpm.")
    if out is not None:
        check_out_file(out)
    trained = TrainedSoftPrompt(run_dir, device)
    chosen = None
    if problem is not None:
        splits = load_code_problems(trained.cfg.task, trained.cfg.split_seed)
        found = [p for p in splits.train + splits.val + splits.test if p.task_id == problem]
        if not found:
            raise UserError(f"Task '{trained.cfg.task}' has no problem '{problem}'.")
        chosen = found[0]
    if trained.prior is None:
        on_note(f"{run_dir} has no diffusion prior (a prompt-tuning run): showing its one tuned z.")
    rows = []
    for i in range(n if trained.prior is not None else 1):
        z = trained.sample(seed + i, chosen, method=sampler, steps=steps)
        rows.append({"seed": seed + i, "problem": problem, "norm": round(z.norm().item(), 4),
                     "z": [round(v, 6) for v in z.tolist()], "words": interpret(trained.space, z, words)})
    if out is not None:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps({"run_dir": str(run_dir), "samples": rows}, indent=2, ensure_ascii=False))
    return rows


def score_soft_prompt(spec: str, *, task: str, split: str, target: str, limit: int | None = None,
                      max_tokens: int | None = None, out: str | Path | None = None, allow_unisolated_code: bool = False,
                      on_progress: Progress = _quiet) -> dict:
    """`dlmpo eval --soft-prompt RUN_DIR[#variant]`: NLL and pass@k of a tuned soft prompt on a code task."""
    from dlmpo.code.problems import is_code_task, load_code_problems
    from dlmpo.ddpt.trained import TrainedSoftPrompt, parse_soft_prompt
    from dlmpo.ddpt.whitebox import require_white_box
    from dlmpo.files import check_out_dir

    require_white_box(target)
    out = check_out_dir(out) if out is not None else None
    if not is_code_task(task):
        raise UserError("--soft-prompt needs a code task: humaneval, mbpp, codealpaca, conala or a .jsonl of problems.")
    run_dir, variant = parse_soft_prompt(spec)
    splits = load_code_problems(task)  # a bad task fails before the model loads
    trained = TrainedSoftPrompt(run_dir, allow_unisolated=allow_unisolated_code)
    if trained.cfg.target != target:
        raise UserError(f"The soft prompts in {run_dir} were trained on {trained.cfg.target}: pass --target {trained.cfg.target}.")
    if task == trained.cfg.task and trained.cfg.split_seed != 0:
        splits = load_code_problems(task, trained.cfg.split_seed)  # the run's own held-out problems
    variant = trained.resolve(variant)
    problems = splits.get(split)[:limit] if limit else splits.get(split)
    if not problems:
        raise UserError(f"Split '{split}' of task '{task}' has no problems.")
    what, total, done = f"eval {task}/{split} [{variant}]", trained.units(problems), [0]
    on_progress(what, 0, total, "")

    def advance(k: int) -> None:
        done[0] += k
        on_progress(what, done[0], total, "")

    score = trained.score(variant, problems, seed=trained.cfg.seed, max_new_tokens=max_tokens, on_progress=advance)
    metrics = score.summary()
    summary = {"task": task, "split": split, "n": len(problems), "score": metrics.get("pass@1"), "metrics": metrics,
               "soft_prompt": {"run_dir": str(run_dir), "variant": variant}}
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        with (out / "generations.jsonl").open("w", encoding="utf-8") as f:
            for row in score.rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
        (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


# ---------------------------------------------------------------- compare, sweep


async def run_grid_entry(run) -> OptimizeResult:
    """One run of a comparison or sweep (a `scale.grid.GridRun`), wherever its executor runs it: a
    Ray worker imports this function by name."""
    return await run_optimizer_async(run.settings, run.run_dir, optimizer=run.optimizer, report=False,
                                     reuse_finished=True)


async def _run_grid(runs: list, ray: str | None, on_progress: Progress | None,
                    on_done: Callable[[int, OptimizeResult], None]) -> list[OptimizeResult]:
    """Every run's result, in order: finished ones read back, the others run by the executor that
    `ray` names (None: one after another in this process)."""
    from dlmpo.scale.executors import executor_for
    from dlmpo.scale.grid import finished_result
    from dlmpo.scale.progress import GridProgress

    executor = executor_for(ray)  # a missing ray is one sentence before any run
    progress = GridProgress(runs, on_progress=on_progress, on_done=on_done)
    todo = []
    for index, run in enumerate(runs):
        done = finished_result(run.settings, run.run_dir)
        if done is None:
            todo.append((index, run))
        else:
            progress.finished(index, done)
    await executor.run_all(todo, run_grid_entry, progress)
    progress.raise_failures()
    return [progress.results[i] for i in range(len(runs))]


async def compare(base: OptimizeSettings, optimizers: list[str], seeds: int, out: Path,
                  on_run: Callable[[str, int, OptimizeResult], None] | None = None, *, tasks: list[str] | None = None,
                  ray: str | None = None, on_progress: Progress | None = None) -> dict:
    """Several optimizers from the same seed prompt under one budget, `seeds` runs each, on one task
    (`base.task`) or on each of `tasks` (the paper's table: tasks as columns, optimizers as rows).
    `ray`: run them as Ray tasks on that cluster (local, auto or an address)."""
    from dlmpo.compare import summarize_compare, summarize_grid, write_compare_outputs, write_grid_outputs
    from dlmpo.optimizers import optimizer_named
    from dlmpo.scale.grid import GridRun

    entries = [optimizer_named(o) for o in optimizers]
    if base.max_calls is None and base.max_cost is None and base.max_tokens is None:
        raise UserError("A comparison needs one budget for every optimizer: pass --max-calls (or --max-cost).")
    for entry in entries:
        if entry.require is not None:
            entry.require()
    tasks = list(dict.fromkeys(tasks)) if tasks else None
    if tasks is not None and len(tasks) == 1:
        base, tasks = base.model_copy(update={"task": tasks[0]}), None
    grid = tasks is not None
    tasks = tasks or [base.task]
    runs, keys = [], []
    for task in tasks:
        for entry in entries:
            for seed in range(seeds):
                settings = base.model_copy(update={"task": task, "proposer": entry.proposer, "seed": seed})
                folder = out / task if grid else out
                name = f"{task}/{entry.name}-seed{seed}" if grid else f"{entry.name}-seed{seed}"
                runs.append(GridRun(settings, folder / f"{entry.name}-seed{seed}", entry.name, name))
                keys.append((task, entry.name, seed))
    results = await _run_grid(runs, ray, on_progress,
                              lambda i, r: on_run(keys[i][1], keys[i][2], r) if on_run else None)
    by_task: dict[str, dict[str, list[OptimizeResult]]] = {}
    for (task, name, _), result in zip(keys, results):
        by_task.setdefault(task, {}).setdefault(name, []).append(result)
    if not grid:
        summary = summarize_compare(base, by_task[base.task], seeds)
        write_compare_outputs(summary, out)
        return summary
    summary = summarize_grid(base, by_task, seeds, list(zip(keys, results)))
    write_grid_outputs(summary, out)
    return summary


async def sweep(base: OptimizeSettings, param: str, values: list[str] | str, out: Path,
                on_run: Callable[[str, OptimizeResult], None] | None = None, *, ray: str | None = None,
                on_progress: Progress | None = None) -> dict:
    """Vary one optimizer setting (`values` a list or comma-separated); held-out test score against
    it (the paper's Figure 3). `ray`: run the values as Ray tasks on that cluster."""
    from pydantic import ValidationError

    from dlmpo.compare import write_sweep_outputs
    from dlmpo.configfile import describe_validation_error
    from dlmpo.scale.grid import GridRun

    values = [v.strip() for v in values.split(",") if v.strip()] if isinstance(values, str) else values
    if not values:
        raise UserError("--values needs at least one value.")
    if param not in OptimizeSettings.model_fields or param in ("task", "target", "data_dir"):
        raise UserError(f"Cannot sweep '{param}': use an optimizer setting such as steps, mask_tokens, candidates.")
    runs = []
    for value in values:
        try:
            settings = OptimizeSettings.model_validate(base.model_dump() | {param: value})
        except ValidationError as exc:
            raise UserError(describe_validation_error(exc, f"--values {value}")) from None
        runs.append(GridRun(settings, out / f"{param}-{value}", settings.proposer, f"{param}-{value}"))
    results = await _run_grid(runs, ray, on_progress, lambda i, r: on_run(values[i], r) if on_run else None)
    rows = [{"value": value, "test": run.test["best"], "val": run.val["best"], "calls": run.calls,
             "seconds": round(run.seconds, 1)} for value, run in zip(values, results)]
    summary = {"param": param, "results": rows, "baseline_test": results[-1].test["seed"], "task": base.task}
    write_sweep_outputs(summary, out)
    return summary
