"""The optimization loop of the paper, as a resumable, budgeted run.

Round r (rounds.py): run the target with the incumbent on a train minibatch (traces) -> attach
feedback -> choose traces (failures first) -> propose K prompts by masking + DLM infilling ->
checks -> screen candidates and incumbent on the same val-split examples outside the val pool
(train examples when there are too few) -> the best candidate, if it wins at least `min_gain` more
paired examples than it loses, is scored on the val pool and becomes the incumbent only if its
paired advantage there passes a sign test (`optimizer.selection`). A prompt challenges at most once
per run: a candidate that repeats an earlier challenger is rejected before screening (the target
answers greedily, so a second sign test would repeat the first). Seed and best are scored on test
at the end, part by part until the gain's interval is as narrow as asked (held_out.py).

Here: the run around the rounds. Bind the run directory and read what an earlier process logged,
open the models, build the proposer and feedback, score the seed, play or replay each round until a
stop rule, then score the best prompt on test and write the result."""

from __future__ import annotations

import time
from pathlib import Path

from dlmpo.errors import BudgetExceeded, UserError
from dlmpo.lm import ChatModel, Usage
from dlmpo.optimizer.checks import CandidateChecks
from dlmpo.optimizer.events import RoundEnd, RunStart, Stop
from dlmpo.optimizer.feedback import FeedbackSource, HumanFeedback
from dlmpo.optimizer.proposers import Proposer
from dlmpo.optimizer.registry import FEEDBACK, PROPOSERS
from dlmpo.optimizer.result import OptimizeResult
from dlmpo.optimizer.rounds import LoopState, Rounds
from dlmpo.optimizer.runlog import EventSink
from dlmpo.optimizer.scorer import ProgressSink, StopRun
from dlmpo.optimizer.selection import look_level, power_note
from dlmpo.optimizer.session import RunSession
from dlmpo.optimizer.settings import OptimizeSettings
from dlmpo.tasks import Task


class Optimizer:
    def __init__(self, settings: OptimizeSettings, out: str | Path, *, on_event: EventSink | None = None,
                 on_progress: ProgressSink | None = None, task: Task | None = None, proposer: Proposer | None = None,
                 feedback: FeedbackSource | None = None):
        self.settings = settings
        self.session = RunSession(settings, out, on_event=on_event, on_progress=on_progress, task=task)
        self.task = self.session.task
        self._proposer, self._feedback = proposer, feedback  # given by the caller instead of the registry's
        self.checks = CandidateChecks(settings, self.task, self.session.seed_prompt)

    @property
    def writes_with_chat_model(self) -> bool:
        return PROPOSERS[self.settings.proposer].writer

    def estimate(self) -> dict:
        """Calls and cost before starting: every batch at full size, no cache hits."""
        return self.session.estimate()

    def check(self) -> None:
        """What a dry run verifies without a call: the DLM and its adapter load, the seed prompt fits
        the DLM, human notes read, the readability gate's reader loads. Each failure is a UserError."""
        if not self.writes_with_chat_model:  # a chat-model writer opens with the run's models
            self._limit_prompt_tokens(self._make_proposer(None))
        if self.settings.feedback == "human":
            HumanFeedback(self.settings.human_notes)
        if self.checks.gate is not None:
            self.checks.gate.load()

    def _make_feedback(self, judge: ChatModel | None) -> FeedbackSource:
        if self._feedback is not None:
            return self._feedback
        return FEEDBACK[self.settings.feedback].build(self.settings, judge, self.task)

    def _make_proposer(self, writer: ChatModel | None) -> Proposer:
        if self._proposer is not None:
            return self._proposer
        return PROPOSERS[self.settings.proposer].build(self.settings, writer)

    def _limit_prompt_tokens(self, proposer: Proposer) -> None:
        limit = proposer.prompt_token_limit()
        if limit is None:
            return
        max_tokens, count = limit
        used = count(self.session.seed_prompt)
        if used > max_tokens:
            raise UserError(f"The seed prompt takes {used} of the DLM's tokens, but with room for "
                            f"{self.settings.mask_tokens} masks it can rewrite at most {max_tokens}: shorten the "
                            "prompt or lower --mask-tokens.")
        self.checks.limit_tokens(max_tokens, count)

    # ---------------------------------------------------------------- the run

    async def run(self) -> OptimizeResult:
        settings, session = self.settings, self.session
        resuming = session.log.bind(settings)
        resume = session.log.read_resume()
        to_play = [r for r in range(1, settings.rounds + 1) if r not in resume.rounds]
        async with session.open_models(writer=self.writes_with_chat_model) as models:
            # the proposer before the seed is scored: a prompt it cannot rewrite is an error before any call
            proposer = None
            loading = time.perf_counter()
            if to_play:
                model = settings.optimizer_model if self.writes_with_chat_model else settings.dlm
                session.on_progress(f"loading the {settings.proposer} proposer ({model})", 0, None)
                proposer = self._make_proposer(models.writer)
                self._limit_prompt_tokens(proposer)
            feedback = self._make_feedback(models.judge)  # a notes file that cannot be read is an error before any call
            if self.checks.gate is not None and to_play:
                self.checks.gate.load()  # its reader missing is an error before any call
            load_seconds = time.perf_counter() - loading  # billed to the first round played
            scorer = session.scorer(models)
            # room for the final test evaluation of the seed and the best prompt, which may have grown
            grown = len(session.seed_prompt) + 4 * settings.mask_tokens * settings.rounds
            scorer.reserve_test(session.seed_prompt, min(self.checks.prompt_chars, grown))
            estimate = session.estimate()
            estimate["cost_usd"] = round(models.target.price.cost(Usage(estimate["prompt_tokens"],
                                                                        estimate["completion_tokens"])), 4)
            warning = power_note(len(session.pools.val), look_level(settings.significance, bool(session.pools.confirm)))
            session.log.emit(RunStart(resume=resuming, estimate=estimate, completed_rounds=sorted(resume.rounds),
                                      val_warning=warning))
            seed_val = await scorer.score_seed(session.seed_prompt)
            state = LoopState.start(session.seed_prompt, seed_val, resume)
            rounds = Rounds(settings, session.pools, session.log, scorer, proposer, feedback, self.checks, resume.notes,
                            session.on_progress, load_seconds=load_seconds) if proposer else None  # None: all logged
            stop_reason = "rounds"
            try:
                for r in range(1, settings.rounds + 1):
                    if r in resume.rounds:  # this round's outcome is in the log
                        state.replay(resume.rounds[r])
                        continue
                    rule = self._stop_rule(state)
                    if rule:
                        stop_reason = rule
                        break
                    outcome = await rounds.play(r, state)
                    state.advance(outcome)
                    session.log.write_best(state.incumbent)
                    session.log.emit(RoundEnd(round=r, record=outcome.record, incumbent=state.incumbent,
                                              best_val=state.best_val, no_improve=state.no_improve,
                                              spend=models.budget.spend().to_json()))
            except StopRun as stop:
                stop_reason = str(stop)
            except BudgetExceeded as exc:  # a judge, writer or user-model call the budget refused
                stop_reason = f"budget ({exc})"
            session.log.emit(Stop(reason=stop_reason))
            writer = (f"{settings.proposer}:{settings.optimizer_model}" if self.writes_with_chat_model
                      else settings.dlm)
            return await session.finish(
                scorer, best_prompt=state.incumbent, best_val=state.best_val, seed_val=seed_val.score, writer=writer,
                stop_reason=stop_reason, rounds=state.records,
                warnings=([warning] if warning else []) + self._fallback_warnings(state))

    def _stop_rule(self, state: LoopState) -> str | None:
        """The rule that ends the run before the next round, if any."""
        settings = self.settings
        if settings.patience is not None and state.no_improve >= settings.patience:
            return "patience"
        if settings.max_seconds is not None and time.perf_counter() - self.session.start > settings.max_seconds:
            return "time"
        return None

    @staticmethod
    def _fallback_warnings(state: LoopState) -> list[str]:
        failed = state.fallbacks
        if not failed:
            return []
        n, of = sum(e.failed for e in failed), sum(e.of for e in failed)
        reasons = sorted({why for e in failed for why in e.reasons})
        return [f"{failed[0].source} feedback failed on {n} of {of} traces in {len(failed)} round(s), which "
                f"kept the metric's sentence ({'; '.join(reasons)[:200]})"]
