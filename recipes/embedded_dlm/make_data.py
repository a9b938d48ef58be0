"""Offline training data for the embedded DLM: the optimizer's own canvases.

Each row is a canvas row for `dlmpo train` ({"prompt", "context"}): a system prompt (the text the
DLM learns to write) and the interaction traces the optimizer would show beside it. Sources, all
offline:

- task prompts: the training tasks' seed prompts and hand-written paraphrases (MRPC, SNLI and
  retail-intent, `training_tasks.py`; never SST-2 or SST-5, which are evaluation-only), often
  followed by an `## Additional instructions` section composed from generic guidance sentences
  (the optimizer's append format), with traces from the tasks' *train* rows, graded by the task
  itself (the gold label scores 1; a wrong label scores 0 with the task's feedback sentence);
- agent policies: τ-bench airline policy chunks, with the user/assistant turns of the recorded
  airline episodes as traces;
- English task descriptions from the lm-eval package (MIT; `pip download lm_eval==0.4.13`), with
  no traces;
- system prompts written by SmolLM2-135M-Instruct itself (`self_instruct.py`, committed as
  `data/self_instruct.jsonl`), with no traces.

Every row passes `training_tasks.evaluation_free`: no text about sentiment, movies or films (the
evaluation tasks' subject) from any source. Held out (never trained on, for the metrics): τ-bench
retail policy chunks, a tenth of the lm-eval descriptions, and the committed SST-5 canvases. An
existing `heldout.jsonl` in --out is kept as it is (the committed one is the campaign's
yardstick) and its prompts are dropped from train.

    python recipes/embedded_dlm/make_data.py --data-dir ../shared/data --out recipes/embedded_dlm/data
"""

from __future__ import annotations

import argparse
import json
import random
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from training_tasks import PARAPHRASES, evaluation_free, training_tasks

GUIDANCE = [
    "Reply with the label only, without any explanation.",
    "Do not repeat the question or add any other words.",
    "Answer with a single word in lower case.",
    "Base your answer on the overall meaning, not on single words.",
    "Ignore the length of the text and focus on what it says.",
    "If you are unsure, choose the label that best fits the whole text.",
    "Never answer with a sentence; the answer must be one of the listed labels.",
    "Do not explain your reasoning.",
    "Pay attention to negations such as not, never and hardly, which reverse the meaning.",
    "Words like but and however often introduce the part that matters most.",
    "Judge only from the text given, not from outside knowledge.",
    "Keep the exact spelling of the labels.",
    "A short answer is always better than a long one.",
    "Read the whole input before you answer.",
    "Check that your answer is one of the allowed labels before you reply.",
    "Treat every input on its own; earlier inputs do not matter.",
]


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    print(f"{path}: {len(rows)} rows")


def english(text: str) -> bool:
    words = re.findall(r"[a-z]+", text.lower())
    common = {"the", "and", "of", "to", "a", "is", "are", "with", "about", "or", "in", "you", "for", "whether", "if"}
    return len(words) >= 6 and sum(w in common for w in words) / len(words) >= 0.12


def lm_eval_descriptions(wheel: Path | None) -> list[str]:
    import yaml

    if wheel is None:
        folder = Path(tempfile.mkdtemp())
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "lm_eval==0.4.13", "-d",
                        str(folder)], check=True)
        wheel = next(folder.glob("lm_eval-*.whl"))
    found = set()
    with zipfile.ZipFile(wheel) as zf:
        for name in zf.namelist():
            if not (name.startswith("lm_eval/tasks/") and name.endswith(".yaml")):
                continue
            text = zf.read(name).decode("utf-8", "replace")
            match = re.search(r"^description:\s*(.*(?:\n[ \t]+.*)*)", text, re.M)
            if not match:
                continue
            try:
                desc = yaml.safe_load("d: " + match.group(1))["d"]
            except Exception:
                continue
            if isinstance(desc, str):
                desc = desc.strip()
                if desc.isascii() and 40 <= len(desc) <= 700 and "{{" not in desc and english(desc):
                    found.add(desc)
    return sorted(found)


def policy_chunks(path: Path, words: int = 90) -> list[str]:
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", path.read_text()) if len(p.split()) >= 5]
    chunks, current = [], []
    for p in paragraphs:
        current.append(p)
        if sum(len(c.split()) for c in current) >= words:
            chunks.append("\n\n".join(current))
            current = []
    if current:
        chunks.append("\n\n".join(current))
    return chunks


def episode_turns(trajectories: list[dict], episodes: range) -> list[dict]:
    items = []
    for ep in trajectories:
        if ep["task_id"] not in episodes:
            continue
        msgs = ep["traj"]
        for a, b in zip(msgs, msgs[1:]):
            if a["role"] == "user" and b["role"] == "assistant" and b.get("content"):
                items.append({"query": a["content"], "output": b["content"], "score": float(ep["reward"])})
    return items


def task_prompt(name: str, rng: random.Random) -> str:
    prompt = rng.choice(PARAPHRASES[name])
    if rng.random() < 0.6:
        added = rng.sample(GUIDANCE, rng.randint(1, 3))
        prompt += "\n\n## Additional instructions\n" + " ".join(added)
    return prompt


def task_traces(task, rows, rng: random.Random, n: int) -> list[dict]:
    items = []
    for ex in rng.sample(rows, n):
        wrong = rng.random() < 0.6  # the optimizer shows failures first
        output = rng.choice([lab for lab in task.labels if lab != ex.label]) if wrong else ex.label
        if rng.random() < 0.3:
            output = rng.choice(["The answer is {}.", "{}", "{}.", "I think it is {}."]).format(output)
        graded = task.grade(ex, output)
        item = {"query": task.user_message(ex), "output": output, "score": graded.score}
        if graded.score < 1:
            item["feedback"] = graded.feedback
        items.append(item)
    return items


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", default="../shared/data")
    ap.add_argument("--out", default="recipes/embedded_dlm/data")
    ap.add_argument("--lm-eval-wheel", type=Path, default=None, help="a downloaded lm_eval wheel (else pip download)")
    ap.add_argument("--task-rows", type=int, default=6000, help="task-prompt canvases per training task")
    ap.add_argument("--lm-eval", action=argparse.BooleanOptionalAction, default=True,
                    help="add the lm-eval task descriptions (needs the wheel, or pip download)")
    ap.add_argument("--self-instruct", type=Path, default=Path(__file__).parent / "data" / "self_instruct.jsonl",
                    help="rows written by self_instruct.py, added to train when the file is there")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    data, out = Path(args.data_dir), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(args.seed)
    train: list[dict] = []
    held_out: list[dict] = []

    for name, task in training_tasks(data, out / "tasks").items():
        rows = task.examples("train")
        for _ in range(args.task_rows):
            train.append({"prompt": task_prompt(name, rng), "context": task_traces(task, rows, rng, rng.randint(2, 5))})

    trajectories = json.loads((data / "tau/trajectories/gpt-4o-airline-trials01.json").read_text())
    airline_turns, other_turns = episode_turns(trajectories, range(0, 40)), episode_turns(trajectories, range(40, 50))
    for chunk in policy_chunks(data / "tau/airline/policy.md"):
        for _ in range(40):
            train.append({"prompt": chunk, "context": rng.sample(airline_turns, rng.randint(1, 3))})
    for chunk in policy_chunks(data / "tau/retail/policy.md"):
        held_out.append({"prompt": chunk, "context": rng.sample(other_turns, 2)})

    descriptions = lm_eval_descriptions(args.lm_eval_wheel) if args.lm_eval else []
    rng.shuffle(descriptions)
    cut = len(descriptions) // 10
    held_out += [{"prompt": d} for d in descriptions[:cut]]
    train += [{"prompt": d} for d in descriptions[cut:] for _ in range(3)]

    if args.self_instruct.is_file():
        train += read_jsonl(args.self_instruct)
    committed = out / "heldout.jsonl"
    if committed.is_file():  # the committed held-out set stays the yardstick whatever --task-rows draws
        held_out = read_jsonl(committed)
        unseen = {r["prompt"] for r in held_out}
        train = [r for r in train if r["prompt"] not in unseen]
    clean = [r for r in train if evaluation_free(r)]
    print(f"dropped {len(train) - len(clean)} rows that speak of the evaluation tasks' subject")
    train = clean
    rng.shuffle(train)
    write_jsonl(out / "train.jsonl", train)
    write_jsonl(out / "heldout.jsonl", held_out)


if __name__ == "__main__":
    main()
