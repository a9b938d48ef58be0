"""One round of the loop, step by step, each step's outcome a dataclass:

    traces     the incumbent on a train batch, with feedback on each trace (logged, reused on resume)
    propose    the proposer writes K prompts from the chosen traces; checks reject some (checks.py)
    screen     incumbent and candidates on the same screening batch, paired: the best candidate
               challenges when it wins at least `min_gain` more examples than it loses
    challenge  the challenger on the val pool (part by part, stopping once it is not ahead), a
               second look on the confirmation pool when promising, then the sign test

`LoopState` is what carries from one round to the next; a round's outcome enters it through
`advance`, once the round is over."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Sequence

from dlmpo.dlm import ContextItem
from dlmpo.optimizer.checks import CandidateChecks
from dlmpo.optimizer.events import CandidateScored, Decision, Feedback, FeedbackFallback, RoundEnd, RoundStart
from dlmpo.optimizer.feedback import FeedbackSource
from dlmpo.optimizer.pools import Pools
from dlmpo.optimizer.proposers import Proposer, prompt_key
from dlmpo.optimizer.result import CandidateRecord, RoundRecord
from dlmpo.optimizer.runlog import Resume, RunLog
from dlmpo.optimizer.scorer import ProgressSink, Scorer
from dlmpo.optimizer.selection import Verdict, futile, look_level, paired, second_look, val_parts
from dlmpo.optimizer.selection import judge as sign_judge
from dlmpo.optimizer.settings import OptimizeSettings
from dlmpo.optimizer.timing import PhaseClock
from dlmpo.tasks import EvalResult, Example, Trace


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


def screening_batch(spare_val: Sequence[Example], train_pool: Sequence[Example], shown: list[Example], n: int,
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


@dataclass(frozen=True)
class Batches:
    shown: list[Example]  # the incumbent's traces on these are what the proposer sees
    screen: list[Example]


@dataclass(frozen=True)
class RoundTraces:
    traces: list[Trace]
    context: list[ContextItem]  # the traces chosen for the proposer, with their notes


@dataclass(frozen=True)
class Proposed:
    candidates: list[CandidateRecord]  # in the proposer's order; a rejected one says why
    nfe: int  # the DLM's forward passes, where the proposer counts them
    redraws: int  # samples taken again for candidates that repeated a text


@dataclass(frozen=True)
class Screened:
    incumbent_score: float
    challenger: CandidateRecord | None  # the best candidate, when it won by at least min_gain


@dataclass(frozen=True)
class Challenge:
    candidate: CandidateRecord
    scores: list[float]  # the challenger's per val example (fewer when it stopped early)
    incumbent_scores: list[float]  # the incumbent's per val example
    val: float
    accepted: bool


@dataclass(frozen=True)
class RoundOutcome:
    record: RoundRecord
    challenge: Challenge | None


@dataclass
class LoopState:
    incumbent: str
    best_val: float
    incumbent_val: list[float] | None  # per val example, for the paired test; None: read again when needed
    challenged: dict[str, int]  # each prompt (by key) that challenged on val, and its round: it never does again
    fallbacks: list[FeedbackFallback]  # feedback that failed this run (a warning of the result)
    no_improve: int = 0
    records: list[RoundRecord] = field(default_factory=list)

    @classmethod
    def start(cls, seed_prompt: str, seed_val: EvalResult, resume: Resume) -> LoopState:
        # only completed rounds count: an interrupted round is run again as it first ran
        return cls(seed_prompt, seed_val.score, [t.score for t in seed_val.traces],
                   challenged_rounds([e.record for e in resume.rounds.values()]), list(resume.fallbacks))

    def replay(self, logged: RoundEnd) -> None:
        """A round an earlier process finished: its outcome from the log. The incumbent's val
        scores are not in it; they are read again (from the call cache) when next needed."""
        self.incumbent, self.best_val, self.no_improve = logged.incumbent, logged.best_val, logged.no_improve
        self.records.append(logged.record)
        self.incumbent_val = None

    def advance(self, outcome: RoundOutcome) -> None:
        self.records.append(outcome.record)
        self.no_improve = 0 if outcome.record.accepted else self.no_improve + 1
        challenge = outcome.challenge
        if challenge is None:
            return
        self.challenged.setdefault(prompt_key(challenge.candidate.prompt), outcome.record.round)
        if challenge.accepted:
            self.incumbent, self.best_val, self.incumbent_val = challenge.candidate.prompt, challenge.val, challenge.scores
        else:
            self.incumbent_val = challenge.incumbent_scores


class Rounds:
    """The steps of a round, over one run's parts."""

    def __init__(self, settings: OptimizeSettings, pools: Pools, log: RunLog, scorer: Scorer, proposer: Proposer,
                 feedback: FeedbackSource, checks: CandidateChecks, logged_notes: dict[int, list[str | None]],
                 on_progress: ProgressSink, *, load_seconds: float = 0.0):
        self.settings, self.pools, self.log, self.scorer = settings, pools, log, scorer
        self.proposer, self.feedback, self.checks = proposer, feedback, checks
        self.logged_notes = logged_notes  # feedback an interrupted process logged: a person is not asked twice
        self.on_progress = on_progress
        self.unbilled_load = load_seconds  # loading the proposer: billed to the first round this process plays

    async def play(self, r: int, state: LoopState) -> RoundOutcome:
        clock = PhaseClock(carried={"load": self.unbilled_load} if self.unbilled_load else None)
        self.unbilled_load = 0.0
        started = time.perf_counter()
        batches = self.batches(r)
        self.log.emit(RoundStart(round=r))
        traces = await self.traces(r, batches.shown, state, clock)
        proposed = await self.propose(r, traces, state, clock)
        with clock.phase("screen"):
            screened = await self.screen(r, batches.screen, state.incumbent, proposed)
        challenge = None if screened.challenger is None else await self.challenge(r, screened.challenger, state,
                                                                                   clock)
        accepted = challenge is not None and challenge.accepted
        best_val = challenge.val if accepted else state.best_val
        record = RoundRecord(round=r, incumbent_screen_score=round(screened.incumbent_score, 4),
                             candidates=proposed.candidates, accepted=accepted, best_val=round(best_val, 4),
                             seconds=round(time.perf_counter() - started, 2),
                             timing=clock.timing(nfe=proposed.nfe, redraws=proposed.redraws))
        return RoundOutcome(record, challenge)

    def batches(self, r: int) -> Batches:
        s, pools = self.settings, self.pools
        rng = random.Random(f"{s.seed}:{r}")
        shown = rng.sample(pools.train, min(s.batch_size, len(pools.train)))
        return Batches(shown, screening_batch(pools.spare_val, pools.train, shown, s.screen_batch, rng))

    async def traces(self, r: int, shown: list[Example], state: LoopState, clock: PhaseClock) -> RoundTraces:
        with clock.phase("traces"):
            ran = await self.scorer.evaluate(state.incumbent, shown, "train", "traces", round_index=r)
        if r in self.logged_notes:
            notes = self.logged_notes[r]
        else:
            with clock.phase("feedback"):
                annotated = await self.feedback.annotate(state.incumbent, ran.traces)
            notes = annotated.notes
            self.log.emit(Feedback(round=r, source=self.feedback.name, notes=notes))
            if annotated.failures:  # those traces keep the metric's sentence; the run goes on
                fallback = FeedbackFallback(round=r, source=self.feedback.name, failed=len(annotated.failures),
                                            of=len(notes), reasons=sorted(set(annotated.failures)))
                self.log.emit(fallback)
                state.fallbacks.append(fallback)  # logged, so counted even when the round is cut short
        return RoundTraces(ran.traces, select_context(ran.traces, notes, self.settings.context_traces))

    async def propose(self, r: int, traces: RoundTraces, state: LoopState, clock: PhaseClock) -> Proposed:
        k = self.settings.candidates
        self.on_progress(f"round {r}: {self.proposer.name} writing {k} candidates", 0, None)
        started = time.perf_counter()
        proposals = await self.proposer.propose(state.incumbent, traces.context, k, r,
                                                avoid=frozenset(state.challenged))
        writing = time.perf_counter() - started
        canvas, sampling = sum(p.canvas_seconds for p in proposals), sum(p.sample_seconds for p in proposals)
        clock.add("canvas", canvas)
        clock.add("sampling", sampling)
        clock.add("propose", max(0.0, writing - canvas - sampling))
        sources = [t.user for t in traces.traces]
        candidates: list[CandidateRecord] = []
        for i, p in enumerate(proposals):
            c = CandidateRecord(index=i, strategy=p.strategy, prompt=p.prompt, masked=p.masked, nfe=p.nfe, draws=p.draws,
                                dlm_seconds=round(p.seconds, 3))
            with clock.phase("checks"):
                c.rejected = self.checks.rejection(p, state.incumbent, [o.prompt for o in candidates],
                                                   state.challenged, sources)
            candidates.append(c)
        return Proposed(candidates, nfe=round(sum(p.forwards for p in proposals)),
                        redraws=sum(max(0, p.draws - 1) for p in proposals))

    async def screen(self, r: int, batch: list[Example], incumbent: str, proposed: Proposed) -> Screened:
        mine = await self.scorer.evaluate(incumbent, batch, "screen", "incumbent", round_index=r)
        for c in proposed.candidates:
            if c.rejected is None:
                theirs = await self.scorer.evaluate(c.prompt, batch, "screen", "candidate", round_index=r, log=False)
                c.screen_score = round(theirs.score, 4)
                c.wins, c.losses = paired([t.score for t in theirs.traces], [t.score for t in mine.traces])
            self.log.emit(CandidateScored(round=r, candidate=c))
        live = [c for c in proposed.candidates if c.rejected is None]
        best = max(live, key=lambda c: (c.wins - c.losses, c.screen_score, -c.index), default=None)
        won = best is not None and best.wins - best.losses >= self.settings.min_gain
        return Screened(mine.score, best if won else None)

    async def challenge(self, r: int, challenger: CandidateRecord, state: LoopState, clock: PhaseClock) -> Challenge:
        """The sign test of `challenger` against the incumbent on val (and the confirmation pool)."""
        pools, val_pool = self.pools, self.pools.val
        incumbent_scores = state.incumbent_val
        scores: list[float] = []
        with clock.phase("val"):
            if incumbent_scores is None:  # resumed after the incumbent was chosen: its calls are cached
                again = await self.scorer.evaluate(state.incumbent, val_pool, "val", "incumbent", charge=False,
                                                   log=False)
                incumbent_scores = [t.score for t in again.traces]
            for end in val_parts(len(val_pool)):  # it stops early once it is not ahead (futility)
                part = await self.scorer.evaluate(challenger.prompt, val_pool[len(scores):end], "val", "challenger",
                                                  round_index=r)
                scores += [t.score for t in part.traces]
                if end < len(val_pool) and futile(scores, incumbent_scores):
                    break
        level = look_level(self.settings.significance, bool(pools.confirm))
        verdict = sign_judge(scores, incumbent_scores, level)
        val = sum(scores) / len(scores)
        if verdict.worth_second_look() and pools.confirm and val > state.best_val:
            with clock.phase("confirm"):
                verdict = await self._second_look(r, verdict, state.incumbent, challenger.prompt, scores,
                                                  incumbent_scores, level)
        challenger.val, challenger.significance = round(val, 4), verdict
        accepted = verdict.significant and val > state.best_val
        self.log.emit(Decision(round=r, index=challenger.index, val=challenger.val,
                               incumbent_val=round(state.best_val, 4), accepted=accepted, verdict=verdict))
        return Challenge(challenger, scores, incumbent_scores, val, accepted)

    async def _second_look(self, r: int, first: Verdict, incumbent: str, challenger: str, scores: list[float],
                           incumbent_scores: list[float], level: float) -> Verdict:
        """Both prompts on the confirmation pool, then the sign test on val and confirmation together."""
        pool = self.pools.confirm
        mine = await self.scorer.evaluate(incumbent, pool, "confirm", "incumbent", round_index=r)
        theirs = await self.scorer.evaluate(challenger, pool, "confirm", "challenger", round_index=r)
        return second_look(first, scores + [t.score for t in theirs.traces],
                           incumbent_scores + [t.score for t in mine.traces], level)
