"""The tool-calling agent loop of τ-bench over our chat protocol.

The policy is the system prompt; temperature 0; at most `max_steps` agent actions (a tool call or
a reply); only the first tool call of a turn is executed, as upstream; transfer_to_human_agents
ends the episode; a step limit reached scores 0."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dlmpo.lm import ChatModel, ChatRequest, Usage
from dlmpo.tau.domain import Action, Domain, TauTask
from dlmpo.tau.environment import Environment
from dlmpo.tau.reward import GoldHashes, Reward, score
from dlmpo.tau.users import STOP, UserSimulator


@dataclass
class Step:
    kind: str  # "tool", "reply" or "user"
    text: str  # the reply / user message, or the tool's output
    tool: str | None = None
    arguments: str | None = None


@dataclass
class Episode:
    task: TauTask
    trial: int
    steps: list[Step]
    reward: Reward
    messages: list[dict[str, Any]]
    ended_by: str  # "user stop", "transfer", "step limit", "agent error", "user error"
    usage: Usage = field(default_factory=Usage)
    error: str | None = None
    actions: list[Action] = field(default_factory=list)  # the tool calls that ran, arguments parsed

    @property
    def agent_steps(self) -> int:
        return sum(s.kind in ("tool", "reply") for s in self.steps)


def opening_messages(policy: str, first: str) -> list[dict[str, Any]]:
    """The agent's conversation before its first call: the policy (when there is one) and the user's opening."""
    messages: list[dict[str, Any]] = [{"role": "user", "content": first}]
    if policy.strip():
        messages.insert(0, {"role": "system", "content": policy})
    return messages


def agent_request(domain: Domain, messages: list[dict[str, Any]], max_tokens: int, trial: int) -> ChatRequest:
    return ChatRequest(messages=list(messages), tools=domain.tool_schemas, temperature=0.0, max_tokens=max_tokens,
                       sample_index=trial)


async def run_episode(domain: Domain, task: TauTask, agent: ChatModel, user: UserSimulator, policy: str, *,
                      gold: GoldHashes, max_steps: int = 30, max_tokens: int = 512, trial: int = 0) -> Episode:
    env = Environment(domain)
    first = await user.start(task, trial)
    messages = opening_messages(policy, first)
    steps = [Step("user", first)]
    replies: list[str] = []
    usage = Usage()

    def user_ended() -> tuple[str, str | None]:  # a simulated user whose own model call failed breaks the episode
        return ("user error", user.failed) if user.failed else ("user stop", None)

    ended_by, error = user_ended() if STOP in first else ("step limit", None)
    for _ in range(0 if STOP in first else max_steps):
        response = await agent.chat(agent_request(domain, messages, max_tokens, trial))
        usage.add(response.usage)
        if response.error is not None:
            ended_by, error = "agent error", response.error
            break
        if response.tool_calls:
            call = response.tool_calls[0]
            messages.append({"role": "assistant", "content": response.text or None, "tool_calls": [
                {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}]})
            output = env.execute(call.name, call.arguments)
            messages.append({"role": "tool", "tool_call_id": call.id, "name": call.name, "content": output})
            steps.append(Step("tool", output, call.name, call.arguments))
            if env.is_terminal(call.name):
                ended_by = "transfer"
                break
            continue
        text = response.text
        replies.append(text)
        messages.append({"role": "assistant", "content": text})
        steps.append(Step("reply", text))
        said = await user.reply(text)
        steps.append(Step("user", said))
        if STOP in said:
            ended_by, error = user_ended()
            break
        messages.append({"role": "user", "content": said})
    reward = score(task, env.hash(), gold(task), replies, truncated=ended_by == "step limit", broken=error is not None)
    return Episode(task, trial, steps, reward, messages, ended_by, usage, error, env.actions)


def pass_hat_k(successes: dict[str, list[bool]], k: int) -> float:
    """τ-bench's pass^k: the chance that k trials of a task all succeed, averaged over tasks
    (unbiased from n ≥ k trials per task: C(c, k) / C(n, k))."""
    from math import comb

    rows = [comb(sum(s), k) / comb(len(s), k) for s in successes.values() if len(s) >= k]
    return sum(rows) / len(rows) if rows else 0.0


def episode_json(episode: Episode) -> dict[str, Any]:
    return {"task": episode.task.id, "trial": episode.trial, "reward": episode.reward.to_json(),
            "ended_by": episode.ended_by, "error": episode.error, "agent_steps": episode.agent_steps,
            "usage": {"prompt_tokens": episode.usage.prompt_tokens, "completion_tokens": episode.usage.completion_tokens},
            "messages": episode.messages}
