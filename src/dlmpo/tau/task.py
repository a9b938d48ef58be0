"""τ-bench airline and retail as dlmpo tasks: an example is a scenario, its run is a whole
episode (agent + simulated user + tools), and its score is the τ-bench reward."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Callable

from dlmpo.lm import ChatModel, ChatRequest
from dlmpo.tasks.base import EpisodicTask, Example, SplitSet, carve
from dlmpo.tasks.traces import Trace
from dlmpo.tau.agent import Episode, agent_request, opening_messages, pass_hat_k, run_episode
from dlmpo.tau.domain import Domain, TauTask, load_domain
from dlmpo.tau.reward import GoldHashes
from dlmpo.tau.traces import JUDGE_INSTRUCTION, to_trace
from dlmpo.tau.users import LLMUser, ScriptedUser, UserSimulator

TAU_TASKS = {"tau-airline": "airline", "tau-retail": "retail"}
EXPECTED_AGENT_CALLS = 12  # per episode, for budget checks before a batch runs (GPT-4o averages ~11 on airline)
USER_OPENING_CALLS = 1  # a chat model playing the user writes the opening message, then one reply per agent reply


def tau_splits(domain: Domain, seed: int = 0) -> SplitSet:
    def rows(split: str) -> list[Example]:
        return [Example(t.id, {"instruction": t.instruction, "user_id": t.user_id}, "") for t in domain.tasks.get(split, [])]

    if "train" in domain.tasks:
        return SplitSet.from_available({s: rows(s) for s in domain.tasks}, f"tau-{domain.name}", seed)
    every = rows("test")
    parts = carve(every, {"train": 0.3, "val": 0.2, "test": 0.5}, seed)
    note = (f"tau-{domain.name}: only {len(every)} test tasks exist; carved a deterministic optimization split "
            f"train {len(parts['train'])} / val {len(parts['val'])} and kept {len(parts['test'])} as held-out test.")
    return SplitSet(parts["train"], parts["val"], parts["test"], [note])


class TauBenchTask(EpisodicTask):
    labels = None
    default_answer_tokens = 512
    judge_instruction = JUDGE_INSTRUCTION

    def __init__(self, domain: Domain, split_seed: int = 0, max_steps: int = 30):
        self.domain = domain
        self.name = f"tau-{domain.name}"
        self.seed_prompt = domain.policy
        self.max_steps = max_steps
        self.splits = tau_splits(domain, split_seed)
        self._by_id = {t.id: t for tasks in domain.tasks.values() for t in tasks}
        self._gold = GoldHashes(domain)
        self.trials = 1  # episodes per example in run_examples (pass^k needs k)
        self._user_model: ChatModel | None = None  # None: the scripted user
        self.episodes: list[Episode] = []  # of the last run_examples call

    @property
    def notes(self) -> list[str]:
        return self.splits.notes

    def bind_user_model(self, model: ChatModel | None) -> None:
        """None keeps the scripted user (offline, free); a chat model plays the customer."""
        self._user_model = model

    def _make_user(self) -> UserSimulator:
        return ScriptedUser() if self._user_model is None else LLMUser(self._user_model)

    def examples(self, split: str) -> list[Example]:
        return self.splits.get(split)

    def scenario(self, example: Example) -> TauTask:
        return self._by_id[example.id]

    def user_message(self, example: Example) -> str:
        return example.inputs["instruction"]

    def metrics(self, examples: list[Example], predictions: list[str | None]) -> dict[str, float]:
        """Mean reward, and pass^k for k up to the trials run (predictions come trial after trial)."""
        n = len(predictions)
        if not n:
            return {"reward": 0.0}
        trials = n // len(examples)
        by_example = {ex.id: [p == "success" for p in predictions[i::len(examples)]] for i, ex in enumerate(examples)}
        return {"reward": sum(p == "success" for p in predictions) / n,
                **{f"pass^{k}": pass_hat_k(by_example, k) for k in range(1, trials + 1)}}

    def budget_requests(self, prompt: str, example: Example, max_tokens: int, *, worst_case: bool = False,
                        agent: ChatModel | None = None) -> list[ChatRequest]:
        """Stand-ins for an episode's calls. For the check before a batch, the expected agent calls
        (EXPECTED_AGENT_CALLS, at most max_steps); with `worst_case` (a reserve that must never fall
        short), every call an episode may make: max_steps agent calls and, when a chat model plays
        the user, its opening and one reply per agent step. With `agent`, an episode whose first
        agent call is in that model's cache was run before and is counted as free (the budget's
        check before each call still holds if it was cut short)."""
        if agent is not None and self._ran_before(agent, prompt, example, max_tokens):
            return []
        messages = [{"role": "system", "content": prompt}, {"role": "user", "content": self.user_message(example)}]
        agent_calls = self.max_steps if worst_case else min(EXPECTED_AGENT_CALLS, self.max_steps)
        user = self.max_steps + USER_OPENING_CALLS if worst_case and self._user_model is not None else 0
        return [ChatRequest(messages=messages, tools=self.domain.tool_schemas, max_tokens=max_tokens, sample_index=-1 - i)
                for i in range(agent_calls + user)]

    def _ran_before(self, agent: ChatModel, prompt: str, example: Example, max_tokens: int) -> bool:
        scenario = self.scenario(example)
        first = self._make_user().known_opening(scenario, 0)
        if first is None:
            return False
        return agent.cached(agent_request(self.domain, opening_messages(prompt, first), max_tokens, 0)) is not None

    async def run_examples(self, model: ChatModel, prompt: str, examples: list[Example], *, max_tokens: int,
                           on_done: Callable[[Trace], None] | None = None) -> list[Trace]:
        """One episode per example and trial, trial after trial (each trial has its own cache entries)."""
        async def one(example: Example, trial: int) -> tuple[Episode, Trace]:
            episode = await run_episode(self.domain, self.scenario(example), model, self._make_user(), prompt,
                                        gold=self._gold, max_steps=self.max_steps, max_tokens=max_tokens, trial=trial)
            trace = to_trace(self.domain, episode)
            if on_done is not None:
                on_done(trace)
            return episode, trace

        pairs = [p for trial in range(self.trials) for p in await asyncio.gather(*(one(ex, trial) for ex in examples))]
        self.episodes = [p[0] for p in pairs]
        return [p[1] for p in pairs]


def load_tau_task(name: str, data_dir: str | Path | None, split_seed: int = 0) -> TauBenchTask:
    return TauBenchTask(load_domain(TAU_TASKS[name], data_dir), split_seed)
