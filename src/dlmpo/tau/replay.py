"""Re-execute recorded τ-bench episodes on a fresh database and recompute their rewards.

A recorded episode is {task_id, trial, reward, info: {task}, traj: [OpenAI-style messages]}.
Every tool call is run again in order; its output is compared with the recorded tool message;
the reward is recomputed from the final database and the agent's replies."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dlmpo.errors import UserError
from dlmpo.files import read_json
from dlmpo.tau.domain import Domain, TauTask
from dlmpo.tau.environment import Environment
from dlmpo.tau.reward import GoldHashes, score
from dlmpo.tau.users import STOP


@dataclass
class EpisodeReplay:
    task_id: int
    trial: int
    recorded_reward: float
    reward: float
    tool_outputs: int
    tool_output_matches: int
    renamed_field_only: int  # differs only by the documented `province` -> `state` rename
    mismatches: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class ReplayReport:
    episodes: list[EpisodeReplay]

    def summary(self) -> dict[str, Any]:
        e = self.episodes
        return {
            "episodes": len(e),
            "reward_match": sum(x.reward == x.recorded_reward for x in e),
            "tool_outputs": sum(x.tool_outputs for x in e),
            "tool_output_match": sum(x.tool_output_matches for x in e),
            "tool_output_renamed_field_only": sum(x.renamed_field_only for x in e),
            "mean_reward": round(sum(x.reward for x in e) / len(e), 4) if e else 0.0,
        }


def load_trajectories(path: str | Path) -> list[dict[str, Any]]:
    path = Path(path)
    episodes = read_json(path, "Trajectory", expect=None)
    if not isinstance(episodes, list) or not all(isinstance(e, dict) and "traj" in e for e in episodes):
        raise UserError(f"{path}: expected a list of recorded episodes {{task_id, reward, info, traj}}.")
    return episodes


def _task_of(episode: dict[str, Any], domain: Domain) -> TauTask:
    raw = (episode.get("info") or {}).get("task")
    if raw is None:  # fall back to the domain's own task list
        return domain.tasks["test"][episode["task_id"]]
    return TauTask.from_json(domain.name, "recorded", int(episode.get("task_id", 0)), raw)


def replay_episode(episode: dict[str, Any], domain: Domain, gold: GoldHashes) -> EpisodeReplay:
    task = _task_of(episode, domain)
    env = Environment(domain)
    replies: list[str] = []
    outputs: dict[str, str] = {}  # tool_call_id -> our output
    n = matches = renamed = 0
    mismatches: list[dict[str, Any]] = []
    finished = False
    for message in episode["traj"]:
        role = message.get("role")
        if role == "assistant":
            calls = message.get("tool_calls") or []
            if calls:
                call = calls[0]  # as upstream: only the first call of a turn is executed
                fn = call["function"]
                outputs[call["id"]] = env.execute(fn["name"], fn.get("arguments") or "{}")
                finished = finished or env.is_terminal(fn["name"])
            elif message.get("content"):
                replies.append(message["content"])
        elif role == "tool":
            ours = outputs.get(message.get("tool_call_id"))
            recorded = message.get("content") or ""
            n += 1
            if ours == recorded:
                matches += 1
            elif ours is not None and ours == recorded.replace('"province":', '"state":'):
                renamed += 1
            else:
                mismatches.append({"tool": message.get("name"), "recorded": recorded[:200], "ours": (ours or "")[:200]})
        elif role == "user" and STOP in (message.get("content") or ""):
            finished = True
    reward = score(task, env.hash(), gold(task), replies, truncated=not finished)
    return EpisodeReplay(int(episode.get("task_id", -1)), int(episode.get("trial", 0)), float(episode.get("reward", 0.0)),
                         reward.reward, n, matches, renamed, mismatches)


def replay(path: str | Path, domain: Domain) -> ReplayReport:
    gold = GoldHashes(domain)
    episodes = []
    for i, e in enumerate(load_trajectories(path)):
        try:
            episodes.append(replay_episode(e, domain, gold))
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
            raise UserError(f"{path}: recorded episode {i} is malformed ({type(exc).__name__}: {exc}).") from None
    return ReplayReport(episodes)
