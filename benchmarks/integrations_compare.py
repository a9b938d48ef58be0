"""dlmpo's integrations against the optimizers they plug into, on the embedded target (offline,
SmolLM2-135M-Instruct), SST-2 rows from local files; every score on held-out dev rows no optimizer saw.

1. `dspy`: a two-predictor DSPy program (extract the key opinion of a review, then classify the
   review positive or negative) on `ChatLM("embedded")`, compiled by `dlmpo.integrations.dspy.DLMPO`,
   `dspy.MIPROv2` (zero-shot, auto=None) and `dspy.GEPA`, each given the same budget of scored
   program runs. MIPROv2's prompt model and GEPA's reflection model are the embedded target too.
2. `gepa`: `gepa.optimize` on a one-component system prompt, with GEPA's own reflective proposer
   (the embedded target reflects) and with `dlmpo.integrations.gepa.dlm_proposer` (the embedded
   DLM writes the edits), same seed prompt, rows, max_metric_calls and seed.

Metric calls are counted by a wrapper around each optimizer's metric: `metric_calls` is every call,
`scored_runs` the distinct program outputs scored (DSPy's GEPA also asks the metric for feedback on
outputs it already scored). Each optimized program is paired with the seed program on the dev rows:
wins, losses and the one-sided sign-test p that it is better.

    python -m benchmarks.integrations_compare --only dspy --train 20 --val 10 --dev 30 --budget 60
    python -m benchmarks.integrations_compare --only gepa --train 40 --val 20 --dev 60 --budget 150
    python -m benchmarks.integrations_compare --only gepa --train 6 --val 4 --dev 6 --budget 30   # a smoke run

(The sizes of the measurement in docs/benchmarks.md: a DSPy program run took 10-20 s on the
shared 2-core CPU, so part 1 is small.)
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import random
import tempfile
import time
from pathlib import Path

from benchmarks.common import report
from dlmpo.catalog import get_task
from dlmpo.errors import UserError
from dlmpo.evaluate import evaluate
from dlmpo.integrations.common import DLMWriter, chat_function
from dlmpo.integrations.dspy import DLMPO, ChatLM, lenient_adapter
from dlmpo.integrations.gepa import dlm_proposer
from dlmpo.optimizer.selection import paired, sign_test
from dlmpo.peers.gepa_peer import LogFile

THREADS = 4  # concurrent program runs where an optimizer allows them: the embedded target batches them
PROGRAM_TOKENS = 24  # a short opinion, or a label in a sentence
ANSWER_TOKENS = 16  # the one-component prompt's answer, as `dlmpo eval` reads it
WRITER_TOKENS = 160  # MIPROv2's prompt model, GEPA's reflection model
MIPRO_CANDIDATES = 3  # instruction candidates per predictor (MIPROv2 keeps the original among them)
MIPRO_FULL_EVAL_STEPS = 5  # MIPROv2's default
BOOTSTRAP_RUNS = 8  # MIPROv2 runs train rows until 3 succeed, to show its proposer examples: our guess of the cost
COMPONENT = "system_prompt"
DLMPO_BATCH = 5  # train rows per predictor turn (DLMPO's default, 8, leaves one turn in a budget of 60)
PROGRAM_OUTPUTS = ("opinion", "sentiment")  # the output fields of the program's two predictors


def draw_rows(task, n_train: int, n_val: int, n_dev: int, seed: int):
    """Train rows from SST-2's train phrases, val rows (the optimizers' own selection set) from the
    first half of dev, dev rows from its held-out half."""
    rng = random.Random(seed)
    splits = task.splits
    return (rng.sample(splits.train, n_train), rng.sample(splits.val, n_val), rng.sample(splits.test, n_dev))


def against_seed(scores: list[float], seed_scores: list[float]) -> dict:
    wins, losses = paired(scores, seed_scores)
    return {"dev": round(sum(scores) / len(scores), 3), "wins": wins, "losses": losses,
            "p_better": round(sign_test(wins, losses), 4)}


@contextlib.contextmanager
def into_log(path: Path):
    """An optimizer's own prints and progress bars go to its log file, not the table's stdout."""
    with path.open("a") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        yield


# ---------------------------------------------------------------- 1. a DSPy program, three teleprompters


def dspy_part(args, task, rows, work: Path, keep) -> None:
    import dspy

    train_rows, val_rows, dev_rows = rows
    by_id = {ex.id: ex for ex in (*train_rows, *val_rows, *dev_rows)}

    def as_dspy(examples):
        return [dspy.Example(review=ex.inputs["sentence"], label=ex.label, row=ex.id).with_inputs("review")
                for ex in examples]

    trainset, valset, devset = as_dspy(train_rows), as_dspy(val_rows), as_dspy(dev_rows)

    class OpinionThenLabel(dspy.Module):
        def __init__(self):
            super().__init__()
            self.extract = dspy.Predict(dspy.Signature("review -> opinion", "Extract the key opinion of the movie review."))
            self.classify = dspy.Predict(dspy.Signature(
                "review, opinion -> sentiment", "Classify the review as positive or negative."))

        def forward(self, review):
            return self.classify(review=review, opinion=self.extract(review=review).opinion)

    def grade(gold, pred):
        return task.grade(by_id[gold.row], getattr(pred, "sentiment", None) or "")

    class CountedMetric:
        """The metric every optimizer gets (GEPA's form; DLMPO asks it per predictor too),
        counting its calls and the distinct outputs it scored."""

        def __init__(self):
            self.calls, self.outputs = 0, []

        def __call__(self, gold, pred, trace=None, pred_name=None, pred_trace=None):
            self.calls += 1
            if not any(p is pred for p in self.outputs):
                self.outputs.append(pred)  # kept alive, so identity tells runs apart
            graded = grade(gold, pred)
            if pred_name == "extract":
                answer = " ".join(str(getattr(pred, "sentiment", "") or "").split())[:60]
                feedback = (f"The review is {gold.label}; from this opinion the next step answered "
                            f"\"{answer}\", which is {'right' if graded.score else 'wrong'}.")
            else:
                feedback = graded.feedback
            return dspy.Prediction(score=graded.score, feedback=feedback)

        def score_only(self, gold, pred, trace=None):  # MIPROv2 sums plain numbers
            return self(gold, pred, trace).score

    program_lm = ChatLM("embedded", max_tokens=PROGRAM_TOKENS, cache_path=work / "program.sqlite")
    writer_lm = ChatLM("embedded", temperature=0.7, max_tokens=WRITER_TOKENS, distinct_samples=True,
                       cache_path=work / "writer.sqlite")
    dspy.configure(lm=program_lm, adapter=plain_program_adapter(PROGRAM_OUTPUTS))
    logging.getLogger("dspy").setLevel(logging.WARNING)

    def dev_scores(program) -> list[float]:
        result = dspy.Evaluate(devset=devset, metric=lambda g, p, trace=None: grade(g, p).score,
                               num_threads=THREADS, display_progress=False)(program)
        return [float(score) for _, _, score in result.results]

    seed_program = OpinionThenLabel()
    started = time.perf_counter()
    seed_dev = dev_scores(seed_program)
    base = {"part": "dspy", "budget": args.budget, "train_rows": len(trainset), "val_rows": len(valset),
            "dev_rows": len(devset)}
    keep({**base, "optimizer": "seed program", **against_seed(seed_dev, seed_dev), "metric_calls": 0,
          "scored_runs": 0, "seconds": round(time.perf_counter() - started), "instructions": instructions(seed_program)})

    def mipro_trials() -> int:
        """The most trials whose planned metric calls fit the budget: the bootstrap guess, the
        default program on val, a minibatch per trial, a full val evaluation every
        MIPRO_FULL_EVAL_STEPS trials and one at the end."""
        minibatch = min(10, len(valset))
        fixed = BOOTSTRAP_RUNS * (MIPRO_CANDIDATES - 2) + len(valset)
        trials = 0
        while fixed + (trials + 1) * minibatch + ((trials + 1) // MIPRO_FULL_EVAL_STEPS + 1) * len(valset) <= args.budget:
            trials += 1
        return trials

    def run_dlmpo(metric):
        rounds = math.ceil(args.budget / DLMPO_BATCH)  # more rounds than the budget allows: max_calls ends it
        teleprompter = DLMPO(metric, dlm="embedded", rounds=rounds, candidates=2, max_calls=args.budget,
                             batch_size=DLMPO_BATCH, seed=args.seed, labels=task.labels, run_dir=work / "dlmpo")
        program = teleprompter.compile(OpinionThenLabel(), trainset=trainset, valset=valset)
        decisions = [r for r in teleprompter.history if r["type"] == "decision"]
        return program, {"accepted": sum(bool(r["accepted"]) for r in decisions), "decisions": len(decisions),
                         "candidates": sum(r["type"] == "candidate" for r in teleprompter.history),
                         "readability_rejected": len(teleprompter.writer.rejected)}

    def run_mipro(metric):
        trials = mipro_trials()
        if trials < 1:
            raise ValueError(f"a budget of {args.budget} leaves MIPROv2 no trial")
        mipro = dspy.MIPROv2(metric=metric.score_only, prompt_model=writer_lm, task_model=program_lm, auto=None,
                             num_candidates=MIPRO_CANDIDATES, max_bootstrapped_demos=0, max_labeled_demos=0,
                             num_threads=THREADS, seed=args.seed, verbose=False)
        minibatch = min(10, len(valset))
        program = mipro.compile(OpinionThenLabel(), trainset=trainset, valset=valset, num_trials=trials,
                                minibatch=len(valset) > minibatch, minibatch_size=minibatch,
                                minibatch_full_eval_steps=MIPRO_FULL_EVAL_STEPS)
        return program, {"trials": trials, "candidates_per_predictor": MIPRO_CANDIDATES}

    def run_gepa(metric):
        gepa = dspy.GEPA(metric, max_metric_calls=args.budget, reflection_lm=writer_lm, reflection_minibatch_size=3,
                         num_threads=THREADS, seed=args.seed, log_dir=str(work / "dspy_gepa"), track_stats=True)
        program = gepa.compile(OpinionThenLabel(), trainset=trainset, valset=valset)
        details = program.detailed_results
        return program, {"candidates": len(details.candidates), "gepa_metric_calls": details.total_metric_calls}

    for name, run in (("DLMPO (dlmpo)", run_dlmpo), ("MIPROv2 (dspy)", run_mipro), ("GEPA (dspy)", run_gepa)):
        metric = CountedMetric()
        started = time.perf_counter()
        print(f"{name}: compiling ...", flush=True)
        try:
            with into_log(work / f"{name.split()[0].lower()}.log"):
                program, details = run(metric)
            scores = dev_scores(program)
        except Exception as exc:  # one optimizer failing on the 135M model still leaves the others' numbers
            keep({**base, "optimizer": name, "error": f"{type(exc).__name__}: {exc}",
                  "metric_calls": metric.calls, "scored_runs": len(metric.outputs)})
            continue
        keep({**base, "optimizer": name, **against_seed(scores, seed_dev), "metric_calls": metric.calls,
              "scored_runs": len(metric.outputs), "seconds": round(time.perf_counter() - started),
              "instructions": instructions(program), **details})


def plain_program_adapter(outputs: tuple[str, ...]):
    """dlmpo's lenient ChatAdapter, except for the program's own predictors (one output field named
    in `outputs`): the user message is their inputs as `Name: value` lines followed by their
    instructions, and the whole answer is the output field. In DSPy's field-marker format, or
    with the instructions as the system message, the 135M target classified 0 of 8 rows in a
    probe (it wrote code or chatted about the review); asked this way, 6 of 8. The optimizers'
    own calls (MIPROv2's proposer) keep DSPy's format."""
    class PlainProgramAdapter(type(lenient_adapter())):
        @staticmethod
        def is_program(signature) -> bool:
            return len(signature.output_fields) == 1 and next(iter(signature.output_fields)) in outputs

        def format(self, signature, demos, inputs):
            if not self.is_program(signature):
                return super().format(signature, demos, inputs)

            def user(values):
                fields = "\n".join(f"{name.capitalize()}: {values[name]}" for name in signature.input_fields)
                return f"{fields}\n\n{signature.instructions}"

            output = next(iter(signature.output_fields))
            messages = []
            for demo in demos:
                messages += [{"role": "user", "content": user(demo)}, {"role": "assistant", "content": str(demo[output])}]
            return messages + [{"role": "user", "content": user(inputs)}]

        def parse(self, signature, completion):
            if not self.is_program(signature):
                return super().parse(signature, completion)
            return {next(iter(signature.output_fields)): completion.strip()}

    return PlainProgramAdapter()


def instructions(program) -> dict:
    return {name: p.signature.instructions for name, p in program.named_predictors()}


# ---------------------------------------------------------------- 2. GEPA's proposer against the DLM's


def gepa_part(args, task, rows, work: Path, keep) -> None:
    import gepa
    from gepa.core.adapter import EvaluationBatch

    train_rows, val_rows, dev_rows = rows
    target = chat_function("embedded", max_tokens=ANSWER_TOKENS, cache_path=work / "target.sqlite")

    def scored(prompt: str, examples):
        return target.runner.run(evaluate(task, target.chat_model, prompt, list(examples), max_tokens=ANSWER_TOKENS)).traces

    class Adapter:
        """GEPA's adapter over dlmpo's evaluation (the task's message and grading, as `dlmpo eval`),
        counting every row it scores."""

        propose_new_texts = None

        def __init__(self):
            self.calls = 0

        def evaluate(self, batch, candidate, capture_traces=False):
            self.calls += len(batch)
            traces = scored(candidate[COMPONENT], batch)
            return EvaluationBatch(outputs=[t.output for t in traces], scores=[t.score for t in traces],
                                   trajectories=traces if capture_traces else None)

        def make_reflective_dataset(self, candidate, eval_batch, components_to_update):
            rows = [{"Inputs": t.user, "Generated Outputs": t.output, "Score": t.score, "Feedback": t.feedback}
                    for t in eval_batch.trajectories or []]
            return {c: rows for c in components_to_update}

    reflect_chat = chat_function("embedded", max_tokens=WRITER_TOKENS, temperature=0.7, use_cache=False)

    def reflect(prompt) -> str:
        messages = prompt if isinstance(prompt, list) else [{"role": "user", "content": prompt}]
        return reflect_chat(messages)

    seed_prompt = task.seed_prompt
    started = time.perf_counter()
    seed_dev = [t.score for t in scored(seed_prompt, dev_rows)]
    base = {"part": "gepa", "budget": args.budget, "train_rows": len(train_rows), "val_rows": len(val_rows),
            "dev_rows": len(dev_rows)}
    keep({**base, "optimizer": "seed prompt", **against_seed(seed_dev, seed_dev), "metric_calls": 0,
          "seconds": round(time.perf_counter() - started), "prompt": seed_prompt})

    for name in ("GEPA, reflective proposer", "GEPA, dlmpo DLM proposer"):
        adapter = Adapter()
        proposer = None
        if "DLM" in name:
            proposer = dlm_proposer(writer=DLMWriter("embedded", labels=task.labels, seed=args.seed))
        started = time.perf_counter()
        print(f"{name}: optimizing ...", flush=True)
        result = gepa.optimize(seed_candidate={COMPONENT: seed_prompt}, trainset=list(train_rows), valset=list(val_rows),
                               adapter=adapter, reflection_lm=None if proposer else reflect,
                               custom_candidate_proposer=proposer, reflection_minibatch_size=3,
                               max_metric_calls=args.budget, seed=args.seed, display_progress_bar=False,
                               logger=LogFile(work / f"gepa_{'dlm' if proposer else 'reflective'}.log"))
        best = result.best_candidate[COMPONENT]
        scores = [t.score for t in scored(best, dev_rows)]
        details = {"candidates": result.num_candidates, "gepa_metric_calls": result.total_metric_calls}
        if proposer is not None:
            details.update(dlm_edits=len(proposer.log), dlm_unchanged=sum(not r["changed"] for r in proposer.log),
                           readability_rejected=len(proposer.writer.rejected))
        keep({**base, "optimizer": name, **against_seed(scores, seed_dev), "metric_calls": adapter.calls,
              "seconds": round(time.perf_counter() - started), "prompt": best, **details})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--train", type=int, default=40, help="train rows (SST-2 train phrases)")
    parser.add_argument("--val", type=int, default=20, help="the optimizers' own val rows (first half of SST-2 dev)")
    parser.add_argument("--dev", type=int, default=60, help="held-out dev rows (second half of SST-2 dev)")
    parser.add_argument("--budget", type=int, default=200, help="metric calls per optimizer")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", choices=("dspy", "gepa"))
    parser.add_argument("--note", default="", help="what else ran on the machine")
    args = parser.parse_args()
    if min(args.train, args.val, args.dev, args.budget) < 1:
        parser.error("--train, --val, --dev and --budget must be at least 1")

    try:
        task = get_task("sst2", args.data_dir)
        rows = draw_rows(task, args.train, args.val, args.dev, args.seed)
    except (UserError, ValueError) as exc:  # no data there, or fewer rows than asked for
        parser.error(str(exc))
    work = Path(tempfile.mkdtemp(prefix="integrations-compare-"))
    print(f"work directory (caches, optimizer logs): {work}", flush=True)
    settings = vars(args) | {"target": "embedded", "dlm": "embedded", "threads": THREADS, "program_tokens": PROGRAM_TOKENS,
                             "answer_tokens": ANSWER_TOKENS, "writer_tokens": WRITER_TOKENS}
    results: list[dict] = []

    def keep(row: dict) -> None:
        """A finished run: the table and the JSON are rewritten, so that a cut-off measurement
        keeps what finished."""
        results.append(row)
        print(f"{row['part']} / {row['optimizer']}: " + (f"failed: {row['error']}" if "error" in row else
              f"dev {row['dev']:.3f}, {row['metric_calls']} metric calls, {row['seconds']} s"), flush=True)
        table = [{k: r.get(k, "-") for k in ("part", "optimizer", "dev", "wins", "losses", "p_better", "metric_calls",
                                             "scored_runs", "seconds")} for r in results]
        report("integrations_compare" + (f"_{args.only}" if args.only else ""), table,
               {"settings": settings, "runs": results})

    for part in [args.only] if args.only else ["dspy", "gepa"]:
        (dspy_part if part == "dspy" else gepa_part)(args, task, rows, work, keep)


if __name__ == "__main__":
    main()
