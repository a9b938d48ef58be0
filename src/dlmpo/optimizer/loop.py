"""The optimization loop of the paper, as a resumable, budgeted run.

Round r: run the target with the incumbent on a train minibatch (traces) -> attach feedback ->
choose traces (failures first) -> propose K prompts by masking + DLM infilling -> guards ->
screen candidates and incumbent on the same val-split examples outside the val pool (train
examples when there are too few) -> the best candidate, if it
wins at least `min_gain` more paired examples than it loses, is scored on the val pool and becomes
the incumbent only if its paired advantage there passes a sign test (`optimizer.selection`).
A prompt challenges at most once per run: a candidate that repeats an earlier challenger is
rejected before screening (the target answers greedily, so a second sign test would repeat the
first). Seed and best are scored on test."""

from __future__ import annotations

import random
import re
import time
from pathlib import Path

from dlmpo.dlm import ContextItem
from dlmpo.errors import BudgetExceeded, UserError
from dlmpo.lm import Usage
from dlmpo.optimizer.events import CandidateScored, Decision, Feedback, FeedbackFallback, RoundEnd, RoundStart, RunStart, Stop
from dlmpo.optimizer.feedback import FeedbackSource, HumanFeedback
from dlmpo.optimizer.guards import PromptGuard
from dlmpo.optimizer.proposers import Proposer, prompt_key
from dlmpo.optimizer.readability import ReadabilityGate
from dlmpo.optimizer.registry import FEEDBACK, PROPOSERS
from dlmpo.optimizer.result import CandidateRecord, OptimizeResult, RoundRecord
from dlmpo.optimizer.selection import futile, look_level, paired, power_note, second_look, val_parts
from dlmpo.optimizer.selection import judge as sign_judge
from dlmpo.optimizer.session import EventSink, ProgressSink, RunSession, StopRun
from dlmpo.optimizer.settings import OptimizeSettings
from dlmpo.tasks import Example, Task, Trace


def select_context(traces: list[Trace], notes: list[str | None], k: int) -> list[ContextItem]:
    """Failures first (up to two thirds of the slots; format failures before wrong labels), then
    successes, then whatever is left."""
    items = [(t, n) for t, n in zip(traces, notes)]
    # answers that name no label first: when the target misses the format, that is the thing to fix
    failures = sorted((x for x in items if x[0].score < 1), key=lambda x: x[0].prediction is not None)
    successes = [x for x in items if x[0].score >= 1]
    n_fail = min(len(failures), max(1, (2 * k + 2) // 3)) if failures else 0
    chosen = failures[:n_fail] + successes[: k - n_fail]
    chosen += [x for x in failures[n_fail:]][: k - len(chosen)]
    return [ContextItem(t.user, t.output or "(no answer)", t.score, n) for t, n in chosen]


def challenged_rounds(records: list[RoundRecord]) -> dict[str, int]:
    """Each prompt that challenged on val in these rounds, and the round it first did."""
    seen: dict[str, int] = {}
    for record in records:
        for c in record.candidates:
            if c.significance is not None:
                seen.setdefault(prompt_key(c.prompt), record.round)
    return seen


def screening_batch(spare_val: list[Example], train_pool: list[Example], shown: list[Example], n: int,
                    rng: random.Random) -> list[Example]:
    """`n` examples to screen candidates on. From the val split outside the val pool when it holds
    that many: the distribution the val pool is drawn from (train rows may differ: SST-2's are
    phrases, its val rows whole reviews), yet none of the val pool's examples, so the sign test on
    the val pool stays honest. Otherwise train examples other than the ones `shown` to the DLM as
    traces, topped up from those."""
    if len(spare_val) >= n:
        return rng.sample(spare_val, n)
    shown_ids = {ex.id for ex in shown}
    fresh = [ex for ex in train_pool if ex.id not in shown_ids]
    if len(fresh) >= n:
        return rng.sample(fresh, n)
    return fresh + rng.sample(shown, min(n - len(fresh), len(shown)))


class Optimizer:
    def __init__(self, settings: OptimizeSettings, out: str | Path, *, on_event: EventSink | None = None,
                 on_progress: ProgressSink | None = None, task: Task | None = None, proposer: Proposer | None = None,
                 feedback: FeedbackSource | None = None):
        self.s = settings
        self.session = RunSession(settings, out, on_event=on_event, on_progress=on_progress, task=task)
        self.run_dir, self.task, self.seed_prompt = self.session.run_dir, self.session.task, self.session.seed_prompt
        self._proposer, self._feedback_source = proposer, feedback
        self.prompt_chars = settings.max_prompt_chars or max(4000, int(1.5 * len(self.seed_prompt)))
        self.guard = PromptGuard(self.prompt_chars, settings.copy_ngram)
        self.gate = ReadabilityGate(list(self.task.labels or []), settings.readability_nll) if settings.readability else None
        # the task's own words, which a prompt may repeat (its template's fixed parts, label names, the seed)
        self.own_text = [self.seed_prompt, " ".join(self.task.labels or []),
                         *re.split(r"\{[^}]*\}", getattr(self.task, "template", "") or "")]

    @property
    def on_progress(self) -> ProgressSink:
        return self.session.on_progress

    @on_progress.setter
    def on_progress(self, sink: ProgressSink) -> None:
        self.session.on_progress = sink

    def estimate(self) -> dict:
        """Calls and cost before starting: every batch at full size, no cache hits."""
        return self.session.estimate()

    def check(self) -> None:
        """What a dry run verifies without a call: the DLM and its adapter load, the seed prompt fits
        the DLM, human notes read, the readability gate's reader loads. Each failure is a UserError."""
        if not PROPOSERS[self.s.proposer].writer:  # a chat-model writer opens with the run's models
            self._limit_prompt_tokens(self._make_proposer())
        if self.s.feedback == "human":
            HumanFeedback(self.s.human_notes)
        if self.gate is not None:
            self.gate.load()

    def _feedback(self) -> FeedbackSource:
        if self._feedback_source is not None:
            return self._feedback_source
        return FEEDBACK[self.s.feedback].build(self.s, self.session.judge, self.task)

    def _make_proposer(self) -> Proposer:
        if self._proposer is not None:
            return self._proposer
        return PROPOSERS[self.s.proposer].build(self.s, self.session.writer)

    def _limit_prompt_tokens(self, proposer: Proposer) -> None:
        limit = proposer.prompt_token_limit()
        if limit is None:
            return
        max_tokens, count = limit
        used = count(self.seed_prompt)
        if used > max_tokens:
            raise UserError(f"The seed prompt takes {used} of the DLM's tokens, but with room for "
                            f"{self.s.mask_tokens} masks it can rewrite at most {max_tokens}: shorten the "
                            "prompt or lower --mask-tokens.")
        self.guard.max_tokens, self.guard.count_tokens = max_tokens, count

    # ---------------------------------------------------------------- the run

    async def run(self) -> OptimizeResult:
        s, session = self.s, self.session
        resuming = session.bind()
        done_rounds = {e.round: e for e in session.events() if isinstance(e, RoundEnd)}
        session.open_models(writer=PROPOSERS[s.proposer].writer)
        # the proposer before the seed is scored: a prompt it cannot rewrite is an error before any call
        proposer: Proposer | None = None
        if len(done_rounds) < s.rounds:
            model = s.optimizer_model if PROPOSERS[s.proposer].writer else s.dlm
            session.on_progress(f"loading the {s.proposer} proposer ({model})", 0, None)
        try:
            if len(done_rounds) < s.rounds:
                proposer = self._make_proposer()
                self._limit_prompt_tokens(proposer)
            feedback = self._feedback()  # a notes file that cannot be read is an error before any call
            if self.gate is not None and len(done_rounds) < s.rounds:
                self.gate.load()  # its reader missing is an error before any call
        except UserError:
            await session.close()
            raise
        # room for the final test evaluation of the best prompt, which may have grown
        session.reserve_test(min(self.prompt_chars, len(self.seed_prompt) + 4 * s.mask_tokens * s.rounds))
        estimate = session.estimate()
        estimate["cost_usd"] = round(session.target.price.cost(Usage(estimate["prompt_tokens"],
                                                                     estimate["completion_tokens"])), 4)
        warning = power_note(len(session.val_pool), look_level(s.significance, bool(session.confirm_pool)))
        session.emit(RunStart(resume=resuming, estimate=estimate, completed_rounds=sorted(done_rounds),
                              val_warning=warning))
        seed_val, seed_test = await session.score_seed()
        incumbent, best_val = self.seed_prompt, seed_val.score
        self._incumbent_val = [t.score for t in seed_val.traces]  # per val example, for the paired test
        # only completed rounds count: an interrupted round is run again as it first ran
        self._challenged = challenged_rounds([e.record for e in done_rounds.values()])
        stop_reason = "rounds"
        records: list[RoundRecord] = []
        try:
            no_improve = 0
            for r in range(1, s.rounds + 1):
                if r in done_rounds:  # resumed: this round's outcome is in the log
                    e = done_rounds[r]
                    incumbent, best_val, no_improve = e.incumbent, e.best_val, e.no_improve
                    records.append(e.record)
                    self._incumbent_val = None  # re-read from the cache when next needed
                    continue
                if s.patience is not None and no_improve >= s.patience:
                    stop_reason = "patience"
                    break
                if s.max_seconds is not None and time.perf_counter() - session.start > s.max_seconds:
                    stop_reason = "time"
                    break
                proposer = proposer or self._make_proposer()
                record, incumbent, best_val = await self._round(r, proposer, feedback, incumbent, best_val)
                no_improve = 0 if record.accepted else no_improve + 1
                records.append(record)
                self.run_dir.write_best(incumbent)
                session.emit(RoundEnd(round=r, record=record, incumbent=incumbent, best_val=best_val,
                                      no_improve=no_improve, spend=session.budget.spend().to_json()))
        except StopRun as stop:
            stop_reason = str(stop)
        except BudgetExceeded as exc:  # a judge, writer or user-model call the budget refused
            stop_reason = f"budget ({exc})"
        session.emit(Stop(reason=stop_reason))
        return await session.finish(
            best_prompt=incumbent, best_val=best_val, seed_val=seed_val.score, seed_test=seed_test.score,
            optimizer=f"{s.proposer}:{s.optimizer_model}" if PROPOSERS[s.proposer].writer else s.dlm,
            stop_reason=stop_reason, rounds=records, warnings=([warning] if warning else []) + self._fallback_warnings())

    def _fallback_warnings(self) -> list[str]:
        failed = [e for e in self.session.events() if isinstance(e, FeedbackFallback)]
        if not failed:
            return []
        n, of = sum(e.failed for e in failed), sum(e.of for e in failed)
        reasons = sorted({why for e in failed for why in e.reasons})
        return [f"{failed[0].source} feedback failed on {n} of {of} traces in {len(failed)} round(s), which "
                f"kept the metric's sentence ({'; '.join(reasons)[:200]})"]

    async def _challenge(self, prompt: str, r: int) -> list[float]:
        """The challenger's val scores, part by part; it stops early once it is not ahead (futility)."""
        val_pool = self.session.val_pool
        scores: list[float] = []
        for end in val_parts(len(val_pool)):
            part = await self.session.evaluate(prompt, val_pool[len(scores):end], "val", "challenger", round_index=r)
            scores += [t.score for t in part.traces]
            if end < len(val_pool) and futile(scores, self._incumbent_val):
                break
        return scores

    async def _second_look(self, first, incumbent: str, challenger: str, scores: list[float], level: float,
                           r: int):
        """Both prompts on the confirmation pool, then the sign test on val and confirmation together."""
        pool = self.session.confirm_pool
        mine = await self.session.evaluate(incumbent, pool, "confirm", "incumbent", round_index=r)
        theirs = await self.session.evaluate(challenger, pool, "confirm", "challenger", round_index=r)
        return second_look(first, scores + [t.score for t in theirs.traces],
                           self._incumbent_val + [t.score for t in mine.traces], level)

    async def _round(self, r, proposer, feedback, incumbent, best_val):
        s, session = self.s, self.session
        t0 = time.perf_counter()
        rng = random.Random(f"{s.seed}:{r}")
        minibatch = rng.sample(session.train_pool, min(s.batch_size, len(session.train_pool)))
        screen = screening_batch(session.spare_val, session.train_pool, minibatch, s.screen_batch, rng)
        session.emit(RoundStart(round=r))
        traces = await session.evaluate(incumbent, minibatch, "train", "traces", round_index=r)
        logged = [e for e in session.events() if isinstance(e, Feedback) and e.round == r]
        if logged:  # a resumed round: notes typed or written before the interruption are reused
            notes = logged[-1].notes
        else:
            annotated = await feedback.annotate(incumbent, traces.traces)
            notes = annotated.notes
            session.emit(Feedback(round=r, source=feedback.name, notes=notes))
            if annotated.failures:  # those traces keep the metric's sentence; the run goes on
                session.emit(FeedbackFallback(round=r, source=feedback.name, failed=len(annotated.failures),
                                              of=len(notes), reasons=sorted(set(annotated.failures))))
        context = select_context(traces.traces, notes, s.context_traces)
        session.on_progress(f"round {r}: {proposer.name} writing {s.candidates} candidates", 0, None)
        proposals = await proposer.propose(incumbent, context, s.candidates, r, avoid=frozenset(self._challenged))
        inc_mb = await session.evaluate(incumbent, screen, "screen", "incumbent", round_index=r)
        sources = [t.user for t in traces.traces]
        known = " ".join(sources)
        candidates: list[CandidateRecord] = []
        for i, p in enumerate(proposals):
            c = CandidateRecord(index=i, strategy=p.strategy, prompt=p.prompt, masked=p.masked, nfe=p.nfe, draws=p.draws,
                                dlm_seconds=round(p.seconds, 3))
            c.rejected = p.failure or self.guard.reject_reason(p.prompt, incumbent, sources, self.own_text)
            if c.rejected is None and any(other.prompt == p.prompt for other in candidates):
                c.rejected = "duplicate of another candidate"
            if c.rejected is None and prompt_key(p.prompt) in self._challenged:
                c.rejected = f"challenged on val in round {self._challenged[prompt_key(p.prompt)]}"
            if c.rejected is None and self.gate is not None:  # last of the checks: it may run a model
                c.rejected = self.gate.reject_reason(p.prompt, incumbent, known)
            if c.rejected is None:
                res = await session.evaluate(p.prompt, screen, "screen", "candidate", round_index=r, log=False)
                c.minibatch = round(res.score, 4)
                c.wins, c.losses = paired([t.score for t in res.traces], [t.score for t in inc_mb.traces])
            candidates.append(c)
            session.emit(CandidateScored(round=r, candidate=c))
        live = [c for c in candidates if c.rejected is None]
        accepted = False
        if live:
            best = max(live, key=lambda c: (c.wins - c.losses, c.minibatch, -c.index))
            if best.wins - best.losses >= s.min_gain:
                if self._incumbent_val is None:  # resumed after the incumbent was chosen: its calls are cached
                    again = await session.evaluate(incumbent, session.val_pool, "val", "incumbent", charge=False,
                                                   log=False)
                    self._incumbent_val = [t.score for t in again.traces]
                scores = await self._challenge(best.prompt, r)
                level = look_level(s.significance, bool(session.confirm_pool))
                verdict = sign_judge(scores, self._incumbent_val, level)
                val = sum(scores) / len(scores)
                if verdict.worth_second_look() and session.confirm_pool and val > best_val:
                    verdict = await self._second_look(verdict, incumbent, best.prompt, scores, level, r)
                best.val, best.significance = round(val, 4), verdict
                self._challenged.setdefault(prompt_key(best.prompt), r)
                accepted = verdict.significant and val > best_val
                session.emit(Decision(round=r, index=best.index, val=best.val, incumbent_val=round(best_val, 4),
                                      accepted=accepted, verdict=verdict))
                if accepted:
                    incumbent, best_val, self._incumbent_val = best.prompt, val, scores
        record = RoundRecord(round=r, incumbent_minibatch=round(inc_mb.score, 4), candidates=candidates,
                             accepted=accepted, best_val=round(best_val, 4),
                             seconds=round(time.perf_counter() - t0, 2))
        return record, incumbent, best_val
