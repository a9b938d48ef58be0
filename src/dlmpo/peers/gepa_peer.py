"""GEPA (the `gepa` package) as a peer: our target is its task model, our optimizer model its
reflection model, our pools its train and val sets. Seed and best prompts are scored on the same
held-out test set as every dlmpo run, and the same call budget is never exceeded: a stop rule
ends GEPA before an iteration could cross it. Install with `pip install gepa`."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from dlmpo.errors import UserError
from dlmpo.evaluate import evaluate
from dlmpo.optimizer.budget import Budget
from dlmpo.optimizer.loop import Optimizer, StopRun
from dlmpo.optimizer.result import OptimizeResult
from dlmpo.optimizer.settings import OptimizeSettings

COMPONENT = "system_prompt"


def _require_gepa():
    try:
        import gepa  # noqa: F401
    except ImportError:
        raise UserError("The gepa optimizer needs the gepa package: pip install gepa (or dlmpo[peers]).") from None


async def run_gepa(settings: OptimizeSettings, out: str | Path, on_event=None) -> OptimizeResult:
    _require_gepa()
    import gepa
    from gepa.core.adapter import EvaluationBatch

    if settings.feedback not in ("metric", "none"):
        raise UserError("GEPA reflects on the task's own feedback: use feedback metric with the gepa optimizer.")
    opt = Optimizer(settings, out, on_event=on_event)
    s = opt.s
    start = time.perf_counter()
    opt.run_dir.bind_config(s.identity(), s.model_dump())
    target, _ = opt._open_models(writer=True)
    writer = opt.writer
    assert writer is not None
    budget = Budget([m for m in (target, writer, opt.user_model) if m], max_calls=s.max_calls, max_cost=s.max_cost,
                    max_tokens=s.max_tokens)
    opt._emit({"type": "run_start", "resume": False, "estimate": opt.estimate(), "completed_rounds": [],
               "optimizer": "gepa"})
    try:
        seed_val = await opt._eval(target, budget, opt.seed_prompt, opt.val_pool, "val", "seed")
        seed_test = await opt._eval(target, budget, opt.seed_prompt, opt.test_set, "test", "seed")
    except StopRun as stop:
        await target.aclose()
        raise UserError(f"The budget cannot cover scoring the seed prompt, {stop}.") from None
    loop = asyncio.get_running_loop()
    task = opt.task
    reserve_calls = len(opt.test_set)  # the best prompt's test evaluation

    class Adapter:
        propose_new_texts = None  # GEPA's own reflective proposal, with `reflect` as its language model

        def evaluate(self, batch, candidate, capture_traces=False):
            future = asyncio.run_coroutine_threadsafe(
                evaluate(task, target, candidate[COMPONENT], batch, max_tokens=opt.answer_tokens), loop)
            result = future.result()
            return EvaluationBatch(outputs=[t.output for t in result.traces], scores=[t.score for t in result.traces],
                                   trajectories=result.traces if capture_traces else None)

        def make_reflective_dataset(self, candidate, eval_batch, components_to_update):
            rows = [{"Inputs": t.user, "Generated Outputs": t.output, "Feedback": f"Score {t.score:g}. {t.feedback}"}
                    for t in eval_batch.trajectories or []]
            return {c: rows for c in components_to_update}

    reflections = 0

    def reflect(prompt) -> str:
        from dlmpo.lm import ChatRequest

        nonlocal reflections
        reflections += 1  # a distinct sample per call: a cached answer would make GEPA repeat itself
        messages = prompt if isinstance(prompt, list) else [{"role": "user", "content": prompt}]
        request = ChatRequest(messages=messages, max_tokens=512, temperature=s.temperature, sample_index=reflections)
        return asyncio.run_coroutine_threadsafe(writer.chat(request), loop).result().text

    minibatch = min(3, len(opt.train_pool))

    def over_budget(_state) -> bool:  # an iteration: 2 minibatch evaluations, a reflection, maybe a full val
        if s.max_calls is None:
            return False
        worst = 2 * minibatch + 1 + len(opt.val_pool)
        return budget.spend().calls + worst + reserve_calls > s.max_calls

    # GEPA counts every evaluation, cached or not; without a call budget it gets `rounds` iterations' worth
    spent = budget.spend().calls
    metric_calls = (s.max_calls - spent - reserve_calls) if s.max_calls else s.rounds * (2 * minibatch + len(opt.val_pool))
    if metric_calls <= 2 * minibatch:
        raise UserError(f"The budget leaves GEPA {metric_calls} evaluations after scoring the seed prompt: raise it.")

    def optimize():
        return gepa.optimize(seed_candidate={COMPONENT: opt.seed_prompt}, trainset=list(opt.train_pool),
                             valset=list(opt.val_pool), adapter=Adapter(), reflection_lm=reflect,
                             reflection_minibatch_size=minibatch, max_metric_calls=metric_calls,
                             stop_callbacks=[over_budget], seed=s.seed, run_dir=str(opt.run_dir.path / "gepa"),
                             display_progress_bar=False)

    result = await asyncio.to_thread(optimize)
    best_prompt = result.best_candidate[COMPONENT]
    best_val = result.val_aggregate_scores[result.best_idx]
    opt._emit({"type": "stop", "reason": "gepa", "candidates": result.num_candidates})
    best_test = await opt._eval(target, None, best_prompt, opt.test_set, "test", "best")
    opt.run_dir.write_best(best_prompt)
    spend = budget.spend()
    out_result = OptimizeResult(
        run_dir=str(opt.run_dir.path), task=task.name, target=s.target, dlm=f"gepa:{s.optimizer_model}",
        seed_prompt=opt.seed_prompt, best_prompt=best_prompt,
        val={"seed": round(seed_val.score, 4), "best": round(best_val, 4)},
        test={"seed": round(seed_test.score, 4), "best": round(best_test.score, 4)}, rounds=[],
        stop_reason="gepa", calls=spend.calls, usage={**spend.to_json(), "this_process": target.accounting.to_json()},
        seconds=time.perf_counter() - start, settings=s.model_dump())
    out_result.save(opt.run_dir.result_file)
    opt._emit({"type": "run_end", **out_result.summary()})
    for model in {id(m): m for m in (target, writer, opt.user_model) if m}.values():
        await model.aclose()
    return out_result
