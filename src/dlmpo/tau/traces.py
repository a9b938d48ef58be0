"""Episodes as compact optimizer traces: the customer's goal, the agent's database actions with
short results, its final reply, the reward and the check that failed, small enough for the
DLM canvas (which clips each field from the end)."""

from __future__ import annotations

import json
from typing import Any

from dlmpo.tasks.traces import Trace
from dlmpo.tau.agent import Episode
from dlmpo.tau.domain import Domain

JUDGE_INSTRUCTION = (
    "You audit a customer-service agent whose system prompt is its domain policy. Given the customer's goal, "
    "what the agent did (tool calls with results, replies), the expected database actions and the check that "
    "failed, write ONE or two short sentences: which rule of the policy the agent broke or missed (quote or name "
    "it), and what general instruction in the policy would have prevented it. Do not mention this customer's "
    "ids, names or amounts."
)


def _clip(text: str, n: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 1] + "…"


def call_text(name: str, arguments: str | dict[str, Any] | None, limit: int = 140) -> str:
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except json.JSONDecodeError:
            return _clip(f"{name}({arguments})", limit)
    args = ", ".join(f"{k}={json.dumps(v, separators=(',', ':'))}" for k, v in (arguments or {}).items())
    return _clip(f"{name}({args})", limit)


def result_text(output: str) -> str:
    if output.startswith(("Error", "Unknown action")):
        return _clip(output, 90)
    try:
        parsed = json.loads(output)
    except json.JSONDecodeError:
        return _clip(output, 60) or "ok"
    if isinstance(parsed, list):
        return f"{len(parsed)} results"
    return "ok"


def describe(domain: Domain, episode: Episode) -> str:
    """A compact transcript of one episode."""
    lines: list[str] = []
    lookups = 0
    for step in (s for s in episode.steps if s.kind == "tool"):
        if step.tool == "transfer_to_human_agents":
            lines.append("transferred to a human agent")
        elif step.tool in domain.write_tools:
            lines.append(f"{call_text(step.tool, step.arguments)} -> {result_text(step.text)}")
        elif step.text.startswith(("Error", "Unknown action")):
            lines.append(f"{call_text(step.tool or '?', step.arguments, 80)} -> {result_text(step.text)}")
        else:
            lookups += 1
    replies = [s.text for s in episode.steps if s.kind == "reply"]
    head = f"{episode.agent_steps} steps, {lookups} lookups, ended by {episode.ended_by}."
    body = " | ".join(lines) if lines else "no database action"
    final = f"Final reply: {_clip(replies[-1], 240)}" if replies else "No reply."
    return f"{head} Actions: {body}. {final}"


def feedback(domain: Domain, episode: Episode) -> str:
    r = episode.reward
    if episode.error is not None:
        return f"Failed: the episode broke off ({episode.ended_by}: {_clip(episode.error, 100)})."
    if r.truncated:
        return "Failed: the agent used every step without finishing the conversation."
    if r.reward == 1.0:
        return "Succeeded: the database matches the expected outcome and every required fact was stated."
    parts = []
    if not r.database_ok:
        done = [a for a in episode.actions if a.name in domain.write_tools]
        gold = [a for a in episode.task.actions if a.name in domain.write_tools]
        missing = [a for a in gold if a not in done]
        extra = [a for a in done if a not in gold]
        text = "Failed database check: the final database differs from the expected outcome."
        if missing:
            text += " Expected but not done: " + "; ".join(call_text(a.name, a.kwargs, 120) for a in missing[:2]) + "."
        if extra:
            text += " Done but not expected: " + "; ".join(call_text(a.name, a.kwargs, 120) for a in extra[:2]) + "."
        parts.append(text)
    if r.missing_outputs:
        parts.append("Failed output check: the agent never told the customer " + ", ".join(r.missing_outputs) + ".")
    return " ".join(parts)


def gold_text(episode: Episode, domain: Domain) -> str:
    gold = [call_text(a.name, a.kwargs, 120) for a in episode.task.actions if a.name in domain.write_tools]
    text = "expected actions: " + ("; ".join(gold) if gold else "none (no database change)")
    if episode.task.outputs:
        text += "; facts to state: " + ", ".join(episode.task.outputs)
    return text


def to_trace(domain: Domain, episode: Episode) -> Trace:
    goal = "Customer goal: " + _clip(episode.task.instruction, 700)
    return Trace(example_id=episode.task.id, user=goal, output=describe(domain, episode),
                 prediction="success" if episode.reward.reward == 1.0 else "failure",
                 gold=gold_text(episode, domain), score=episode.reward.reward, feedback=feedback(domain, episode),
                 error=episode.error)
