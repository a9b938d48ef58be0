"""Calibrate and check the readability gate (`dlmpo.optimizer.readability`).

Three sets, each appended under `## Additional instructions` to a task's seed prompt, as the
optimizer's append strategy writes them:

- pass: the stage-1 guidance sentences the shipped adapter was trained on (readability_calibration.json), on
  the seed prompts of MRPC, SNLI and SST-2;
- fail: the recitals the stage-2 DLM got accepted or wrote on SST-2 (the same file);
- infills: the 20 held-out infills of benchmarks/results/embedded_dlm.json (reported, not forced).

For each text: the perplexity of the added tokens under SmolLM2-135M-Instruct (nats/token) and
the gate's verdict. The threshold is the midpoint between the most surprising pass sentence and
the least surprising recital that only perplexity can catch (the others fail a rule).

    python -m benchmarks.readability_gate --data-dir ../shared/data
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from dlmpo.catalog import get_task
from dlmpo.lm.perplexity import embedded_scorer
from dlmpo.optimizer.readability import READABILITY_NLL, ReadabilityGate, changed_spans
from dlmpo.optimizer.strategies import HEADING

ROOT = Path(__file__).resolve().parents[1]
CALIBRATION = json.loads((ROOT / "benchmarks" / "readability_calibration.json").read_text())
GUIDANCE, RECITALS = CALIBRATION["guidance"], CALIBRATION["recitals"]


def judge(labels, scorer, seed, text):
    """The added text's perplexity (one forward), the rules' verdict alone, and the whole gate's."""
    candidate = f"{seed}\n\n{HEADING}\n{text}"
    nll = scorer.span_nll(candidate, changed_spans(candidate, seed))
    rule = ReadabilityGate(labels, None).reject_reason(candidate, seed)
    verdict = ReadabilityGate(labels, READABILITY_NLL, span_nll=lambda *_: nll).reject_reason(candidate, seed)
    return {"text": text, "nll": round(nll, 3), "rule": rule, "verdict": verdict}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", default="../shared/data")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "readability_gate.json"))
    args = ap.parse_args()
    scorer = embedded_scorer()
    rows = {"pass": [], "fail": [], "infills": []}
    for name in ("mrpc", "snli", "sst2"):
        task = get_task(name, args.data_dir)
        labels = list(task.labels)
        rows["pass"] += [{"task": name, **judge(labels, scorer, task.seed_prompt, t)} for t in GUIDANCE]
        if name == "sst2":
            rows["fail"] += [{"task": name, **judge(labels, scorer, task.seed_prompt, t)} for t in RECITALS]
    infills = json.loads((ROOT / "benchmarks" / "results" / "embedded_dlm.json").read_text())["infills"]["embedded"]
    for r in infills:
        seed = r["prompt"].split(HEADING)[0].strip()
        rows["infills"].append(judge([], scorer, seed, r["infill"].strip()))
    most_pass = max(r["nll"] for r in rows["pass"])
    least_fail = min((r["nll"] for r in rows["fail"] if r["rule"] is None), default=None)
    summary = {"threshold": READABILITY_NLL, "max_pass_nll": most_pass, "min_fail_nll_without_rule": least_fail,
               "midpoint": None if least_fail is None else round((most_pass + least_fail) / 2, 2)}
    for kind, items in rows.items():
        rejected = sum(r["verdict"] is not None for r in items)
        summary[kind] = f"{rejected} of {len(items)} rejected"
        print(f"\n{kind}: {summary[kind]}")
        print("| nll | verdict | text |\n|---|---|---|")
        for r in items:
            print(f"| {r['nll']:.2f} | {(r['verdict'] or 'passes')[:70]} | {' '.join(r['text'].split())[:80]} |")
    print(json.dumps(summary))
    Path(args.out).write_text(json.dumps({"summary": summary, **rows}, indent=2))


if __name__ == "__main__":
    main()
