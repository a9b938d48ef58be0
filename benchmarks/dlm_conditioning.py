"""Does the DLM write what the traces call for? Canvases in the optimizer's append format (the
task's seed prompt, `## Additional instructions`, 16 masks) beside traces that show one systematic
mistake: the target answers X where the gold label is Y (val-split rows, the task's feedback
sentence). For each written sentence, the label it names last: Y (follows the traces), X (against
them) or none. SST-2 and SST-5 are evaluation-only: no row or text of theirs is in the embedded
DLM's recipe.

For each model (`SPEC` or `SPEC@ADAPTER_DIR`):

    python -m benchmarks.dlm_conditioning --model embedded --model smollm2:base@DIR --data-dir ../shared/data
"""

from __future__ import annotations

import argparse
import random
import re
import time
from pathlib import Path

from benchmarks.common import report
from benchmarks.embedded_dlm import open_model
from dlmpo.catalog import get_task
from dlmpo.dlm import ContextItem, SamplerConfig, infill

ROOT = Path(__file__).resolve().parents[1]


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


def last_label(text: str, labels: list[str]) -> str | None:
    """The label named last in `text` (longest names first, so "very negative" is not "negative")."""
    pattern = "|".join(re.escape(lab) for lab in sorted(labels, key=len, reverse=True))
    found = re.findall(rf"\b({pattern})\b", text.lower())
    return found[-1] if found else None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", action="append", required=True)
    ap.add_argument("--data-dir", default="../shared/data")
    ap.add_argument("--tasks", default="sst2,sst5")
    ap.add_argument("--contexts", type=int, default=6, help="canvases per task")
    ap.add_argument("--candidates", type=int, default=4)
    ap.add_argument("--kv-refresh", type=int, default=8)
    args = ap.parse_args()
    rows, texts = [], []
    for spec in args.model:
        model = open_model(spec)
        for name in args.tasks.split(","):
            task = get_task(name, args.data_dir)
            by_label = rows_by_label(task.examples("val"))
            counts = {"follows": 0, "against": 0, "none": 0}
            began = time.perf_counter()
            for i in range(args.contexts):
                rng = random.Random(f"{name}:{i}")
                y, x = rng.sample(task.labels, 2)
                context = [ContextItem(t["query"], t["output"], t["score"], t.get("feedback"))
                           for t in biased_traces(task, by_label, x, y, rng)]
                canvas = task.seed_prompt + "\n\n## Additional instructions\n[MASK:16]"
                result = infill(model, canvas, context=context, n_candidates=args.candidates, seed=i,
                                sampler=SamplerConfig(kv_refresh=args.kv_refresh))
                for cand in result.candidates:
                    written = cand.text[len(task.seed_prompt):].replace("## Additional instructions", "").strip()
                    named = last_label(written, task.labels)
                    counts["follows" if named == y else "against" if named == x else "none"] += 1
                    texts.append({"model": spec, "task": name, "expected": y, "answered": x, "written": written})
            n = args.contexts * args.candidates
            rows.append({"model": spec, "task": name, "sentences": n, "follows": round(counts["follows"] / n, 3),
                         "against": round(counts["against"] / n, 3), "none": round(counts["none"] / n, 3),
                         "seconds": round(time.perf_counter() - began, 1)})
    report("dlm_conditioning", rows, {"texts": texts})


if __name__ == "__main__":
    main()
