"""One run's shared machinery, used alike by the optimizer loop and by the peers (GEPA, MIPROv2):
the task and its pools, the run directory and its events, the models of every role opened once,
one call budget over all of them with the final test evaluation reserved, and the seed and best
prompts scored the same way."""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Callable

from dlmpo.catalog import get_task
from dlmpo.errors import BudgetExceeded, UserError
from dlmpo.evaluate import answer_cap, budget_requests, evaluate
from dlmpo.lm import ChatModel, open_target
from dlmpo.lm.budget import Budget
from dlmpo.lm.pricing import PriceTable
from dlmpo.optimizer.events import Eval, Event, RunEnd, parse_event
from dlmpo.optimizer.registry import FEEDBACK, PROPOSERS
from dlmpo.optimizer.result import OptimizeResult, RoundRecord
from dlmpo.optimizer.settings import OptimizeSettings
from dlmpo.runs.rundir import RunDir
from dlmpo.tasks import EvalResult, Example, Task, is_episodic
from dlmpo.tasks.base import stable_fraction

EventSink = Callable[[Event], None]
ProgressSink = Callable[[str, int, "int | None"], None]  # what is running, done, total (None: unknown)


class StopRun(Exception):
    """A limit (budget, time) ends the search early; the run still finishes cleanly."""


class RunSession:
    def __init__(self, settings: OptimizeSettings, out: str | Path, *, on_event: EventSink | None = None,
                 on_progress: ProgressSink | None = None, task: Task | None = None):
        self.s = settings
        self.run_dir = RunDir(out)
        self.on_event = on_event or (lambda e: None)
        self.on_progress = on_progress or (lambda what, done, total: None)  # transient: never logged
        self.task = task or get_task(settings.task, settings.data_dir,
                                      allow_unisolated_code=settings.allow_unisolated_code)
        # None: the task's seed prompt; "" (or blank): no system prompt, as in `dlmpo eval --prompt ''`
        seed = settings.seed_prompt
        self.seed_prompt = self.task.seed_prompt if seed is None else (seed if seed.strip() else "")
        rng = random.Random(f"{settings.seed}:pools")
        train, val = self.task.examples("train"), self.task.examples("val")
        self.train_pool = rng.sample(train, min(settings.train_size, len(train)))
        self.val_pool = rng.sample(val, min(settings.val_size, len(val)))
        in_pool = {ex.id for ex in self.val_pool}
        spare = [ex for ex in val if ex.id not in in_pool]
        # a second look needs examples of its own, and screening still needs a batch's worth
        room = settings.confirm_size > 0 and len(spare) >= settings.confirm_size + settings.screen_batch
        self.confirm_pool = spare[: settings.confirm_size] if room else []
        self.spare_val = spare[len(self.confirm_pool):]  # where candidates are screened
        test = sorted(self.task.examples("test"), key=lambda ex: stable_fraction(ex.id))
        self.test_set = test[: settings.test_size]
        if not self.train_pool or not self.val_pool or not self.test_set:
            raise UserError(f"Task '{self.task.name}' needs train, val and test examples.")
        self.answer_tokens = answer_cap(self.task, settings.max_answer_tokens)
        self.start = time.perf_counter()
        self.target: ChatModel | None = None
        self.judge: ChatModel | None = None
        self.writer: ChatModel | None = None  # the chat model that writes prompts (AR, TextGrad, peers)
        self.user_model: ChatModel | None = None  # τ-bench's simulated customer, when it is a chat model
        self.budget: Budget | None = None  # every model's, checked before every attempt

    # ---------------------------------------------------------------- before any call

    def estimate(self) -> dict:
        """Calls and cost of the optimizer loop before starting: every batch at full size, no cache hits."""
        s = self.s
        screened = min(s.screen_batch, max(len(self.spare_val), len(self.train_pool)))
        per_round = min(s.batch_size, len(self.train_pool)) + (s.candidates + 1) * screened + len(self.val_pool) \
            + 2 * len(self.confirm_pool)
        runs = len(self.val_pool) + 2 * len(self.test_set) + s.rounds * per_round  # examples the target runs
        per_example = [budget_requests(self.task, self.seed_prompt, ex, self.answer_tokens) for ex in self.val_pool[:20]]
        calls = runs * len(per_example[0])  # an episodic example (τ-bench) is several target calls
        if s.feedback == "judge":
            calls += s.rounds * min(s.batch_size, len(self.train_pool))
        per_candidate, extra = PROPOSERS[s.proposer].writer_calls
        calls += s.rounds * (per_candidate * s.candidates + extra)
        sample = [r for rs in per_example for r in rs]
        avg_prompt = sum(r.prompt_tokens_bound() for r in sample) / len(sample)
        return {"calls": calls, "prompt_tokens": int(calls * avg_prompt),
                "completion_tokens": calls * self.answer_tokens}

    def bind(self) -> bool:
        """Claim the run directory for these settings; True when it resumes an earlier run."""
        return self.run_dir.bind_config(self.s.identity(), self.s.model_dump())

    def open_models(self, writer: bool) -> None:
        """Target, judge (feedback judge), τ-bench user model, and the writer when asked; one budget
        over all of them, which each checks before every attempt (a model in two roles is opened
        once and paid once)."""
        s = self.s
        prices = PriceTable.from_file(s.prices) if s.prices else None
        kw = dict(cache_path=self.run_dir.calls_db, concurrency=s.concurrency, rpm=s.rpm, tpm=s.tpm, prices=prices)
        self.target = target = open_target(s.target, **kw)
        self.judge = open_target(s.judge, **kw) if FEEDBACK[s.feedback].judge and s.judge else None
        if is_episodic(self.task):
            self.user_model = None if s.user_model == "scripted" else (
                target if s.user_model == s.target else open_target(s.user_model, **kw))
            self.task.bind_user_model(self.user_model)
        if writer:
            self.writer = target if s.optimizer_model == s.target else open_target(s.optimizer_model, **kw)
        self.budget = Budget(self.models(), max_calls=s.max_calls, max_cost=s.max_cost, max_tokens=s.max_tokens)

    def models(self) -> list[ChatModel]:
        return [m for m in (self.target, self.judge, self.writer, self.user_model) if m]

    def reserve_test(self, prompt_chars: int) -> None:
        """Keep room in the budget for scoring the best prompt, up to `prompt_chars` long, on test
        (a stand-in prompt that is never in the cache, so every call counts)."""
        assert self.target is not None and self.budget is not None
        stand_in = "x" * prompt_chars
        self.budget.reserve = Budget.estimate(self.target, [
            r for ex in self.test_set for r in budget_requests(self.task, stand_in, ex, self.answer_tokens, worst_case=True)])

    def calls_left(self) -> int | None:
        """Calls a search may still spend, keeping the reserve for the final test evaluation."""
        if self.s.max_calls is None:
            return None
        assert self.budget is not None
        return self.s.max_calls - self.budget.spend().calls - self.budget.reserve.calls

    # ---------------------------------------------------------------- during the run

    def emit(self, event: Event) -> None:
        self.run_dir.append(event.to_json())
        self.on_event(event)

    def events(self) -> list[Event]:
        """The run's log so far, typed; a line that is not an event (another version's) is an error."""
        try:
            return [parse_event(e) for e in self.run_dir.events()]
        except (ValueError, TypeError) as exc:
            raise UserError(f"{self.run_dir.events_file} holds a line this version cannot read ({exc}): "
                            "use a new --out directory.") from None

    async def evaluate(self, prompt: str, examples: list[Example], split: str, which: str, *,
                       round_index: int | None = None, charge: bool = True, log: bool = True) -> EvalResult:
        """Score `prompt` with the target; when `charge`, the batch must fit the budget (with the
        reserve kept) or StopRun is raised before any call. Every call is checked again as it is
        made, whatever `charge` says; a call the budget refuses ends the batch with StopRun."""
        assert self.target is not None and self.budget is not None, "open_models() first"
        if charge:
            requests = [r for ex in examples
                        for r in budget_requests(self.task, prompt, ex, self.answer_tokens, model=self.target)]
            why = self.budget.refusal(self.target, requests)
            if why:
                raise StopRun(f"budget ({why})")
        what = f"round {round_index}: {which} on {split}" if round_index else f"{which} prompt on {split}"
        done = 0

        def tick(_trace) -> None:
            nonlocal done
            done += 1
            self.on_progress(what, done, len(examples))

        self.on_progress(what, 0, len(examples))
        try:
            result = await evaluate(self.task, self.target, prompt, examples, split=split,
                                    max_tokens=self.answer_tokens, on_done=tick)
        except BudgetExceeded as exc:
            raise StopRun(f"budget ({exc})") from None
        if log:
            self.emit(Eval(which=which, split=split, round=round_index, n=result.n, score=round(result.score, 4),
                           metrics=result.metrics, parse_failures=result.parse_failures, failures=result.failures))
        return result

    async def score_seed(self) -> tuple[EvalResult, EvalResult]:
        """The seed prompt on val and test; a budget that cannot cover both (and the reserve) is the
        user's error, found before any call."""
        assert self.target is not None and self.budget is not None
        requests = [r for ex in self.val_pool + self.test_set
                    for r in budget_requests(self.task, self.seed_prompt, ex, self.answer_tokens, model=self.target)]
        why = self.budget.refusal(self.target, requests)
        try:
            if why:
                raise StopRun(f"budget ({why})")
            val = await self.evaluate(self.seed_prompt, self.val_pool, "val", "seed")
            test = await self.evaluate(self.seed_prompt, self.test_set, "test", "seed")
        except StopRun as stop:
            await self.close()
            raise UserError(f"The budget cannot cover scoring the seed prompt on val and test, {stop}: "
                            "raise it or lower --val-size / --test-size.") from None
        return val, test

    # ---------------------------------------------------------------- the end

    async def finish(self, *, best_prompt: str, best_val: float, seed_val: float, seed_test: float, optimizer: str,
                     stop_reason: str, rounds: list[RoundRecord] | None = None,
                     warnings: list[str] | None = None) -> OptimizeResult:
        """Score the best prompt on test (paid from the reserve), write result.json, close the models."""
        assert self.target is not None and self.budget is not None
        self.budget.spend_reserve()
        try:
            best_test = await self.evaluate(best_prompt, self.test_set, "test", "best", charge=False)
        except StopRun as stop:
            await self.close()
            raise UserError(f"The reserve kept for scoring the best prompt on test fell short, {stop}; the best "
                            f"prompt is in {self.run_dir.path}: raise the budget and run the same command "
                            "again to score it.") from None
        self.run_dir.write_best(best_prompt)
        spend = self.budget.spend()
        usage = {**spend.to_json(), "this_process": self.target.accounting.to_json()}
        if self.judge is not None:
            usage["judge_this_process"] = self.judge.accounting.to_json()
        if self.writer is not None and self.writer is not self.target:
            usage["optimizer_model_this_process"] = self.writer.accounting.to_json()
        result = OptimizeResult(
            run_dir=str(self.run_dir.path), task=self.task.name, target=self.s.target, dlm=optimizer,
            seed_prompt=self.seed_prompt, best_prompt=best_prompt,
            val={"seed": round(seed_val, 4), "best": round(best_val, 4)},
            test={"seed": round(seed_test, 4), "best": round(best_test.score, 4)},
            rounds=rounds or [], stop_reason=stop_reason, calls=spend.calls, usage=usage,
            seconds=time.perf_counter() - self.start, settings=self.s.model_dump(), warnings=warnings or [])
        result.save(self.run_dir.result_file)
        self.emit(RunEnd(details=result.summary()))
        await self.close()
        return result

    async def close(self) -> None:
        for model in {id(m): m for m in self.models()}.values():
            await model.aclose()
