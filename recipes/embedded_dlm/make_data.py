"""Offline training data for prompt infilling, from ../shared/data only (no network, no GPU).

Each example is a chat: system = a chunk of an agent policy or a task prompt, user = a real user
turn, assistant = the real reply that followed it. Train: airline-policy chunks with the
user/assistant turns of the recorded airline episodes 0-39 (both trials), plus the built-in task
prompts with SST-2/SNLI/MRPC train rows. Held-out: retail-policy chunks (prompt text never seen in
training) with the turns of episodes 40-49.

    python recipes/embedded_dlm/make_data.py --data-dir ../shared/data --out recipes/embedded_dlm/data
"""

from __future__ import annotations

import argparse
import json
import random
import re
from pathlib import Path

from dlmpo.tasks import get_task


def policy_chunks(path: Path, words: int = 70) -> list[str]:
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", path.read_text()) if len(p.split()) >= 8]
    chunks, current = [], []
    for p in paragraphs:
        current.append(p)
        if sum(len(c.split()) for c in current) >= words:
            chunks.append("\n\n".join(current))
            current = []
    if current:
        chunks.append("\n\n".join(current))
    return chunks


def turns(trajectories: list[dict], episodes: range) -> list[tuple[str, str]]:
    pairs = []
    for ep in trajectories:
        if ep["task_id"] not in episodes:
            continue
        msgs = ep["traj"]
        for a, b in zip(msgs, msgs[1:]):
            if a["role"] == "user" and b["role"] == "assistant" and b.get("content"):
                pairs.append((a["content"], b["content"]))
    return pairs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", default="../shared/data")
    ap.add_argument("--out", default="recipes/embedded_dlm/data")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    data, out = Path(args.data_dir), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(args.seed)
    trajectories = json.loads((data / "tau/trajectories/gpt-4o-airline-trials01.json").read_text())
    airline, retail = policy_chunks(data / "tau/airline/policy.md"), policy_chunks(data / "tau/retail/policy.md")

    train = [{"system": rng.choice(airline), "user": u, "assistant": a} for u, a in turns(trajectories, range(0, 40))]
    for name in ("sst2", "snli", "mrpc"):
        task = get_task(name, data)
        for ex in rng.sample(task.examples("train"), 60):
            train.append({"system": task.seed_prompt, "user": task.user_message(ex), "assistant": ex.label})
    held_out = [{"system": rng.choice(retail), "user": u, "assistant": a} for u, a in turns(trajectories, range(40, 50))]
    rng.shuffle(train)
    for name, rows in (("train.jsonl", train), ("heldout.jsonl", held_out)):
        (out / name).write_text("\n".join(json.dumps(r) for r in rows) + "\n")
        print(f"{out / name}: {len(rows)} examples")


if __name__ == "__main__":
    main()
