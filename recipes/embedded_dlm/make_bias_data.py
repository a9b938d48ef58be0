"""Canvases where the prompt answers the traces: the data of the embedded DLM's second stage.

In `make_data.py` the appended guidance is drawn independently of the traces beside it, so the DLM
learns what guidance looks like but not which guidance the traces call for. Here the traces show
one systematic mistake (the target answers X where the gold label is Y, with the task's feedback
sentence), and the last appended sentence corrects it: it says when the answer is Y, in words
describing label Y of that task. The label descriptions are hand-written for the training tasks
(SST-2, SNLI, MRPC) and their *train* rows supply the traces; SST-5 stays held out.

Writes `bias.jsonl` (the new canvases) and `finetune.jsonl` (those, a `--share` of it, mixed with
rows of the first stage's `train.jsonl`, so the model keeps what it knew):

    python recipes/embedded_dlm/make_bias_data.py --data-dir ../shared/data --out recipes/embedded_dlm/data
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

from make_data import GUIDANCE, PARAPHRASES, read_jsonl, write_jsonl

from dlmpo.catalog import get_task

# When each label is the right answer, as the subject and verb of an "if" clause.
LABEL_CUES = {
    "sst2": {
        "negative": ["the review finds fault with the film", "the reviewer sounds bored, annoyed or let down",
                     "the review says the movie fails or falls short", "the review calls the film dull, weak or bad",
                     "the writer did not enjoy the movie", "the review mocks the film or its makers"],
        "positive": ["the review praises the film or its actors", "the reviewer sounds pleased or enthusiastic",
                     "the review recommends the movie", "the review says the film works or succeeds",
                     "the writer enjoyed the movie", "the review admires the story, the acting or the humour"],
    },
    "snli": {
        "entailment": ["the premise makes the hypothesis true", "the hypothesis only restates part of the premise",
                       "every detail of the hypothesis is in the premise"],
        "neutral": ["the premise neither confirms nor rules out the hypothesis",
                    "the hypothesis adds details the premise does not mention",
                    "the hypothesis could be true or false given the premise"],
        "contradiction": ["the hypothesis cannot be true when the premise is",
                          "the two sentences describe scenes that cannot both happen",
                          "the hypothesis changes who, what or where from the premise"],
    },
    "mrpc": {
        "equivalent": ["the two sentences report the same facts in different words",
                       "one sentence only rephrases the other", "the sentences differ in wording but not in meaning"],
        "not equivalent": ["one sentence adds or drops a fact", "the sentences give different numbers, names or dates",
                           "one sentence says more than the other"],
    },
}

CORRECTIONS = [
    "If {cue}, answer {y}.",
    "When {cue}, the answer is {y}.",
    "Answer {y} whenever {cue}.",
    "Do not default to {x}: if {cue}, answer {y}.",
    "Reply {y} if {cue}, even when the text looks {x} at first.",
    "The label is {y} when {cue}.",
]


def corrective_sentence(task_name: str, x: str, y: str, rng: random.Random) -> str:
    return rng.choice(CORRECTIONS).format(cue=rng.choice(LABEL_CUES[task_name][y]), x=x, y=y)


def rows_by_label(examples) -> dict:
    grouped: dict = {}
    for ex in examples:
        grouped.setdefault(ex.label, []).append(ex)
    return grouped


def biased_traces(task, rows_by_label: dict, x: str, y: str, rng: random.Random) -> list[dict]:
    """Failures first, as the optimizer shows them: most are gold Y answered X; then a success or two."""
    n = rng.randint(3, 6)
    failures = rng.randint(max(2, n - 2), n)
    items = []
    for i in range(n):
        wrong = i < failures
        ex = rng.choice(rows_by_label[y] if wrong or rng.random() < 0.5 else rows_by_label[x])
        output = x if wrong else ex.label
        graded = task.grade(ex, output)
        item = {"query": task.user_message(ex), "output": output, "score": graded.score}
        if graded.score < 1:
            item["feedback"] = graded.feedback
        items.append(item)
    return items


def bias_canvas(name: str, task, rows_by_label: dict, rng: random.Random) -> dict:
    """Mostly the correction right under the heading, where the optimizer's first appended masks
    go; otherwise after guidance sentences an earlier round appended."""
    y, x = rng.sample(task.labels, 2)
    kept = rng.sample(GUIDANCE, rng.randint(1, 2)) if rng.random() < 0.3 else []
    prompt = rng.choice(PARAPHRASES[name]) + "\n\n## Additional instructions\n" + " ".join(
        kept + [corrective_sentence(name, x, y, rng)])
    return {"prompt": prompt, "context": biased_traces(task, rows_by_label, x, y, rng)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", default="../shared/data")
    ap.add_argument("--out", default="recipes/embedded_dlm/data")
    ap.add_argument("--rows", type=int, default=3000, help="corrective canvases per training task")
    ap.add_argument("--share", type=float, default=0.75, help="share of corrective canvases in finetune.jsonl")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    out = Path(args.out)
    bias = []
    for name in LABEL_CUES:
        task = get_task(name, args.data_dir)
        by_label = rows_by_label(task.examples("train"))
        bias += [bias_canvas(name, task, by_label, rng) for _ in range(args.rows)]
    first_stage = read_jsonl(out / "train.jsonl")
    mixed = bias + rng.sample(first_stage, round(len(bias) * (1 - args.share) / args.share))
    rng.shuffle(bias)
    rng.shuffle(mixed)
    write_jsonl(out / "bias.jsonl", bias)
    write_jsonl(out / "finetune.jsonl", mixed)


if __name__ == "__main__":
    main()
