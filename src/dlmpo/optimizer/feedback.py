"""Feedback sources: turn scored traces into short critiques the DLM conditions on.

    metric  the task's own sentence: expected vs got (free)
    judge   a chat model writes one critique per trace, given the gold answer
    human   notes from a file, or typed at the terminal for a few shown traces
    none    traces carry their score only"""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from dlmpo.errors import UserError
from dlmpo.files import read_text
from dlmpo.lm import ChatModel, ChatRequest
from dlmpo.tasks import Trace

JUDGE_INSTRUCTION = (
    "You review answers of an assistant that follows a system prompt. Given the user's message, the "
    "assistant's answer and the correct answer, write ONE short sentence saying what the assistant did "
    "wrong (or right) and what general instruction would fix it. Do not repeat the user's message."
)


@dataclass
class Notes:
    notes: list[str | None]  # one per trace
    failures: list[str] = field(default_factory=list)  # why some notes fell back to the metric's sentence


class FeedbackSource(Protocol):
    name: str

    async def annotate(self, prompt: str, traces: list[Trace]) -> Notes: ...


class MetricFeedback:
    name = "metric"

    async def annotate(self, prompt, traces):
        return Notes([t.feedback for t in traces])


class NoFeedback:
    name = "none"

    async def annotate(self, prompt, traces):
        return Notes([None for _ in traces])


class JudgeFeedback:
    name = "judge"

    def __init__(self, judge: ChatModel, instruction: str = JUDGE_INSTRUCTION):
        self.judge = judge
        self.instruction = instruction

    async def annotate(self, prompt, traces):
        failures: list[str] = []

        async def one(t: Trace) -> str | None:
            content = (f"System prompt:\n{prompt}\n\nUser message:\n{t.user}\n\nAssistant answer:\n{t.output}\n\n"
                       f"Correct answer: {t.gold}\nScore: {t.score:g}\nAutomatic check: {t.feedback}")
            resp = await self.judge.chat(ChatRequest(
                messages=[{"role": "system", "content": self.instruction}, {"role": "user", "content": content}],
                max_tokens=80))
            if resp.error is not None or not resp.text.strip():
                failures.append(f"judge call failed: {resp.error}" if resp.error else "judge wrote nothing")
                return t.feedback
            return resp.text.strip()

        return Notes(list(await asyncio.gather(*(one(t) for t in traces))), failures)


class HumanFeedback:
    """Notes from a file (plain text: one note for every trace; JSONL: {example_id, note}), or,
    without a file, typed at the terminal for each shown trace (empty line = keep the metric's)."""

    name = "human"

    def __init__(self, notes_file: str | None):
        self.general: str | None = None
        self.by_example: dict[str, str] = {}
        if notes_file:
            path = Path(notes_file)
            text = read_text(path, "Human notes")
            if path.suffix == ".jsonl":
                for n, line in enumerate(text.splitlines(), 1):
                    if line.strip():
                        try:
                            row = json.loads(line)
                            self.by_example[str(row["example_id"])] = str(row["note"])
                        except (json.JSONDecodeError, KeyError, TypeError):
                            raise UserError(f"{path}, line {n}: expected {{\"example_id\", \"note\"}}.") from None
            else:
                self.general = text.strip()
        elif not sys.stdin.isatty():
            raise UserError("feedback 'human' needs a terminal or --human-notes FILE.")
        self.interactive = notes_file is None

    async def annotate(self, prompt, traces):
        notes: list[str | None] = []
        for t in traces:
            if self.interactive:
                print(f"\n--- {t.example_id} (score {t.score:g}, gold {t.gold})\n{t.user}\n>>> {t.output}")
                typed = await asyncio.to_thread(input, "your note (enter = metric feedback): ")
                notes.append(typed.strip() or t.feedback)
            else:
                note = self.by_example.get(t.example_id) or self.general
                notes.append(f"{t.feedback} Note: {note}" if note else t.feedback)
        return Notes(notes)


# the registry's builders (`optimizer.registry.FEEDBACK`): (settings, judge model, task) -> FeedbackSource
def metric(s, judge_model, task) -> MetricFeedback:
    return MetricFeedback()


def judge(s, judge_model, task) -> JudgeFeedback:
    assert judge_model is not None
    return JudgeFeedback(judge_model, getattr(task, "judge_instruction", JUDGE_INSTRUCTION))


def human(s, judge_model, task) -> HumanFeedback:
    return HumanFeedback(s.human_notes)


def none(s, judge_model, task) -> NoFeedback:
    return NoFeedback()
