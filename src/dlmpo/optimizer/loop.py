"""The optimization loop of the paper, as a resumable, budgeted run.

Round r: run the target with the incumbent on a train minibatch (traces) -> attach feedback ->
choose traces (failures first) -> propose K prompts by masking + DLM infilling -> guards ->
screen candidates and incumbent on the same other train examples -> the best candidate, if it
wins at least `min_gain` more paired examples than it loses, is scored on the val pool and becomes
the incumbent only if its paired advantage there passes a sign test (`optimizer.selection`).
Seed and best are scored on test."""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Callable

from dlmpo.catalog import get_task
from dlmpo.dlm import ContextItem, SamplerConfig, load_dlm
from dlmpo.errors import UserError
from dlmpo.evaluate import answer_cap, budget_requests, evaluate
from dlmpo.lm import ChatModel, Usage, open_target
from dlmpo.lm.pricing import PriceTable
from dlmpo.optimizer.budget import Budget, Spend
from dlmpo.optimizer.feedback import JUDGE_INSTRUCTION, FeedbackSource, HumanFeedback, JudgeFeedback, MetricFeedback, NoFeedback
from dlmpo.optimizer.guards import PromptGuard
from dlmpo.optimizer.proposers import DLMProposer, Proposer
from dlmpo.optimizer.result import OptimizeResult, RoundRecord
from dlmpo.optimizer.selection import futile, power_note, val_parts
from dlmpo.optimizer.selection import judge as sign_judge
from dlmpo.optimizer.settings import OptimizeSettings
from dlmpo.runs.rundir import RunDir
from dlmpo.tasks import EvalResult, Example, Task, Trace, is_episodic
from dlmpo.tasks.base import stable_fraction

EventSink = Callable[[dict], None]
ProgressSink = Callable[[str, int, "int | None"], None]  # what is running, done, total (None: unknown)


class StopRun(Exception):
    """A limit (budget, time) ends the loop early; the run still finishes cleanly."""


def select_context(traces: list[Trace], notes: list[str | None], k: int) -> list[ContextItem]:
    """Failures first (up to two thirds of the slots), then successes, then whatever is left."""
    items = [(t, n) for t, n in zip(traces, notes)]
    failures = [x for x in items if x[0].score < 1]
    successes = [x for x in items if x[0].score >= 1]
    n_fail = min(len(failures), max(1, (2 * k + 2) // 3)) if failures else 0
    chosen = failures[:n_fail] + successes[: k - n_fail]
    chosen += [x for x in failures[n_fail:]][: k - len(chosen)]
    return [ContextItem(t.user, t.output or "(no answer)", t.score, n) for t, n in chosen]


def screening_batch(train_pool: list[Example], traces: list[Example], n: int, rng: random.Random) -> list[Example]:
    """`n` train examples to screen candidates on, other than the ones whose traces the DLM saw
    when there are enough; topped up from those otherwise."""
    seen = {ex.id for ex in traces}
    fresh = [ex for ex in train_pool if ex.id not in seen]
    if len(fresh) >= n:
        return rng.sample(fresh, n)
    return fresh + rng.sample(traces, min(n - len(fresh), len(traces)))


class Optimizer:
    def __init__(self, settings: OptimizeSettings, out: str | Path, *, on_event: EventSink | None = None,
                 on_progress: ProgressSink | None = None, task: Task | None = None, proposer: Proposer | None = None):
        self.s = settings
        self.run_dir = RunDir(out)
        self.on_event = on_event or (lambda e: None)
        self.on_progress = on_progress or (lambda what, done, total: None)  # transient: never logged
        self.task = task or get_task(settings.task, settings.data_dir)
        self._proposer = proposer
        self.seed_prompt = settings.seed_prompt or self.task.seed_prompt
        rng = random.Random(f"{settings.seed}:pools")
        train, val = self.task.examples("train"), self.task.examples("val")
        self.train_pool = rng.sample(train, min(settings.train_size, len(train)))
        self.val_pool = rng.sample(val, min(settings.val_size, len(val)))
        test = sorted(self.task.examples("test"), key=lambda ex: stable_fraction(ex.id))
        self.test_set = test[: settings.test_size]
        if not self.train_pool or not self.val_pool or not self.test_set:
            raise UserError(f"Task '{self.task.name}' needs train, val and test examples.")
        self.answer_tokens = answer_cap(self.task, settings.max_answer_tokens)
        self.prompt_chars = settings.max_prompt_chars or max(4000, int(1.5 * len(self.seed_prompt)))
        self.guard = PromptGuard(self.prompt_chars, settings.copy_ngram)
        self.user_model: ChatModel | None = None  # τ-bench's simulated customer, when it is a chat model
        self.writer: ChatModel | None = None  # the AR proposer's chat model, opened with the target

    # ---------------------------------------------------------------- set-up

    def estimate(self) -> dict:
        """Calls and cost before starting: every batch at full size, no cache hits."""
        s = self.s
        per_round = min(s.batch_size, len(self.train_pool)) + (s.candidates + 1) * min(s.screen_batch, len(self.train_pool)) \
            + len(self.val_pool)
        runs = len(self.val_pool) + 2 * len(self.test_set) + s.rounds * per_round  # examples the target runs
        per_example = [budget_requests(self.task, self.seed_prompt, ex, self.answer_tokens) for ex in self.val_pool[:20]]
        calls = runs * len(per_example[0])  # an episodic example (τ-bench) is several target calls
        if s.feedback == "judge":
            calls += s.rounds * min(s.batch_size, len(self.train_pool))
        if s.proposer == "ar":
            calls += s.rounds * s.candidates
        if s.proposer == "textgrad":
            calls += s.rounds * (s.candidates + 1)
        sample = [r for rs in per_example for r in rs]
        avg_prompt = sum(sum(len(m["content"]) for m in r.messages) for r in sample) / (3 * len(sample)) + 80
        return {"calls": calls, "prompt_tokens": int(calls * avg_prompt),
                "completion_tokens": calls * self.answer_tokens}

    def _open_models(self, writer: bool | None = None) -> tuple[ChatModel, ChatModel | None]:
        """Target and judge; the optimizer model too when `writer` (default: for the ar and textgrad proposers)."""
        s = self.s
        prices = PriceTable.from_file(s.prices) if s.prices else None
        kw = dict(cache_path=self.run_dir.calls_db, concurrency=s.concurrency, rpm=s.rpm, tpm=s.tpm, prices=prices)
        target = open_target(s.target, **kw)
        judge = open_target(s.judge, **kw) if s.feedback == "judge" and s.judge else None
        self.writer = None
        if is_episodic(self.task):
            self.user_model = None if s.user_model == "scripted" else (
                target if s.user_model == s.target else open_target(s.user_model, **kw))
            self.task.bind_user_model(self.user_model)
        if s.proposer in ("ar", "textgrad") if writer is None else writer:  # a model in two roles is opened once
            self.writer = target if s.optimizer_model == s.target else open_target(s.optimizer_model, **kw)
        return target, judge

    def _feedback(self, judge: ChatModel | None) -> FeedbackSource:
        if self.s.feedback == "judge":
            assert judge is not None
            return JudgeFeedback(judge, getattr(self.task, "judge_instruction", JUDGE_INSTRUCTION))
        if self.s.feedback == "human":
            return HumanFeedback(self.s.human_notes)
        return NoFeedback() if self.s.feedback == "none" else MetricFeedback()

    def _make_proposer(self) -> Proposer:
        if self._proposer is not None:
            return self._proposer
        s = self.s
        if s.proposer == "ar":
            from dlmpo.optimizer.ar_proposer import ARProposer

            assert self.writer is not None
            return ARProposer(self.writer, strategy=s.strategy, mask_tokens=s.mask_tokens, span_ratio=s.span_ratio,
                              span_length=s.span_length, seed=s.seed, temperature=s.temperature)
        if s.proposer == "textgrad":
            from dlmpo.optimizer.textgrad_proposer import TextGradProposer

            assert self.writer is not None
            return TextGradProposer(self.writer, temperature=s.temperature)
        sampler = SamplerConfig(steps=s.steps, alg=s.alg, alg_temp=s.alg_temp, temperature=s.temperature,
                                top_p=s.top_p, top_k=s.top_k, block_length=s.block_length, threshold=s.threshold,
                                kv_refresh=s.kv_refresh, seed=s.seed, schedule=s.schedule)
        sampler.validate()
        model = load_dlm(s.dlm, s.device, adapter=s.adapter)
        return DLMProposer(model, sampler, strategy=s.strategy, mask_tokens=s.mask_tokens,
                           span_ratio=s.span_ratio, span_length=s.span_length, seed=s.seed)

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

    def _emit(self, event: dict) -> None:
        self.run_dir.append(event)
        self.on_event(event)

    # ---------------------------------------------------------------- the run

    async def run(self) -> OptimizeResult:
        s = self.s
        start = time.perf_counter()
        resuming = self.run_dir.bind_config(s.identity(), s.model_dump())
        done_rounds = {e["round"]: e for e in self.run_dir.events() if e.get("type") == "round_end"}
        target, judge = self._open_models()
        # the proposer before the seed is scored: a prompt it cannot rewrite is an error before any call
        proposer: Proposer | None = None
        if len(done_rounds) < s.rounds:
            model = s.dlm if s.proposer == "dlm" else s.optimizer_model
            self.on_progress(f"loading the {s.proposer} proposer ({model})", 0, None)
            try:
                proposer = self._make_proposer()
                self._limit_prompt_tokens(proposer)
            except UserError:
                await self._close_models(target, judge)
                raise
        # every model the run pays for counts: the target, a judge, an AR optimizer model
        budget = Budget([m for m in (target, judge, self.writer, self.user_model) if m], max_calls=s.max_calls,
                        max_cost=s.max_cost, max_tokens=s.max_tokens)
        # room for the final test evaluation of the best prompt, which may have grown
        grown = "x" * min(self.prompt_chars, len(self.seed_prompt) + 4 * s.mask_tokens * s.rounds)
        reserve = Budget.estimate(target, [r for ex in self.test_set
                                           for r in budget_requests(self.task, grown, ex, self.answer_tokens)])
        estimate = self.estimate()
        estimate["cost_usd"] = round(target.price.cost(Usage(estimate["prompt_tokens"], estimate["completion_tokens"])), 4)
        warning = power_note(len(self.val_pool), s.significance)
        self._emit({"type": "run_start", "resume": resuming, "estimate": estimate,
                    "completed_rounds": sorted(done_rounds), "val_warning": warning})
        try:
            seed_val = await self._eval(target, budget, self.seed_prompt, self.val_pool, "val", "seed", reserve)
            seed_test = await self._eval(target, budget, self.seed_prompt, self.test_set, "test", "seed", reserve)
        except StopRun as stop:
            await target.aclose()
            raise UserError(f"The budget cannot cover scoring the seed prompt on val and test, {stop}: "
                            "raise it or lower --val-size / --test-size.") from None
        incumbent, best_val = self.seed_prompt, seed_val.score
        self._incumbent_val = [t.score for t in seed_val.traces]  # per val example, for the paired test
        stop_reason = "rounds"
        try:
            records: list[RoundRecord] = []
            no_improve = 0
            feedback = self._feedback(judge)
            for r in range(1, s.rounds + 1):
                if r in done_rounds:  # resumed: this round's outcome is in the log
                    e = done_rounds[r]
                    incumbent, best_val, no_improve = e["incumbent"], e["best_val"], e["no_improve"]
                    records.append(RoundRecord(**e["record"]))
                    self._incumbent_val = None  # re-read from the cache when next needed
                    continue
                if s.patience is not None and no_improve >= s.patience:
                    stop_reason = "patience"
                    break
                if s.max_seconds is not None and time.perf_counter() - start > s.max_seconds:
                    stop_reason = "time"
                    break
                proposer = proposer or self._make_proposer()
                record, incumbent, best_val = await self._round(
                    r, target, budget, reserve, proposer, feedback, incumbent, best_val)
                no_improve = 0 if record.accepted else no_improve + 1
                records.append(record)
                self.run_dir.write_best(incumbent)
                self._emit({"type": "round_end", "round": r, "record": record.__dict__, "incumbent": incumbent,
                            "best_val": best_val, "no_improve": no_improve, "spend": budget.spend().to_json()})
        except StopRun as stop:
            stop_reason = str(stop)
        self._emit({"type": "stop", "reason": stop_reason})
        best_test = await self._eval(target, None, incumbent, self.test_set, "test", "best")
        self.run_dir.write_best(incumbent)
        spend = budget.spend()
        usage = {**spend.to_json(), "this_process": target.accounting.to_json()}
        if judge is not None:
            usage["judge_this_process"] = judge.accounting.to_json()
        if self.writer is not None and self.writer is not target:
            usage["optimizer_model_this_process"] = self.writer.accounting.to_json()
        result = OptimizeResult(
            run_dir=str(self.run_dir.path), task=self.task.name, target=s.target,
            dlm=s.dlm if s.proposer == "dlm" else f"{s.proposer}:{s.optimizer_model}",
            seed_prompt=self.seed_prompt, best_prompt=incumbent,
            val={"seed": round(seed_val.score, 4), "best": round(best_val, 4)},
            test={"seed": round(seed_test.score, 4), "best": round(best_test.score, 4)},
            rounds=records, stop_reason=stop_reason, calls=spend.calls, usage=usage,
            seconds=time.perf_counter() - start, settings=s.model_dump(),
            warnings=([warning] if warning else []) + self._fallback_warnings(),
        )
        result.save(self.run_dir.result_file)
        self._emit({"type": "run_end", **result.summary()})
        await self._close_models(target, judge)
        return result

    async def _close_models(self, target: ChatModel, judge: ChatModel | None) -> None:
        await target.aclose()
        for extra in (judge, self.writer, self.user_model):
            if extra is not None and extra is not target:
                await extra.aclose()

    async def _eval(self, target: ChatModel, budget: Budget | None, prompt: str, examples: list[Example],
                    split: str, which: str, reserve: Spend | None = None, round_index: int | None = None,
                    log: bool = True) -> EvalResult:
        if budget is not None:
            requests = [r for ex in examples for r in budget_requests(self.task, prompt, ex, self.answer_tokens)]
            why = budget.refusal(target, requests, reserve)
            if why:
                raise StopRun(f"budget ({why})")
        what = f"round {round_index}: {which} on {split}" if round_index else f"{which} prompt on {split}"
        done = 0

        def tick(_trace) -> None:
            nonlocal done
            done += 1
            self.on_progress(what, done, len(examples))

        self.on_progress(what, 0, len(examples))
        result = await evaluate(self.task, target, prompt, examples, split=split,
                                max_tokens=self.answer_tokens, on_done=tick)
        if log:
            self._emit({"type": "eval", "which": which, "split": split, "round": round_index, "n": result.n,
                        "score": round(result.score, 4), "metrics": result.metrics,
                        "parse_failures": result.parse_failures, "failures": result.failures})
        return result

    def _fallback_warnings(self) -> list[str]:
        failed = [e for e in self.run_dir.events() if e.get("type") == "feedback_fallback"]
        if not failed:
            return []
        n, of = sum(e["failed"] for e in failed), sum(e["of"] for e in failed)
        reasons = sorted({why for e in failed for why in e["reasons"]})
        return [f"{failed[0]['source']} feedback failed on {n} of {of} traces in {len(failed)} round(s), which "
                f"kept the metric's sentence ({'; '.join(reasons)[:200]})"]

    async def _challenge(self, target, budget, reserve, prompt: str, r: int) -> list[float]:
        """The challenger's val scores, part by part; it stops early once it is not ahead (futility)."""
        scores: list[float] = []
        for end in val_parts(len(self.val_pool)):
            part = await self._eval(target, budget, prompt, self.val_pool[len(scores):end], "val", "challenger",
                                    reserve, r)
            scores += [t.score for t in part.traces]
            if end < len(self.val_pool) and futile(scores, self._incumbent_val):
                break
        return scores

    async def _round(self, r, target, budget, reserve, proposer, feedback, incumbent, best_val):
        s = self.s
        t0 = time.perf_counter()
        rng = random.Random(f"{s.seed}:{r}")
        minibatch = rng.sample(self.train_pool, min(s.batch_size, len(self.train_pool)))
        screen = screening_batch(self.train_pool, minibatch, s.screen_batch, rng)
        self._emit({"type": "round_start", "round": r})
        traces = await self._eval(target, budget, incumbent, minibatch, "train", "traces", reserve, r)
        logged = [e for e in self.run_dir.events() if e.get("type") == "feedback" and e.get("round") == r]
        if logged:  # a resumed round: notes typed or written before the interruption are reused
            notes = logged[-1]["notes"]
        else:
            notes = await feedback.annotate(incumbent, traces.traces)
            self._emit({"type": "feedback", "round": r, "source": feedback.name, "notes": notes})
            if feedback.failures:  # those traces keep the metric's sentence; the run goes on
                self._emit({"type": "feedback_fallback", "round": r, "source": feedback.name,
                            "failed": len(feedback.failures), "of": len(notes), "reasons": sorted(set(feedback.failures))})
        context = select_context(traces.traces, notes, s.context_traces)
        self.on_progress(f"round {r}: {proposer.name} writing {s.candidates} candidates", 0, None)
        proposals = await proposer.propose(incumbent, context, s.candidates, r)
        inc_mb = await self._eval(target, budget, incumbent, screen, "train", "incumbent", reserve, r)
        sources = [t.user for t in traces.traces]
        candidates: list[dict] = []
        for i, p in enumerate(proposals):
            row = {"index": i, "strategy": p.strategy, "prompt": p.prompt, "masked": p.masked, "nfe": p.nfe,
                   "dlm_seconds": round(p.seconds, 3), "rejected": None, "minibatch": None,
                   "wins": 0, "losses": 0, "val": None, "significance": None}
            row["rejected"] = p.failure or self.guard.reject_reason(p.prompt, incumbent, sources)
            if row["rejected"] is None and any(c["prompt"] == p.prompt for c in candidates):
                row["rejected"] = "duplicate of another candidate"
            if row["rejected"] is None:
                res = await self._eval(target, budget, p.prompt, screen, "train", "candidate", reserve, r, log=False)
                row["minibatch"] = round(res.score, 4)
                row["wins"] = sum(c.score > b.score for c, b in zip(res.traces, inc_mb.traces))
                row["losses"] = sum(c.score < b.score for c, b in zip(res.traces, inc_mb.traces))
            candidates.append(row)
            self._emit({"type": "candidate", "round": r, **row})
        live = [c for c in candidates if c["rejected"] is None]
        accepted = False
        if live:
            best = max(live, key=lambda c: (c["wins"] - c["losses"], c["minibatch"], -c["index"]))
            if best["wins"] - best["losses"] >= s.min_gain:
                if self._incumbent_val is None:  # resumed after the incumbent was chosen: its calls are cached
                    again = await self._eval(target, None, incumbent, self.val_pool, "val", "incumbent", log=False)
                    self._incumbent_val = [t.score for t in again.traces]
                scores = await self._challenge(target, budget, reserve, best["prompt"], r)
                verdict = sign_judge(scores, self._incumbent_val, s.significance)
                val = sum(scores) / len(scores)
                best["val"], best["significance"] = round(val, 4), verdict.to_json()
                accepted = verdict.significant and val > best_val
                self._emit({"type": "decision", "round": r, "index": best["index"], "val": best["val"],
                            "incumbent_val": round(best_val, 4), "accepted": accepted, **verdict.to_json()})
                if accepted:
                    incumbent, best_val, self._incumbent_val = best["prompt"], val, scores
        record = RoundRecord(round=r, incumbent_minibatch=round(inc_mb.score, 4), candidates=candidates,
                             accepted=accepted, best_val=round(best_val, 4),
                             seconds=round(time.perf_counter() - t0, 2))
        return record, incumbent, best_val
