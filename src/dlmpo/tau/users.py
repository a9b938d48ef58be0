"""User simulators: an LLM playing the customer from the hidden task instruction, and a scripted
user for offline tests. Both end the conversation by saying ###STOP###."""

from __future__ import annotations

import re
from typing import Protocol

from dlmpo.lm import ChatModel, ChatRequest
from dlmpo.tau.domain import TauTask

STOP = "###STOP###"
GREETING = "Hi! How can I help you today?"

USER_SYSTEM = """You play a customer talking to a customer-service agent. Your goal and facts:

{instruction}

Rules:
- Write one short message at a time, as the customer would, in plain sentences.
- Do not reveal the whole goal at once; give details only when the agent needs them.
- Do not invent facts (ids, numbers, names) that your goal does not give.
- Never act as the agent and never describe these rules.
- When your goal is met, or cannot be met, write only ###STOP### to end the conversation."""


class UserSimulator(Protocol):
    failed: str | None  # why the simulated user is gone, when its own model call failed

    async def start(self, task: TauTask, trial: int) -> str: ...

    async def reply(self, agent_message: str) -> str: ...

    def known_opening(self, task: TauTask, trial: int) -> str | None:
        """The opening message, when it is known without a paid call; None otherwise."""
        ...


class LLMUser:
    """A chat model holds the customer's side; the agent's messages are its user turns."""

    def __init__(self, model: ChatModel, temperature: float = 0.0, max_tokens: int = 200):
        self.model, self.temperature, self.max_tokens = model, temperature, max_tokens
        self.messages: list[dict] = []
        self.trial = 0
        self.failed: str | None = None

    async def _say(self) -> str:
        response = await self.model.chat(self._request(self.messages, self.trial))
        if response.error is not None:  # the simulated user is gone: end the episode
            self.failed = response.error
            return STOP
        text = response.text.strip() or STOP
        self.messages.append({"role": "assistant", "content": text})
        return text

    @staticmethod
    def _opening_messages(task: TauTask) -> list[dict]:
        return [{"role": "system", "content": USER_SYSTEM.format(instruction=task.instruction)},
                {"role": "user", "content": GREETING}]

    def _request(self, messages: list[dict], trial: int) -> ChatRequest:
        return ChatRequest(messages=list(messages), temperature=self.temperature, max_tokens=self.max_tokens,
                           sample_index=trial)

    async def start(self, task: TauTask, trial: int) -> str:
        self.trial = trial
        self.messages = self._opening_messages(task)
        return await self._say()

    def known_opening(self, task: TauTask, trial: int) -> str | None:
        """The opening this model wrote before, from the run's cache."""
        hit = self.model.cached(self._request(self._opening_messages(task), trial))
        return None if hit is None else hit.text.strip() or STOP

    async def reply(self, agent_message: str) -> str:
        self.messages.append({"role": "user", "content": agent_message})
        return await self._say()


def _first_person(text: str) -> str:
    swaps = [(r"\b[Yy]ou are\b", "I am"), (r"\b[Yy]ou were\b", "I was"), (r"\bYour\b", "My"), (r"\byour\b", "my"),
             (r"\byourself\b", "myself"), (r"\b(to|for|with|at|from|than|by|of|about|tell|help|give) you\b", r"\1 me"),
             (r"\b[Yy]ou\b", "I")]
    for pattern, repl in swaps:
        text = re.sub(pattern, repl, text)
    return text


class ScriptedUser:
    """Deterministic and free: states the goal (in the first person) with the user id, confirms
    once when asked, then stops. A fixture for offline runs, not a realistic customer."""

    failed = None

    def __init__(self, max_turns: int = 3):
        self.max_turns = max_turns
        self.turn = 0

    async def start(self, task: TauTask, trial: int) -> str:
        self.turn = 1
        return self.known_opening(task, trial)

    def known_opening(self, task: TauTask, trial: int) -> str:
        first = re.split(r"(?<=[.!?])\s+", task.instruction.strip())
        goal = " ".join(s for s in first[:3] if s)
        return f"Hi. My user id is {task.user_id}. {_first_person(goal)}"

    async def reply(self, agent_message: str) -> str:
        self.turn += 1
        if self.turn >= self.max_turns:
            return STOP
        if re.search(r"\b(confirm|proceed|yes or no|\(yes\)|shall I|would you like)\b", agent_message, re.I):
            return "Yes, please go ahead."
        return "Please take care of it with the details I gave."
