"""Offline training data for the embedded DLM: the optimizer's own canvases.

Each row is a canvas row for `dlmpo train` ({"prompt", "context"}): a system prompt (the text the
DLM learns to write) and the interaction traces the optimizer would show beside it. Sources, all
offline:

- task prompts: the built-in tasks' seed prompts and hand-written paraphrases, often followed by
  an `## Additional instructions` section composed from hand-written guidance sentences (the
  optimizer's append format), with traces from the tasks' *train* rows, graded by the task itself
  (the gold label scores 1; a wrong label scores 0 with the task's feedback sentence);
- agent policies: τ-bench airline policy chunks, with the user/assistant turns of the recorded
  airline episodes as traces;
- English task descriptions from the lm-eval package (MIT; `pip download lm_eval==0.4.13`), with
  no traces;
- system prompts written by SmolLM2-135M-Instruct itself (`self_instruct.py`, committed as
  `data/self_instruct.jsonl`), with no traces.

Held out (never trained on, for the metrics): the SST-5 task and its prompts, τ-bench retail
policy chunks, a tenth of the lm-eval descriptions. An existing `heldout.jsonl` in --out is kept
as it is (the committed one is the campaign's yardstick) and its prompts are dropped from train.

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

from dlmpo.catalog import get_task

PARAPHRASES = {
    "sst2": [
        "You are a sentiment classifier. Reply with exactly one word: positive or negative.",
        "Read the movie review and decide whether the reviewer liked the film. Answer positive or negative.",
        "Classify the sentiment of each movie review. Reply with one word: positive or negative.",
        "You label film reviews by their overall opinion. The answer is either positive or negative.",
        "Decide if the review expresses a positive or a negative opinion of the movie. Reply with one word.",
    ],
    "snli": [
        "Decide whether the premise entails the hypothesis, contradicts it, or neither. "
        "Answer entailment, neutral or contradiction.",
        "Read the premise and the hypothesis. If the premise makes the hypothesis true, answer entailment; "
        "if it makes it false, answer contradiction; otherwise answer neutral.",
        "You judge the logical relation between two sentences. Reply with one word: entailment, neutral or "
        "contradiction.",
    ],
    "mrpc": [
        "Decide whether the two sentences are paraphrases of each other. Answer equivalent or not equivalent.",
        "Do the two sentences say the same thing? Answer equivalent if they do and not equivalent if they do not.",
        "You compare two news sentences. If they have the same meaning, answer equivalent; otherwise answer "
        "not equivalent.",
    ],
    "sst5": [  # held out
        "Classify the sentiment of the movie review as very negative, negative, neutral, positive or very positive.",
        "Rate the opinion of the movie review on a five-point scale: very negative, negative, neutral, positive or "
        "very positive. Reply with the label only.",
    ],
}

GUIDANCE = [
    "Reply with the label only, without any explanation.",
    "Do not repeat the question or add any other words.",
    "Answer with a single word in lower case.",
    "Base your answer on the overall meaning, not on single words.",
    "When the text mixes praise and criticism, decide by the main opinion.",
    "Sarcasm often says the opposite of what the words mean, so read it carefully.",
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
    ap.add_argument("--self-instruct", type=Path, default=Path(__file__).parent / "data" / "self_instruct.jsonl",
                    help="rows written by self_instruct.py, added to train when the file is there")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    data, out = Path(args.data_dir), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(args.seed)
    train: list[dict] = []
    held_out: list[dict] = []

    for name in ("sst2", "snli", "mrpc", "sst5"):
        task = get_task(name, data)
        rows = task.examples("train")
        n = args.task_rows if name != "sst5" else 60
        target = held_out if name == "sst5" else train
        for _ in range(n):
            target.append({"prompt": task_prompt(name, rng), "context": task_traces(task, rows, rng, rng.randint(2, 5))})

    trajectories = json.loads((data / "tau/trajectories/gpt-4o-airline-trials01.json").read_text())
    airline_turns, other_turns = episode_turns(trajectories, range(0, 40)), episode_turns(trajectories, range(40, 50))
    for chunk in policy_chunks(data / "tau/airline/policy.md"):
        for _ in range(40):
            train.append({"prompt": chunk, "context": rng.sample(airline_turns, rng.randint(1, 3))})
    for chunk in policy_chunks(data / "tau/retail/policy.md"):
        held_out.append({"prompt": chunk, "context": rng.sample(other_turns, 2)})

    descriptions = lm_eval_descriptions(args.lm_eval_wheel)
    rng.shuffle(descriptions)
    cut = len(descriptions) // 10
    held_out += [{"prompt": d} for d in descriptions[:cut]]
    train += [{"prompt": d} for d in descriptions[cut:] for _ in range(3)]

    if args.self_instruct.is_file():
        train += read_jsonl(args.self_instruct)
    kept = out / "heldout.jsonl"
    if kept.is_file():  # the committed held-out set stays the yardstick whatever --task-rows draws
        held_out = read_jsonl(kept)
        unseen = {r["prompt"] for r in held_out}
        train = [r for r in train if r["prompt"] not in unseen]
    rng.shuffle(train)
    write_jsonl(out / "train.jsonl", train)
    write_jsonl(out / "heldout.jsonl", held_out)


if __name__ == "__main__":
    main()
