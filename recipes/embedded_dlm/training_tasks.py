"""Which tasks the embedded DLM may learn from, and which it is only ever measured on.

SST-2 and SST-5 are evaluation-only: none of their rows, prompts or label descriptions may enter
training data (tests/recipes/test_training_data.py reads every training file and fails if one
does). The training tasks are MRPC, SNLI and `retail-intent`, a classification task derived
offline from τ-bench retail's task files: the customer's instruction is the input and the kind of
the first state-changing action in the task's `actions` is the label.

    python recipes/embedded_dlm/training_tasks.py --data-dir ../shared/data --out recipes/embedded_dlm/data/tasks
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from dlmpo.catalog import get_task

EVALUATION_ONLY = ("sst2", "sst5")
BUILTIN_TRAINING = ("mrpc", "snli")

# the kind of change a τ-bench retail task asks for, by the first state-changing action
RETAIL_INTENTS = {
    "cancel_pending_order": "cancel",
    "exchange_delivered_order_items": "exchange",
    "return_delivered_order_items": "return",
    "modify_pending_order_items": "change items",
    "modify_pending_order_address": "change address",
    "modify_pending_order_payment": "change payment",
    "modify_user_address": "change address",
}
RETAIL_SEED = ("Read the customer's request to an online store and say what the support agent must do. "
               "Answer with one of: cancel, exchange, return, change items, change address, change payment.")
PARAPHRASES = {  # the training tasks' prompts besides their seed prompts
    "mrpc": [
        "Decide whether the two sentences are paraphrases of each other. Answer equivalent or not equivalent.",
        "Do the two sentences say the same thing? Answer equivalent if they do and not equivalent if they do not.",
        "You compare two news sentences. If they have the same meaning, answer equivalent; otherwise answer "
        "not equivalent.",
    ],
    "snli": [
        "Decide whether the premise entails the hypothesis, contradicts it, or neither. "
        "Answer entailment, neutral or contradiction.",
        "Read the premise and the hypothesis. If the premise makes the hypothesis true, answer entailment; "
        "if it makes it false, answer contradiction; otherwise answer neutral.",
        "You judge the logical relation between two sentences. Reply with one word: entailment, neutral or "
        "contradiction.",
    ],
    "retail-intent": [
        RETAIL_SEED,
        "You route customer requests. Reply with the action needed: cancel, exchange, return, change items, "
        "change address or change payment.",
    ],
}
# the evaluation tasks' subject: no training row may speak of it, whatever its source
EVALUATION_SUBJECT = re.compile(r"\b(?:sentiment|movies?|films?|cinema)\b", re.I)


def evaluation_free(row: dict) -> bool:
    """True when neither the prompt nor any trace of a training row speaks of sentiment or films."""
    return not any(EVALUATION_SUBJECT.search(t) for t in row_texts(row))


def _grams(text: str, n: int = 8) -> set[tuple[str, ...]]:
    words = re.findall(r"[a-z0-9']+", text.lower())
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


def row_texts(row: dict) -> list[str]:
    return [row.get("prompt", "")] + [str(v) for item in row.get("context") or [] for v in item.values()]


def contamination(rows: list[dict], data_dir: Path) -> list[str]:
    """Why each offending row breaks the rule (empty: the rows are clean): an evaluation task's seed
    prompt, template or label list, eight words in a row of any of its rows (train and dev), or
    the evaluation tasks' subject."""
    evaluation = [get_task(name, data_dir) for name in EVALUATION_ONLY]
    fixed = [t.seed_prompt for t in evaluation] + [max(re.split(r"\{[^}]*\}", t.template), key=len).strip()
                                                   for t in evaluation]
    fixed.append(", ".join(evaluation[1].labels[:-1]))  # "very negative, negative, neutral, positive"
    grams: set[tuple[str, ...]] = set()
    for task in evaluation:
        for split in ("train", "val", "test"):
            for ex in task.examples(split):
                grams |= _grams(" ".join(ex.inputs.values()))
    problems = []
    for i, row in enumerate(rows):
        text = "\n".join(row_texts(row))
        hit = next((f for f in fixed if f and f.lower() in text.lower()), None)
        if hit is not None:
            problems.append(f"row {i}: holds the evaluation text {hit!r}")
        elif grams & _grams(text):
            problems.append(f"row {i}: shares eight words in a row with an evaluation row: "
                            f"{' '.join(min(grams & _grams(text)))!r}")
        elif not evaluation_free(row):
            problems.append(f"row {i}: speaks of the evaluation tasks' subject")
    return problems


RETAIL_CONFIG = """[task]
name = "retail-intent"
data = {{ train = "retail_intent_train.jsonl", val = "retail_intent_val.jsonl" }}
input_fields = ["request"]
label_field = "label"
metric = "label"
labels = {labels}
seed_prompt = "{seed}"
template = "Customer request: {{request}}\\nWhat must the agent do?"
"""


def retail_intent_rows(path: Path) -> list[dict]:
    rows = []
    for task in json.loads(path.read_text(encoding="utf-8")):
        kinds = [RETAIL_INTENTS[a["name"]] for a in task["actions"] if a["name"] in RETAIL_INTENTS]
        if kinds:
            rows.append({"request": " ".join(task["instruction"].split()), "label": kinds[0]})
    return rows


def write_retail_intent(data_dir: Path, out: Path) -> Path:
    """The task's files in dlmpo's custom-task format; returns its config path."""
    out.mkdir(parents=True, exist_ok=True)
    retail = data_dir / "tau" / "retail"
    train = retail_intent_rows(retail / "tasks_train.json")
    val = retail_intent_rows(retail / "tasks_dev.json") + retail_intent_rows(retail / "tasks_test.json")
    for name, rows in (("retail_intent_train.jsonl", train), ("retail_intent_val.jsonl", val)):
        (out / name).write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    labels = sorted(set(RETAIL_INTENTS.values()))
    config = out / "retail_intent.toml"
    config.write_text(RETAIL_CONFIG.format(labels=json.dumps(labels), seed=RETAIL_SEED), encoding="utf-8")
    return config


def training_tasks(data_dir: Path, tasks_dir: Path) -> dict:
    """name -> Task, for every task the DLM's training data may draw on."""
    tasks = {name: get_task(name, data_dir) for name in BUILTIN_TRAINING}
    tasks["retail-intent"] = get_task(str(write_retail_intent(data_dir, tasks_dir)))
    return tasks


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", default="../shared/data")
    ap.add_argument("--out", default="recipes/embedded_dlm/data/tasks")
    args = ap.parse_args()
    for name, task in training_tasks(Path(args.data_dir), Path(args.out)).items():
        print(f"{name}: {len(task.examples('train'))} train rows, labels {task.labels}")


if __name__ == "__main__":
    main()
