"""Run a system prompt over examples: concurrent target calls -> traces and scores."""

from __future__ import annotations

import asyncio
from typing import Callable

from dlmpo.lm import ChatModel, ChatRequest
from dlmpo.tasks import EvalResult, Example, Task, Trace, is_episodic


def answer_cap(task: Task, requested: int | None) -> int:
    """The target's answer length cap: the one asked for, else the task's own (16 tokens for a label)."""
    return requested or getattr(task, "default_answer_tokens", 16)


def budget_requests(task: Task, prompt: str, example: Example, max_tokens: int, *, worst_case: bool = False,
                    model: ChatModel | None = None) -> list[ChatRequest]:
    """The calls one example is expected to cost, for budget checks before a batch runs; with
    `worst_case`, the most it can cost (an episode's step limit), for the test reserve. With
    `model`, an episode that model already ran costs nothing (a classification request is looked up
    in the cache by the budget itself)."""
    if is_episodic(task):
        return task.budget_requests(prompt, example, max_tokens, worst_case=worst_case, agent=model)
    return [build_request(task, prompt, example, max_tokens)]


def build_request(task: Task, prompt: str, example: Example, max_tokens: int) -> ChatRequest:
    messages = [{"role": "user", "content": task.user_message(example)}]
    if prompt.strip():
        messages.insert(0, {"role": "system", "content": prompt})
    return ChatRequest(messages=messages, temperature=0.0, max_tokens=max_tokens)


async def evaluate(
    task: Task,
    model: ChatModel,
    prompt: str,
    examples: list[Example],
    *,
    split: str = "",
    max_tokens: int = 16,
    on_done: Callable[[Trace], None] | None = None,
) -> EvalResult:
    async def one(example: Example) -> Trace:
        request = build_request(task, prompt, example, max_tokens)
        response = await model.chat(request)
        if response.error is not None:
            trace = Trace(example.id, request.messages[-1]["content"], "", None, example.label, 0.0,
                          f"The target failed: {response.error}.", error=response.error)
        else:
            graded = task.grade(example, response.text)
            trace = Trace(example.id, request.messages[-1]["content"], response.text, graded.prediction,
                          example.label, graded.score, graded.feedback, cached=response.cached)
        if on_done is not None:
            on_done(trace)
        return trace

    if is_episodic(task):
        traces = await task.run_examples(model, prompt, examples, max_tokens=max_tokens, on_done=on_done)
    else:
        # every call runs to its end before a refused one stops the batch: nothing paid is left unrecorded
        outcomes = await asyncio.gather(*(one(ex) for ex in examples), return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
        traces = list(outcomes)
    metrics = task.metrics(examples, [t.prediction for t in traces])
    return EvalResult(task.name, split, prompt, traces, metrics)
