"""GEPA (the `gepa` package) as a peer: our target is its task model, our optimizer model its
reflection model, our pools its train and val sets. Seed and best prompts are scored on the same
held-out test set as every dlmpo run, and the same call budget is never exceeded: a stop rule
ends GEPA before an iteration could cross it. Install with `pip install gepa`.

`gepa+dlm` (run_gepa_dlm) is the same search with the run's DLM writing the edits instead of the
reflection model: `dlmpo.integrations.gepa.dlm_proposer` as GEPA's custom candidate proposer, built
from the run's DLM settings (dlm, adapter, strategy, mask_tokens, sampler, readability)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from dlmpo.errors import UserError
from dlmpo.evaluate import evaluate
from dlmpo.optimizer.events import Stop
from dlmpo.optimizer.result import OptimizeResult
from dlmpo.optimizer.settings import OptimizeSettings
from dlmpo.peers.common import PeerRun

COMPONENT = "system_prompt"


class LogFile:
    """GEPA's logger protocol, writing to a file: its per-iteration log would otherwise fill stdout."""

    def __init__(self, path: Path):
        self.path = path

    def log(self, message: str) -> None:
        with self.path.open("a", encoding="utf-8") as f:
            f.write(f"{message}\n")


def _require_gepa():
    try:
        import gepa  # noqa: F401
    except ImportError:
        raise UserError("The gepa optimizer needs the gepa package: pip install gepa (or dlmpo[peers]).") from None


async def run_gepa_dlm(settings: OptimizeSettings, out: str | Path, on_event=None) -> OptimizeResult:
    """GEPA's search with the run's DLM as its proposer."""
    return await run_gepa(settings, out, on_event, dlm=True)


async def run_gepa(settings: OptimizeSettings, out: str | Path, on_event=None, *, dlm: bool = False) -> OptimizeResult:
    _require_gepa()
    async with PeerRun.open("gepa+dlm" if dlm else "gepa", settings, out, on_event, writer=not dlm) as peer:
        return await _search(peer, dlm)


async def _search(peer: PeerRun, dlm: bool) -> OptimizeResult:
    import gepa
    from gepa.core.adapter import EvaluationBatch

    session = peer.session
    settings, pools, target, writer = session.settings, session.pools, peer.models.target, peer.models.writer
    seed_val = await peer.score_seed()
    loop = asyncio.get_running_loop()
    task = session.task

    class Adapter:
        propose_new_texts = None  # GEPA's own reflective proposal, with `reflect` as its language model

        def evaluate(self, batch, candidate, capture_traces=False):
            future = asyncio.run_coroutine_threadsafe(
                evaluate(task, target, candidate[COMPONENT], batch, max_tokens=session.answer_tokens), loop)
            result = future.result()
            return EvaluationBatch(outputs=[t.output for t in result.traces], scores=[t.score for t in result.traces],
                                   trajectories=result.traces if capture_traces else None)

        def make_reflective_dataset(self, candidate, eval_batch, components_to_update):
            rows = [{"Inputs": t.user, "Generated Outputs": t.output, "Score": t.score, "Feedback": t.feedback}
                    for t in eval_batch.trajectories or []]
            return {c: rows for c in components_to_update}

    reflections = 0

    def reflect(prompt) -> str:
        from dlmpo.lm import ChatRequest

        nonlocal reflections
        reflections += 1  # a distinct sample per call: a cached answer would make GEPA repeat itself
        messages = prompt if isinstance(prompt, list) else [{"role": "user", "content": prompt}]
        request = ChatRequest(messages=messages, max_tokens=512, temperature=settings.temperature, sample_index=reflections)
        return asyncio.run_coroutine_threadsafe(writer.chat(request), loop).result().text

    minibatch = min(3, len(pools.train))

    def over_budget(_state) -> bool:  # an iteration: 2 minibatch evaluations, a reflection, maybe a full val
        left = peer.calls_left()
        return left is not None and 2 * minibatch + 1 + len(pools.val) > left

    # GEPA counts every evaluation, cached or not; without a call budget it gets `rounds` iterations' worth
    left = peer.calls_left()
    metric_calls = left if left is not None else settings.rounds * (2 * minibatch + len(pools.val))
    if metric_calls <= 2 * minibatch:
        raise UserError(f"The budget leaves GEPA {metric_calls} evaluations after scoring the seed prompt: raise it.")

    proposer = None
    if dlm:  # the DLM writes GEPA's edits; the reflection model is not called
        from dlmpo.integrations.common import DLMWriter
        from dlmpo.integrations.gepa import dlm_proposer

        writer_of_edits = DLMWriter(labels=task.labels or (), **settings.model_dump())  # the run's own DLM settings
        proposer = dlm_proposer(context_traces=settings.context_traces, writer=writer_of_edits)

    def optimize():
        return gepa.optimize(seed_candidate={COMPONENT: session.seed_prompt}, trainset=list(pools.train),
                             valset=list(pools.val), adapter=Adapter(),
                             reflection_lm=None if dlm else reflect, custom_candidate_proposer=proposer,
                             reflection_minibatch_size=minibatch, max_metric_calls=metric_calls,
                             stop_callbacks=[over_budget], seed=settings.seed, run_dir=str(session.log.path / "gepa"),
                             display_progress_bar=False, logger=LogFile(session.log.path / "gepa.log"))

    result = await peer.run_in_thread(optimize, "gepa.log")
    details = {"candidates": result.num_candidates}
    if proposer is not None:
        details.update(dlm_edits=len(proposer.log), dlm_unchanged=sum(not r["changed"] for r in proposer.log),
                       readability_rejected=len(proposer.writer.rejected))
    peer.emit(Stop(reason=peer.name, details=details))
    return await peer.finish(result.best_candidate[COMPONENT], result.val_aggregate_scores[result.best_idx],
                             seed_val)
