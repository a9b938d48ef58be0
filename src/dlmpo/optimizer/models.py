"""The chat models of one run's roles and the one budget over them: `async with Models.open(...)`
opens each model once (a model in two roles is one model, paid once) and closes them all."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dlmpo.lm import ChatModel, open_target
from dlmpo.lm.budget import Budget
from dlmpo.lm.pricing import PriceTable
from dlmpo.optimizer.registry import FEEDBACK
from dlmpo.optimizer.settings import OptimizeSettings
from dlmpo.tasks import Task, is_episodic


@dataclass(frozen=True)
class Models:
    target: ChatModel
    judge: ChatModel | None  # the feedback judge
    writer: ChatModel | None  # the chat model that writes prompts (AR, TextGrad, peers)
    user: ChatModel | None  # τ-bench's simulated customer, when it is a chat model
    budget: Budget  # every model's, checked before every attempt

    @classmethod
    def open(cls, settings: OptimizeSettings, task: Task, calls_db: Path, *, writer: bool) -> Models:
        """Target, judge (feedback judge), τ-bench user model (bound to the task), and the writer
        when asked, all caching their calls in the run's `calls_db`."""
        prices = PriceTable.from_file(settings.prices) if settings.prices else None
        kw = dict(cache_path=calls_db, concurrency=settings.concurrency, rpm=settings.rpm, tpm=settings.tpm, prices=prices)
        target = open_target(settings.target, **kw)
        judge = open_target(settings.judge, **kw) if FEEDBACK[settings.feedback].judge and settings.judge else None
        user = None
        if is_episodic(task):
            user = None if settings.user_model == "scripted" else (
                target if settings.user_model == settings.target else open_target(settings.user_model, **kw))
            task.bind_user_model(user)
        chat_writer = None
        if writer:
            chat_writer = target if settings.optimizer_model == settings.target else open_target(settings.optimizer_model, **kw)
        roles = [m for m in (target, judge, chat_writer, user) if m]
        budget = Budget(roles, max_calls=settings.max_calls, max_cost=settings.max_cost, max_tokens=settings.max_tokens)
        return cls(target, judge, chat_writer, user, budget)

    async def __aenter__(self) -> Models:
        return self

    async def __aexit__(self, *exc_info) -> None:
        for model in {id(m): m for m in (self.target, self.judge, self.writer, self.user) if m}.values():
            await model.aclose()

    def calls_left(self) -> int | None:
        """Calls a search may still spend, keeping the budget's reserve for the final test evaluation."""
        if self.budget.max_calls is None:
            return None
        return self.budget.max_calls - self.budget.spend().calls - self.budget.reserve.calls

    def usage(self) -> dict:
        """The run's spend (this process and earlier ones), and what each role paid in this process."""
        usage = {**self.budget.spend().to_json(), "this_process": self.target.accounting.to_json()}
        if self.judge is not None:
            usage["judge_this_process"] = self.judge.accounting.to_json()
        if self.writer is not None and self.writer is not self.target:
            usage["optimizer_model_this_process"] = self.writer.accounting.to_json()
        return usage
