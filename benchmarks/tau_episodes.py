"""τ-bench harness: episodes/s and tokens per episode, and what one optimization round on airline
costs with a gpt-4o-mini-priced target.

GPT-4o's 100 recorded airline episodes are played again through the real agent loop: a local
OpenAI-compatible HTTP server answers each agent call with the recorded assistant message, and a
recorded user replays the customer's turns. Pass 1 answers instantly (harness throughput: HTTP
client, tools, database, reward); pass 2 counts the tokens of every request the agent sent with
the SmolLM2 tokenizer (a stand-in for GPT-4o's; counts differ by a few per cent).

Run: python -m benchmarks.tau_episodes [--data-dir ../shared/data]"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from common import report

from dlmpo.catalog import get_task
from dlmpo.lm import open_target
from dlmpo.tau.agent import run_episode
from dlmpo.tau.domain import TauTask
from dlmpo.tau.reward import GoldHashes
from dlmpo.tau.users import STOP

GPT_4O_MINI = (0.15, 0.60)  # USD per 1M input / output tokens


class RecordedUser:
    failed = None

    def __init__(self, turns: list[str]):
        self.turns = list(turns)

    async def start(self, task, trial):
        return self.turns.pop(0) if self.turns else STOP

    async def reply(self, agent_message):
        return self.turns.pop(0) if self.turns else STOP


def serve(episodes: list[dict], count_tokens):
    """Answer an agent request with the recorded assistant message that follows its history."""
    by_opening: dict[str, list[dict]] = {}
    for e in episodes:  # two trials of a task may open alike: the whole history picks the episode
        by_opening.setdefault(next(m["content"] for m in e["traj"] if m["role"] == "user"), []).append(e)

    def recorded_for(msgs):
        same = by_opening[next(m["content"] for m in msgs if m["role"] == "user")]
        return next(e["traj"] for e in same if all(  # tool outputs may differ by the province/state rename
            a.get("role") == b.get("role") and (a.get("role") == "tool" or a.get("content") == b.get("content"))
            for a, b in zip(msgs, e["traj"])))

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["content-length"])))
            msgs = body["messages"]
            recorded = recorded_for(msgs)
            reply = recorded[len(msgs)] if len(msgs) < len(recorded) else {"role": "assistant", "content": "Bye."}
            message = {"role": "assistant", "content": reply.get("content")}
            if reply.get("tool_calls"):
                message["tool_calls"] = reply["tool_calls"][:1]
            usage = {"prompt_tokens": 0, "completion_tokens": 0}
            if count_tokens:
                usage = {"prompt_tokens": count_tokens(json.dumps(body["tools"]) + json.dumps(msgs)),
                         "completion_tokens": count_tokens(json.dumps(message))}
            data = json.dumps({"choices": [{"message": message, "finish_reason": "stop"}], "usage": usage}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


async def play(domain, episodes, url):
    model = open_target(f"{url}#recorded-gpt-4o", use_cache=False, concurrency=32)
    gold = GoldHashes(domain)

    async def one(e):
        task = TauTask.from_json("airline", "recorded", e["task_id"], e["info"]["task"])
        turns = [m["content"] for m in e["traj"] if m["role"] == "user"]
        return await run_episode(domain, task, model, RecordedUser(turns), e["traj"][0]["content"], gold=gold)

    out = await asyncio.gather(*(one(e) for e in episodes))
    await model.aclose()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", default="../shared/data")
    args = ap.parse_args()
    data = Path(args.data_dir)
    domain = get_task("tau-airline", data).domain
    episodes = json.loads((data / "tau/trajectories/gpt-4o-airline-trials01.json").read_text())
    from transformers import AutoTokenizer

    from dlmpo.embedded_weights import embedded_model_dir

    tok = AutoTokenizer.from_pretrained(str(embedded_model_dir()))
    rows = []
    for name, counter in (("instant server", None), ("server counting tokens", lambda s: len(tok(s)["input_ids"]))):
        httpd = serve(episodes, counter)
        t0 = time.perf_counter()
        played = asyncio.run(play(domain, episodes, f"http://127.0.0.1:{httpd.server_address[1]}/v1"))
        seconds = time.perf_counter() - t0
        httpd.shutdown()
        calls = sum(e.agent_steps for e in played)
        prompt = sum(e.usage.prompt_tokens for e in played) / len(played)
        completion = sum(e.usage.completion_tokens for e in played) / len(played)
        rows.append({"pass": name, "episodes": len(played), "seconds": round(seconds, 2),
                     "episodes_per_s": round(len(played) / seconds, 1), "agent_calls_per_episode": round(calls / len(played), 2),
                     "prompt_tokens_per_episode": round(prompt), "completion_tokens_per_episode": round(completion, 1),
                     "mean_reward": round(sum(e.reward.reward for e in played) / len(played), 4)})
    per_episode = rows[-1]
    cost_episode = (per_episode["prompt_tokens_per_episode"] * GPT_4O_MINI[0]
                    + per_episode["completion_tokens_per_episode"] * GPT_4O_MINI[1]) / 1e6
    # one round with the defaults on tau-airline: 8 trace episodes, 4 candidates + incumbent on the
    # val minibatch (all 10 carved val tasks), and one challenger on the full val pool (10)
    round_episodes = 8 + (4 + 1) * 10 + 10
    notes = {"cost_per_episode_usd": round(cost_episode, 5), "episodes_per_round": round_episodes,
             "round_cost_usd": round(cost_episode * round_episodes, 4),
             "price": "gpt-4o-mini $0.15/M in, $0.60/M out; agent calls only (the user simulator's calls are extra)",
             "tokenizer": "SmolLM2 (GPT-4o's differs by a few per cent)"}
    report("tau_episodes", rows, notes)
    print(json.dumps(notes, indent=1))


if __name__ == "__main__":
    sys.exit(main())
