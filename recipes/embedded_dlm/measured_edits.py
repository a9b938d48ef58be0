"""Edits that measurably helped: the data of the embedded DLM's expert-iteration stage.

For each training task (training_tasks.py: never SST-2 or SST-5) and each incumbent prompt:

1. the target answers a pool of the task's *train* rows with the incumbent (the traces);
2. canvases are drawn from those traces, failures first, as the optimizer draws them;
3. candidate edits are written for each canvas with no text written for any task: templates
   filled only from the canvas itself (the task's label names, the labels the target confuses,
   whether its answers name a label at all, words of the failing inputs), the AR writer (the
   embedded target asked to fill the blank, as `--proposer ar` does), generic guidance sentences,
   and, from the second iteration on, the DLM's own samples (`--dlm`);
4. each candidate (the incumbent with the edit appended under `## Additional instructions`) is
   scored on rows of the task that no canvas shows, paired against the incumbent;
5. an edit that wins at least `--min-net` more rows than it loses, with a one-sided sign test
   p <= `--max-p`, and passes the readability gate, becomes `--views` training canvases: the
   incumbent's traces beside the improved prompt. Accepted prompts become the next iteration's
   incumbents (`--chain`).

Every scored edit, kept or not, is written to `measured.jsonl`; the kept canvases to
`edits.jsonl`. Target calls go to a SQLite cache in --out, so a cut run resumes for free.

    python recipes/embedded_dlm/measured_edits.py --data-dir ../shared/data --out recipes/embedded_dlm/data/measured
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import time
from collections import Counter
from pathlib import Path

from make_data import GUIDANCE
from training_tasks import PARAPHRASES, training_tasks

from dlmpo.dlm import ContextItem
from dlmpo.evaluate import evaluate
from dlmpo.lm.spec import open_target
from dlmpo.optimizer.ar_proposer import ARProposer
from dlmpo.optimizer.guards import TRACE_MARKUP
from dlmpo.optimizer.readability import READABILITY_NLL, ReadabilityGate
from dlmpo.optimizer.selection import paired, sign_test
from dlmpo.optimizer.strategies import HEADING

STOPWORDS = set("""a an the and or but if of to in on at for with by from as is are was were be been being it its this
that these those i you he she we they me him her us them my your his our their not no do does did so than then there
here what which who whom whose when where why how all any some each very can will just into about over after before
also more most such only own same other too s t""".split())


def with_edit(incumbent: str, edit: str) -> str:
    head, _, added = incumbent.partition(HEADING)
    body = f"{added.strip()} {edit}".strip() if added else edit
    return f"{head.rstrip()}\n\n{HEADING}\n{body}"


def canvas(traces, rng: random.Random, k: int) -> list:
    fails = [t for t in traces if t.score < 1]
    wins = [t for t in traces if t.score >= 1]
    n_fail = min(len(fails), max(1, (2 * k + 2) // 3)) if fails else 0
    chosen = rng.sample(fails, n_fail) + rng.sample(wins, min(len(wins), k - n_fail))
    rng.shuffle(chosen)
    return chosen


def context_of(traces) -> list[ContextItem]:
    return [ContextItem(t.user, t.output or "(no answer)", t.score, t.feedback if t.score < 1 else None) for t in traces]


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]{4,}", text.lower()))


def label_list(labels: list[str]) -> str:
    return ", ".join(labels[:-1]) + " or " + labels[-1] if len(labels) > 1 else labels[0]


def template_edits(traces, labels: list[str], rng: random.Random) -> list[str]:
    """Edits filled only from what the canvas shows: label names, confusions, format, input words
    (words of the failing inputs that the other inputs lack, so not the task's template)."""
    edits = [f"The answer is always one of: {label_list(labels)}.",
             f"Pick the label that fits the whole input: {label_list(labels)}."]
    fails = [t for t in traces if t.score < 1]
    unlabelled = [t for t in fails if t.prediction is None]
    if unlabelled:
        edits += [f"Reply with exactly one of these labels and nothing else: {label_list(labels)}.",
                  "Do not explain or repeat the input; your whole answer is the label.",
                  f"Never answer with a sentence. Write only {label_list(labels)}."]
    confused = Counter((t.prediction, t.gold) for t in fails if t.prediction is not None)
    if confused:
        (x, y), _ = confused.most_common(1)[0]
        edits += [f"Do not answer {x} unless the input clearly supports it.",
                  f"Before answering {x}, check whether {y} fits better.",
                  f"Many inputs that look like {x} are {y}."]
        others = [_words(t.user) for t in traces if t.gold != y]
        elsewhere = set.intersection(*others) if others else set()
        words = Counter(w for t in fails if t.gold == y for w in _words(t.user) - elsewhere if w not in STOPWORDS)
        common = [w for w, c in words.most_common(6) if c >= 2]
        if len(common) >= 2:
            w1, w2 = rng.sample(common, 2)
            edits.append(f"When the input mentions {w1} or {w2}, consider {y}.")
    golds = Counter(t.gold for t in fails)
    if golds:
        y = golds.most_common(1)[0][0]
        edits.append(f"If you are unsure, answer {y}.")
    return edits


async def dlm_edits(dlm, incumbent: str, context, k: int, seed: int) -> list[str]:
    from dlmpo.dlm import SamplerConfig
    from dlmpo.optimizer.proposers import DLMProposer

    proposer = DLMProposer(dlm, SamplerConfig(steps=16, seed=seed), strategy="append", mask_tokens=16,
                           span_ratio=0.25, span_length=6, seed=seed)
    return [added(p.prompt, incumbent) for p in await proposer.propose(incumbent, context, k, 1) if not p.failure]


def added(prompt: str, incumbent: str) -> str:
    """The text a proposal appended after the incumbent's own added section."""
    _, _, new = prompt.partition(HEADING)
    _, _, old = incumbent.partition(HEADING)
    new, old = new.strip(), old.strip()
    return new[len(old):].strip() if old and new.startswith(old) else new


def split_rows(task, args, rng: random.Random):
    """The rows edits are scored on, and the rows whose traces canvases show (disjoint)."""
    rows = task.examples("train")[:]
    rng.shuffle(rows)
    return rows[:args.score_rows], rows[args.score_rows:args.score_rows + args.trace_rows]


async def measure(task_name, task, model, incumbent, args, rng, dlm, log) -> list[dict]:
    scored_rows, trace_rows = split_rows(task, args, rng)
    base = await evaluate(task, model, incumbent, scored_rows)
    pool = await evaluate(task, model, incumbent, trace_rows)
    base_scores = [t.score for t in base.traces]
    writer = ARProposer(model, strategy="append", mask_tokens=24, span_ratio=0.25, span_length=6, seed=args.seed)
    edits: dict[str, str] = {}
    for c in range(args.canvases):
        shown = canvas(pool.traces, rng, args.context)
        for e in template_edits(shown, task.labels, rng):
            edits.setdefault(e, "template")
        for p in await writer.propose(incumbent, context_of(shown), args.ar_samples, c + 1):
            if not p.failure and added(p.prompt, incumbent):
                edits.setdefault(added(p.prompt, incumbent), "ar")
        for g in rng.sample(GUIDANCE, 2):  # generic: written for no task
            edits.setdefault(g, "generic")
        if dlm is not None:
            for e in await dlm_edits(dlm, incumbent, context_of(shown), args.dlm_samples, args.seed * 100 + c):
                if e:
                    edits.setdefault(e, "dlm")
    results = []
    for edit, source in edits.items():
        prompt = with_edit(incumbent, edit)
        res = await evaluate(task, model, prompt, scored_rows)
        wins, losses = paired([t.score for t in res.traces], base_scores)
        kept = wins - losses >= args.min_net and sign_test(wins, losses) <= args.max_p
        row = {"task": task_name, "incumbent": incumbent, "edit": edit, "source": source, "wins": wins,
               "losses": losses, "n": len(scored_rows), "p": round(sign_test(wins, losses), 4), "kept": kept,
               "incumbent_score": base.score, "score": res.score}
        results.append(row)
        log.write(json.dumps(row) + "\n")
        log.flush()
        print(f"  {source:8s} {wins:3d}/{losses:3d} {'KEEP' if kept else '    '} {edit[:90]!r}", flush=True)
    return results


async def collect(out: Path, tasks: dict, model, args) -> None:
    """edits.jsonl from measured.jsonl: each kept edit that passes the readability gate becomes
    `--views` canvases of the incumbent's traces (recomputed from the call cache) beside the
    improved prompt."""
    rows = [json.loads(line) for line in (out / "measured.jsonl").read_text().splitlines() if line.strip()]
    kept = [r for r in rows if r["kept"] and r["task"] in tasks]
    gates = {name: ReadabilityGate(list(task.labels), READABILITY_NLL) for name, task in tasks.items()}
    pools: dict[tuple[str, str], list] = {}
    written = unreadable = 0
    with (out / "edits.jsonl").open("w") as f:
        for r in kept:
            task = tasks[r["task"]]
            prompt = with_edit(r["incumbent"], r["edit"])
            if TRACE_MARKUP.search(r["edit"]) or gates[r["task"]].reject_reason(prompt, r["incumbent"]):
                unreadable += 1
                continue
            key = (r["task"], r["incumbent"])
            if key not in pools:
                _, trace_rows = split_rows(task, args, random.Random(f"{args.seed}:{r['task']}:{r['incumbent']}"))
                pools[key] = (await evaluate(task, model, r["incumbent"], trace_rows)).traces
            rng = random.Random(f"{args.seed}:{r['task']}:{r['incumbent']}:{r['edit']}:views")
            for _ in range(args.views):
                view = [c.__dict__ for c in context_of(canvas(pools[key], rng, args.context))]
                f.write(json.dumps({"prompt": prompt, "context": view, "task": r["task"], "source": r["source"]}) + "\n")
                written += 1
    print(f"{out / 'edits.jsonl'}: {written} canvases from {len(kept) - unreadable} kept edits "
          f"({unreadable} kept edits failed the readability gate or wrote traces, of {len(rows)} measured)")


async def main_async(args):
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tasks = training_tasks(Path(args.data_dir), out / "tasks")
    model = open_target("embedded", cache_path=out / "calls.sqlite", batch_size=32)
    dlm = None
    if args.dlm:
        from dlmpo.dlm import load_dlm

        dlm = load_dlm(args.dlm, None, adapter=args.adapter)
    done = set()
    measured = out / "measured.jsonl"
    if measured.is_file():
        done = {(r["task"], r["incumbent"], r["edit"]) for r in map(json.loads, measured.read_text().splitlines()) if r}
    deadline = time.time() + 60 * args.time_limit if args.time_limit else None
    with measured.open("a") as log:
        for it in range(0 if args.collect else args.iterations):
            next_incumbents = {}
            for name, task in tasks.items():
                incumbents = list(dict.fromkeys([task.seed_prompt] + PARAPHRASES.get(name, []) if it == 0
                                                else next_incumbents.get(name, [])))
                for incumbent in incumbents:
                    if deadline is not None and time.time() > deadline:
                        print("time limit: no new incumbent is started; run again to go on (calls are cached)")
                        break
                    t0 = time.time()
                    print(f"[iter {it}] {name}: {incumbent[:80]!r}", flush=True)
                    results = await measure(name, task, model, incumbent, args, random.Random(f"{args.seed}:{name}:{incumbent}"),
                                            dlm, _Skip(log, done))
                    kept = sorted((r for r in results if r["kept"]), key=lambda r: r["losses"] - r["wins"])
                    if kept and args.chain:
                        next_incumbents.setdefault(name, []).append(with_edit(incumbent, kept[0]["edit"]))
                    print(f"  kept {len(kept)} of {len(results)} in {time.time() - t0:.0f}s", flush=True)
    await collect(out, tasks, model, args)
    await model.aclose()


class _Skip:
    """Writes a measured row unless an earlier, cut run already wrote it."""

    def __init__(self, log, done):
        self.log, self.done = log, done

    def write(self, line):
        r = json.loads(line)
        if (r["task"], r["incumbent"], r["edit"]) not in self.done:
            self.log.write(line)

    def flush(self):
        self.log.flush()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", default="../shared/data")
    ap.add_argument("--out", default="recipes/embedded_dlm/data/measured")
    ap.add_argument("--score-rows", type=int, default=64, help="rows each edit is scored on, never shown")
    ap.add_argument("--trace-rows", type=int, default=64, help="rows whose traces the canvases show")
    ap.add_argument("--canvases", type=int, default=2, help="canvases per incumbent")
    ap.add_argument("--context", type=int, default=6, help="traces per canvas")
    ap.add_argument("--ar-samples", type=int, default=1)
    ap.add_argument("--dlm", default=None, help="also the DLM's own samples (expert iteration)")
    ap.add_argument("--adapter", default=None)
    ap.add_argument("--dlm-samples", type=int, default=4)
    ap.add_argument("--min-net", type=int, default=3)
    ap.add_argument("--max-p", type=float, default=0.25)
    ap.add_argument("--views", type=int, default=12, help="training canvases per kept edit")
    ap.add_argument("--iterations", type=int, default=2)
    ap.add_argument("--chain", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--collect", action="store_true", help="only write edits.jsonl from measured.jsonl")
    ap.add_argument("--time-limit", type=float, default=None, help="minutes after which no new incumbent starts")
    ap.add_argument("--seed", type=int, default=0)
    asyncio.run(main_async(ap.parse_args()))


if __name__ == "__main__":
    main()
