"""DSPy's MIPROv2 (the `dspy` package) as a peer, optimizing the same thing dlmpo does: the
instructions of one predictor, sent to the target as its system prompt (zero-shot: no few-shot
demos in the prompt). MIPROv2 proposes instructions with our optimizer model and searches them
with Bayesian optimization over val minibatches, calling our target.

Two seams connect it to dlmpo, both DSPy's own extension points:
- `ChatModelEngine`, a dspy engine, sends DSPy's requests to a dlmpo chat model (run cache,
  accounting, budget) on the run's event loop.
- `TargetAdapter`, a dspy adapter, shows the target exactly what `dlmpo eval` shows it — the
  instructions as the system message, the task's user message, and the raw answer graded by the
  task — so every candidate is scored as in a dlmpo run. DSPy's own signatures (the proposer's)
  keep DSPy's chat format; a small optimizer model that drops the field markers still counts,
  its whole answer read as the one output field.

The number of search trials is planned from the call budget before the search starts, and every
call is checked against the budget as it happens: a target call that would cross it is answered
empty (scored 0) and counted in the `stop` event. Install with `pip install 'dspy[optuna]'`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
from pathlib import Path

from dlmpo.errors import UserError
from dlmpo.evaluate import build_request
from dlmpo.integrations.dspy_engine import CallGuard, ChatModelEngine, lenient_chat_adapter_class  # noqa: F401
from dlmpo.optimizer.events import Plan, Stop
from dlmpo.optimizer.result import OptimizeResult
from dlmpo.optimizer.settings import OptimizeSettings
from dlmpo.peers.common import PeerRun
from dlmpo.tasks import is_episodic

INPUT_FIELD, OUTPUT_FIELD = "user_message", "answer"
VIEW_DATA_BATCH = 10  # MIPROv2's default: train examples per dataset-summary call
FULL_EVAL_STEPS = 5  # MIPROv2's default: a full val evaluation every this many minibatch trials
WRITER_TOKENS = 512


def _require_dspy():
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # else litellm fetches a price map on import
    try:
        import dspy  # noqa: F401
        import optuna  # noqa: F401
    except ImportError:
        raise UserError("The mipro optimizer needs dspy and optuna: pip install 'dspy[optuna]' (or dlmpo[peers]).") from None


def _target_adapter(task, by_message: dict, answer_tokens: int):
    def is_target_call(signature) -> bool:
        return list(signature.input_fields) == [INPUT_FIELD] and list(signature.output_fields) == [OUTPUT_FIELD]

    class TargetAdapter(lenient_chat_adapter_class()):
        def format(self, signature, demos, inputs):
            if not is_target_call(signature):
                return super().format(signature, demos, inputs)
            return build_request(task, signature.instructions, by_message[inputs[INPUT_FIELD]], answer_tokens).messages

        def parse(self, signature, completion):
            if is_target_call(signature):
                return {OUTPUT_FIELD: completion}
            return super().parse(signature, completion)

    return TargetAdapter()


def plan_trials(calls_left: int | None, *, candidates: int, train: int, val: int, minibatch: int) -> int:
    """Trials whose worst-case cost fits the calls left; MIPROv2's own default without a call budget.

    Worst case: the proposer's calls (a dataset summary, then per candidate a program description,
    a module description and the instruction), the bootstrap run of the seed prompt over train
    (cached afterwards), a minibatch per trial and a full val evaluation every FULL_EVAL_STEPS
    trials plus one at the end. The first full evaluation, of the seed prompt, repeats calls
    already paid."""
    default = int(max(2 * math.log2(candidates), 1.5 * candidates))
    if calls_left is None:
        return default
    fixed = math.ceil(train / VIEW_DATA_BATCH) + 1 + 3 * candidates + train
    use_minibatch = val > minibatch
    trials = 0
    while True:
        n = trials + 1
        cost = n * minibatch + (n // FULL_EVAL_STEPS + 1) * val if use_minibatch else n * val
        if fixed + cost > calls_left:
            return trials
        trials = n


async def run_mipro(settings: OptimizeSettings, out: str | Path, on_event=None) -> OptimizeResult:
    _require_dspy()
    async with PeerRun.open("mipro", settings, out, on_event) as peer:
        return await _search(peer)


async def _search(peer: PeerRun) -> OptimizeResult:
    import dspy
    from dspy.teleprompt import MIPROv2

    session = peer.session
    settings, pools, task = session.settings, session.pools, session.task
    if is_episodic(task) or not session.seed_prompt.strip():
        raise UserError("The mipro optimizer runs single-answer tasks from a non-empty seed prompt.")
    seed_val = await peer.score_seed()

    candidates = settings.candidates + 1  # MIPROv2 keeps the seed instruction as candidate 0
    minibatch = min(settings.screen_batch, len(pools.val))
    trials = plan_trials(peer.calls_left(), candidates=candidates, train=len(pools.train),
                         val=len(pools.val), minibatch=minibatch)
    if trials < 1:
        raise UserError(f"The budget leaves MIPROv2 {peer.calls_left()} calls after scoring the seed prompt, "
                        "too few for its proposals and one trial: raise it.")

    loop = asyncio.get_running_loop()
    guard = CallGuard()
    target_lm = dspy.LM("dlmpo/target", engine=ChatModelEngine(
        guard, peer.models.target, loop, temperature=0.0, max_tokens=session.answer_tokens, distinct_samples=False),
        cache=False, num_retries=0)
    writer_lm = dspy.LM("dlmpo/optimizer", engine=ChatModelEngine(
        guard, peer.models.writer, loop, temperature=settings.temperature, max_tokens=WRITER_TOKENS, distinct_samples=True),
        cache=False, num_retries=0)
    by_message = {task.user_message(ex): ex for ex in [*pools.train, *pools.val]}

    def as_dspy(examples):
        return [dspy.Example({INPUT_FIELD: task.user_message(ex), OUTPUT_FIELD: ex.label}).with_inputs(INPUT_FIELD)
                for ex in examples]

    def metric(example, prediction, trace=None) -> float:
        return task.grade(by_message[example[INPUT_FIELD]], prediction[OUTPUT_FIELD] or "").score

    signature = dspy.Signature({INPUT_FIELD: dspy.InputField(), OUTPUT_FIELD: dspy.OutputField()}, session.seed_prompt)
    mipro = MIPROv2(metric=metric, prompt_model=writer_lm, task_model=target_lm, auto=None, num_candidates=candidates,
                    max_bootstrapped_demos=0, max_labeled_demos=0, num_threads=settings.concurrency or 8, seed=settings.seed,
                    init_temperature=settings.temperature, verbose=False, track_stats=True)
    peer.emit(Plan(optimizer="mipro", details={"trials": trials, "candidates": candidates,
                                               "minibatch": minibatch if len(pools.val) > minibatch else None}))

    def optimize():  # MIPROv2's own progress bars and prints go to mipro.log in the run directory
        logging.getLogger("dspy").setLevel(logging.ERROR)
        with (session.log.path / "mipro.log").open("w") as log, contextlib.redirect_stdout(log), \
                contextlib.redirect_stderr(log), dspy.context(adapter=_target_adapter(task, by_message, session.answer_tokens)):
            return mipro.compile(dspy.Predict(signature), trainset=as_dspy(pools.train),
                                 valset=as_dspy(pools.val), num_trials=trials,
                                 minibatch=len(pools.val) > minibatch, minibatch_size=minibatch,
                                 minibatch_full_eval_steps=FULL_EVAL_STEPS, view_data_batch_size=VIEW_DATA_BATCH)

    best = await peer.run_in_thread(optimize, "mipro.log")
    best_prompt = best.predictors()[0].signature.instructions
    searched = [{"prompt": c["program"].predictors()[0].signature.instructions, "val": round(c["score"] / 100, 4)}
                for c in getattr(best, "candidate_programs", [])]  # DSPy scores in percent
    peer.emit(Stop(reason="mipro", details={"trials": trials, "refused_calls": guard.refused,
                                            "failed_calls": guard.failed, "full_val_evaluations": searched}))
    best_val = await peer.scorer.evaluate(best_prompt, pools.val, "val", "best", charge=False)
    return await peer.finish(best_prompt, best_val.score, seed_val)
