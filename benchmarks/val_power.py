"""How often the sign test on a val pool accepts a given improvement: both prompts answer every
example of a task's val split once (the embedded target, cached), then val pools of each size are
resampled and the one-sided sign test is run at the level on each. Prints a table, writes JSON.

    python -m benchmarks.val_power --data-dir ../shared/data --cache runs/val_power.sqlite \
        --challenger-sentence "Never answer with a sentence; the answer must be one of the listed labels."
"""

from __future__ import annotations

import argparse
import asyncio
import random

from benchmarks.common import report
from dlmpo.catalog import get_task
from dlmpo.evaluate import evaluate
from dlmpo.lm import open_target
from dlmpo.optimizer.selection import paired, sign_test


async def scores(task, target: str, cache: str, prompts: list[str]) -> list[list[float]]:
    model = open_target(target, cache_path=cache)
    val = task.examples("val")
    try:
        return [[t.score for t in (await evaluate(task, model, p, val, split="val")).traces] for p in prompts]
    finally:
        await model.aclose()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--task", default="sst2")
    ap.add_argument("--target", default="embedded")
    ap.add_argument("--data-dir", default="../shared/data")
    ap.add_argument("--cache", default="runs/val_power.sqlite")
    ap.add_argument("--challenger-sentence", required=True, help="appended to the seed prompt under the optimizer's heading")
    ap.add_argument("--sizes", default="50,100,150,200,250,300,350,400")
    ap.add_argument("--level", type=float, default=0.05)
    ap.add_argument("--draws", type=int, default=2000)
    args = ap.parse_args()
    task = get_task(args.task, args.data_dir)
    seed_prompt = task.seed_prompt
    challenger = seed_prompt + "\n\n## Additional instructions\n" + args.challenger_sentence
    seed, chal = asyncio.run(scores(task, args.target, args.cache, [seed_prompt, challenger]))
    n = len(seed)
    wins, losses = paired(chal, seed)
    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        if size > n:
            continue
        passed = 0
        for d in range(args.draws):
            idx = random.Random(d).sample(range(n), size)
            won, lost = paired([chal[i] for i in idx], [seed[i] for i in idx])
            passed += sign_test(won, lost) <= args.level
        rows.append({"val pool": size, "accepted": round(passed / args.draws, 3)})
    report(f"val_power_{args.task}", rows, {
        "task": args.task, "target": args.target, "level": args.level, "draws": args.draws, "val_split": n,
        "seed_prompt": seed_prompt, "challenger": challenger,
        "whole_val_split": {"seed": round(sum(seed) / n, 4), "challenger": round(sum(chal) / n, 4),
                            "wins": wins, "losses": losses, "p_value": round(sign_test(wins, losses), 5)}})
    print(f"whole val split ({n}): seed {sum(seed) / n:.3f}, challenger {sum(chal) / n:.3f}, "
          f"+{wins}/-{losses}, p = {sign_test(wins, losses):.3f}")


if __name__ == "__main__":
    main()
