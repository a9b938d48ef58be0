"""The whole loop offline: the embedded SmolLM2 target and a tiny-random DLM on SST-2 rows."""

import asyncio
import json
import os
import signal
import subprocess
import sys
import time

import pytest

import dlmpo
from dlmpo.errors import UserError
from dlmpo.lm.cache import CallCache
from dlmpo.lm.local_backend import resolve_dtype
from dlmpo.lm.types import ChatResponse
from dlmpo.optimizer import Optimizer, OptimizeResult, OptimizeSettings
from dlmpo.optimizer.held_out import NARROW, RAN_OUT, SAME_PROMPT, shown_with_intervals
from dlmpo.optimizer.session import RunSession
from dlmpo.runs.rundir import RunDir
from tests.support.proposers import ListProposer

# the embedded target's cache identity on this machine (bf16 where the CPU has native bf16)
EMBEDDED_ID = "embedded:SmolLM2-135M-Instruct" + ("" if resolve_dtype(None, "cpu") == "float32" else "@bfloat16")
SMALL = dict(task="sst2", target="embedded", dlm="tiny-random:dream", rounds=2, candidates=2, train_size=6,
             val_size=8, test_size=8, batch_size=4, screen_batch=8, steps=8, mask_tokens=8, seed=0)
CLI_SMALL = ["--task", "sst2", "--target", "embedded", "--dlm", "tiny-random:dream", "--rounds", "2",
             "--candidates", "2", "--train-size", "6", "--val-size", "8", "--test-size", "8", "--batch-size", "4",
             "--screen-batch", "8", "--steps", "8", "--mask-tokens", "8", "--seed", "0"]


def events(run_dir):
    return [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, data_dir):
    out = tmp_path_factory.mktemp("run")
    result = dlmpo.optimize(out=out, data_dir=str(data_dir), **{k: v for k, v in SMALL.items()
                                                                   if k not in ("task", "target", "dlm")},
                            task="sst2", target="embedded", dlm="tiny-random:dream")
    return out, result


def test_run_directory_is_complete(finished_run):
    out, result = finished_run
    for name in ("config.json", "events.jsonl", "calls.sqlite", "best_prompt.txt", "result.json", "report.md",
                 "report.html", "scores.png"):
        assert (out / name).is_file(), name
    kinds = [e["type"] for e in events(out)]
    assert kinds[0] == "run_start" and kinds[-1] == "run_end"
    assert kinds.count("round_end") == 2 and kinds.count("candidate") == 4
    assert (out / "best_prompt.txt").read_text().strip() == result.best_prompt
    report = (out / "report.md").read_text()
    assert "| test (held out) |" in report and "Round 2" in report and "scores.png" in report
    assert set(result.val) == {"seed", "best"} and set(result.test) == {"seed", "best", "wins", "losses", "p_value",
                                                                         "seed_interval", "best_interval",
                                                                         "gain_interval", "rows", "stopped"}
    rows = SMALL["test_size"]
    assert result.test["wins"] + result.test["losses"] <= rows
    # the two scores differ by exactly the paired wins and losses over the same rows
    assert result.test["best"] - result.test["seed"] == pytest.approx((result.test["wins"] - result.test["losses"]) / rows, abs=1e-3)
    assert f"wins {result.test['wins']} and loses {result.test['losses']}" in report
    assert result.calls > 0 and result.usage["cost_usd"] == 0.0


def test_test_scores_carry_95_percent_intervals_that_hold_them(finished_run):
    out, result = finished_run
    test = result.test
    gain = test["best"] - test["seed"]
    for point, (low, high) in ((test["seed"], test["seed_interval"]), (test["best"], test["best_interval"]),
                               (gain, test["gain_interval"])):
        assert low - 1e-4 <= point <= high + 1e-4  # the bounds and the scores are rounded to 4 places
    # one part of 250 holds the 8 rows; 8 rows cannot make the gain's interval ±0.02
    assert test["rows"] == SMALL["test_size"]
    assert test["stopped"] == (SAME_PROMPT if result.best_prompt == result.seed_prompt else RAN_OUT)
    seed, best, _ = shown_with_intervals(test)
    report = (out / "report.md").read_text()
    assert f"| test (held out) | {seed} | {best} |" in report and f"Test rows scored: {test['rows']}" in report
    assert seed in (out / "report.html").read_text()


def score_on_test(tmp_path, data_dir, best_prompt: str | None, **overrides):
    """The seed prompt and `best_prompt` (None: the seed's) scored on test the way a run ends, on 8
    test rows in parts of 4: the scores, the calls paid and the eval events."""
    settings = OptimizeSettings(**{**SMALL, "test_part": 4, **overrides}, data_dir=str(data_dir))
    session = RunSession(settings, tmp_path / "run")
    session.log.bind(settings)
    best_prompt = session.seed_prompt if best_prompt is None else best_prompt

    async def score():
        async with session.open_models(writer=False) as models:
            scorer = session.scorer(models)
            scorer.reserve_test(session.seed_prompt, len(best_prompt))
            scores = await scorer.score_test(session.seed_prompt, best_prompt, part=settings.test_part,
                                             interval=settings.test_interval)
            return scores, models.budget.spend().calls

    scores, calls = asyncio.run(score())
    return scores, calls, [e for e in events(tmp_path / "run") if e["type"] == "eval"]


OTHER_PROMPT = "Read the review and answer with one word, positive or negative."


def test_test_scoring_stops_once_the_gains_interval_is_as_narrow_as_asked(tmp_path, data_dir):
    # any interval is at most ±1 wide: the first part of 4 rows is enough
    scores, calls, evals = score_on_test(tmp_path / "loose", data_dir, OTHER_PROMPT, test_interval=1.0)
    assert (scores.rows, scores.stopped, calls) == (4, NARROW, 8)
    entry = scores.to_json()
    assert entry["rows"] == 4 and entry["stopped"] == NARROW and scores.seed.n == scores.best.n == 4
    assert [(e["which"], e["split"], e["n"]) for e in evals] == [("seed", "test", 4), ("best", "test", 4)]
    # no 8 rows make it ±0.001: every part is scored, seed and best alike
    scores, calls, evals = score_on_test(tmp_path / "tight", data_dir, OTHER_PROMPT, test_interval=0.001)
    assert (scores.rows, scores.stopped, calls) == (8, RAN_OUT, 16)
    assert [e["n"] for e in evals] == [8, 8]
    assert scores.to_json()["wins"] + scores.to_json()["losses"] <= 8


def test_when_the_best_prompt_is_the_seed_only_the_seed_is_scored_on_one_part(tmp_path, data_dir):
    scores, calls, evals = score_on_test(tmp_path, data_dir, None, test_interval=0.001)
    assert (scores.rows, scores.stopped, calls) == (4, SAME_PROMPT, 4)  # the seed's 4 rows, nothing more
    entry = scores.to_json()
    assert entry["gain_interval"] == [0.0, 0.0] and entry["seed"] == entry["best"]
    assert entry["seed_interval"] == entry["best_interval"]
    assert [(e["which"], e["n"], e["score"]) for e in evals] == [("seed", 4, entry["seed"]), ("best", 4, entry["seed"])]


def test_result_round_trips_through_json(finished_run):
    out, result = finished_run
    again = OptimizeResult.load(out)
    assert again.to_json() == result.to_json()
    assert json.loads(json.dumps(result.to_json()))["best_prompt"] == result.best_prompt


def test_each_round_accounts_for_its_wall_time_by_phase(finished_run):
    out, result = finished_run
    for r in result.rounds:
        t = r.timing
        assert all(seconds >= 0 for seconds in t.phases.values()), t
        assert t.accounted >= 0.95 * t.wall, t  # the phases cover the round: little is left between them
        assert t.accounted <= t.wall + 0.01, t  # timed one after another, never twice
        assert {"traces", "feedback", "canvas", "sampling", "propose", "checks", "screen"} <= set(t.phases), t
        assert 0 < t.nfe <= sum(c.nfe for c in r.candidates)  # a batch's forward passes count once
        assert t.redraws == sum(c.draws - 1 for c in r.candidates)
    first, second = result.rounds
    assert first.timing.phases["load"] > 0 and "load" not in second.timing.phases
    assert first.timing.wall >= first.seconds + first.timing.phases["load"] - 0.01
    logged = [e["record"]["timing"] for e in events(out) if e["type"] == "round_end"]
    assert logged == [r.timing.to_json() for r in result.rounds]
    assert set(result.timing) == {"seed", "test"} and result.timing["seed"] > 0 and result.timing["test"] >= 0
    assert all(e["seconds"] >= 0 for e in events(out) if e["type"] == "eval")
    report = (out / "report.md").read_text()
    assert "## Time" in report and "![seconds per round by phase](round_times.png)" in report
    assert "| round | wall s | load | traces |" in report and f"| {first.timing.share:.1%} |" in report
    assert (out / "round_times.png").stat().st_size > 0
    assert "<h2>Time</h2>" in (out / "report.html").read_text()


def test_acceptance_never_lowers_val(finished_run):
    out, result = finished_run
    for e in events(out):
        if e["type"] == "decision" and e["accepted"]:
            assert e["val"] > e["incumbent_val"]
    assert result.val["best"] >= result.val["seed"]


def test_worse_candidate_is_never_accepted(tmp_path, data_dir):
    settings = OptimizeSettings(**{**SMALL, "rounds": 1}, data_dir=str(data_dir))
    bad = ["Reply with the single word banana, whatever the review says.",
           "Always answer negative, never anything else."]
    opt = Optimizer(settings, tmp_path / "run", proposer=ListProposer(bad))
    result = asyncio.run(opt.run())
    assert result.best_prompt == result.seed_prompt
    assert result.test["stopped"] == SAME_PROMPT and result.test["gain_interval"] == [0.0, 0.0]
    assert result.rounds[0].accepted is False
    scored = [c for c in result.rounds[0].candidates if c.screen_score is not None]
    assert scored and all(c.screen_score <= result.rounds[0].incumbent_screen_score for c in scored)


def test_call_budget_stops_before_being_exceeded(tmp_path, data_dir):
    settings = OptimizeSettings(**{**SMALL, "rounds": 3}, data_dir=str(data_dir), max_calls=40)
    result = asyncio.run(Optimizer(settings, tmp_path / "run").run())
    assert result.stop_reason.startswith("budget (call budget")
    assert result.calls <= 40
    assert CallCache(tmp_path / "run" / "calls.sqlite").totals(EMBEDDED_ID)[0] == result.calls


def test_resume_after_kill_is_identical_and_pays_nothing_twice(tmp_path, data_dir, finished_run):
    reference_dir, reference = finished_run
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "dlmpo", "optimize", *CLI_SMALL, "--data-dir", str(data_dir), "--out", str(out),
           "--json"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=os.environ.copy())
    deadline = time.time() + 300
    while time.time() < deadline:  # kill in the middle of round 1, after some candidates exist
        if (out / "events.jsonl").is_file() and '"type": "candidate"' in (out / "events.jsonl").read_text():
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "result.json").exists(), "the run was meant to be interrupted"
    model_id = EMBEDDED_ID
    paid_before = CallCache(out / "calls.sqlite").totals(model_id)[0]
    assert paid_before > 0
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    resumed = json.loads(done.stdout.strip().splitlines()[-1])
    assert resumed["best_prompt"] == reference.best_prompt
    assert resumed["val"] == reference.val and resumed["test"] == reference.test
    paid_after_resume = resumed["usage"]["this_process"]["calls"]
    # nothing paid twice: what the killed run paid plus what the resumed run paid is the reference's bill.
    # Cache hits can be fewer than the calls paid before the kill: the readability gate rejects the tiny
    # DLM's candidates unscreened, so round 1 can end before the kill lands, and a round the killed run
    # finished is replayed from the event log without asking for its calls again.
    assert resumed["usage"]["this_process"]["cache_hits"] > 0
    assert paid_before + paid_after_resume == reference.calls == resumed["calls"]
    final = OptimizeResult.load(out)
    untimed = lambda rounds: [[{k: v for k, v in c.to_json().items() if k != "dlm_seconds"} for c in r.candidates]  # noqa: E731
                              for r in rounds]
    assert untimed(final.rounds) == untimed(reference.rounds)


def test_rerun_of_a_finished_run_pays_nothing(finished_run, data_dir):
    out, reference = finished_run
    settings = OptimizeSettings(**SMALL, data_dir=str(data_dir))
    again = asyncio.run(Optimizer(settings, out).run())
    assert again.usage["this_process"]["calls"] == 0
    assert again.best_prompt == reference.best_prompt and again.test == reference.test
    assert [r.timing for r in again.rounds] == [r.timing for r in reference.rounds]  # replayed: the logged timing


def test_changed_settings_on_an_existing_run_dir(finished_run, data_dir):
    out, _ = finished_run
    settings = OptimizeSettings(**{**SMALL, "candidates": 3}, data_dir=str(data_dir))
    with pytest.raises(UserError, match="holds a run with other settings"):
        asyncio.run(Optimizer(settings, out).run())


def test_cli_bad_config_is_one_sentence(tmp_path):
    (tmp_path / "bad.toml").write_text('[optimize]\nstrategy = "grow"\n')
    proc = subprocess.run([sys.executable, "-m", "dlmpo", "optimize", "--config", str(tmp_path / "bad.toml")],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ") and "unknown strategy 'grow'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_cli_dry_run_prints_the_estimate(data_dir):
    proc = subprocess.run([sys.executable, "-m", "dlmpo", "optimize", *CLI_SMALL, "--data-dir", str(data_dir),
                           "--dry-run", "--json"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    est = out["estimate"]
    assert not os.path.exists(out["run_dir"])  # a dry run leaves nothing behind
    # seed val 8 + test 2x8 + 2 rounds x (4 traces + 3 x 8 screened on spare val rows + 8 val)
    assert est["calls"] == 8 + 16 + 2 * (4 + 24 + 8)


def test_ar_proposer_runs_the_same_loop(tmp_path, data_dir):
    """The AR baseline: SmolLM2 writes the blanks; same loop, selection and budget."""
    settings = OptimizeSettings(**{**SMALL, "rounds": 1, "mask_tokens": 24}, data_dir=str(data_dir), proposer="ar",
                                optimizer_model="embedded")
    result = asyncio.run(Optimizer(settings, tmp_path / "ar").run())
    (round1,) = result.rounds
    assert len(round1.candidates) == 2 and result.writer == "ar:embedded"
    for c in round1.candidates:
        assert "[MASK:" not in c.prompt and c.prompt.startswith(result.seed_prompt)
        assert "[MASK:24]" in c.masked
    # the writer shares the target's model and cache: its calls are in the spend once
    writer_calls = 2
    assert result.calls == result.usage["this_process"]["calls"]
    assert result.calls >= writer_calls + 8 + 8 + 4 + 8


def test_blank_parsing():
    from dlmpo.optimizer.ar_proposer import parse_blanks, render_blanks

    text, sizes = render_blanks("Intro [MASK:8] middle [MASK:4] end")
    assert text == "Intro [BLANK 1] middle [BLANK 2] end" and sizes == [8, 4]
    assert parse_blanks("BLANK 1: Be strict.\nBLANK 2: Watch sarcasm.", 2) == ["Be strict.", "Watch sarcasm."]
    assert parse_blanks("Just answer with one word.", 1) == ["Just answer with one word."]
    assert parse_blanks("BLANK 2: only the second", 2) == ["", "only the second"]
    assert parse_blanks("Be brief. [BLANK 1] [BLANK +]", 1) == ["Be brief."]
    assert parse_blanks("[blank 2] Be brief.", 1) == ["Be brief."]  # SST-5, AR seed 0 accepted "[blank 2] System prompt: …"


def test_budget_too_small_for_the_seed_prompt_is_a_clear_error_before_any_call(tmp_path, data_dir):
    # val 8 + test 8 + the test reserve 8 = 24 > 20: val alone would fit, but nothing is paid
    settings = OptimizeSettings(**SMALL, data_dir=str(data_dir), max_calls=20)
    with pytest.raises(UserError, match="cannot cover scoring the seed prompt"):
        asyncio.run(Optimizer(settings, tmp_path / "run").run())
    from dlmpo.lm.cache import CallCache

    assert len(CallCache(tmp_path / "run" / "calls.sqlite")) == 0


def test_estimate_counts_judge_calls_once_per_trace_on_episodic_tasks(data_dir, tmp_path):
    """An episode costs several target calls; the judge still writes one note per trace."""
    from dlmpo.optimizer import Optimizer, OptimizeSettings

    base = dict(task="tau-airline", data_dir=str(data_dir), rounds=1, candidates=1, train_size=2, val_size=2,
                test_size=2, batch_size=2, screen_batch=2)
    plain = Optimizer(OptimizeSettings(**base), tmp_path / "a").estimate()["calls"]
    judged = Optimizer(OptimizeSettings(**base, feedback="judge", judge="embedded"), tmp_path / "b").estimate()["calls"]
    assert judged - plain == 2


def test_cli_optimize_takes_set_key_value(data_dir):
    ok = subprocess.run([sys.executable, "-m", "dlmpo", "optimize", *CLI_SMALL, "--data-dir", str(data_dir),
                         "--set", "significance=0.2", "--set", "context_traces=3", "--dry-run", "--json"],
                        capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    bad = subprocess.run([sys.executable, "-m", "dlmpo", "optimize", *CLI_SMALL, "--data-dir", str(data_dir),
                          "--set", "significance", "--dry-run"], capture_output=True, text=True)
    assert bad.returncode == 2 and "--set expects key=value" in bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.parametrize("reply, failure", [
    (ChatResponse(text="", error="HTTP 500 after 3 tries"), "writer call failed: HTTP 500 after 3 tries"),
    (ChatResponse(text="   "), "writer wrote nothing"),
    (ChatResponse(text="Watch for sarcasm."), None),
])
def test_ar_writer_failure_is_a_rejected_candidate_not_an_empty_prompt(reply, failure):
    from dlmpo.optimizer.ar_proposer import ARProposer

    class Writer:
        async def chat(self, request):
            return reply

    proposer = ARProposer(Writer(), strategy="append", mask_tokens=8, span_ratio=0.25, span_length=4, seed=0)
    (proposal,) = asyncio.run(proposer.propose("Classify the review.", [], 1, 1))
    assert proposal.failure == failure
    assert ("Watch for sarcasm." in proposal.prompt) == (failure is None)


def test_textgrad_failed_critique_rejects_its_candidates_instead_of_a_stock_gradient():
    from dlmpo.optimizer.textgrad_proposer import TextGradProposer

    class Writer:
        async def chat(self, request):
            return ChatResponse(text="", error="timeout after 3 tries")

    proposals = asyncio.run(TextGradProposer(Writer()).propose("Classify the review.", [], 2, 1))
    assert [p.failure for p in proposals] == ["critique call failed: timeout after 3 tries"] * 2


def test_failed_judge_calls_keep_the_metric_sentence_and_are_counted():
    from dlmpo.optimizer.feedback import JudgeFeedback
    from dlmpo.tasks import Trace

    replies = iter([ChatResponse(text="Say negative for sarcasm."), ChatResponse(text="", error="HTTP 429"),
                    ChatResponse(text=" ")])

    class Judge:
        async def chat(self, request):
            return next(replies)

    traces = [Trace(str(i), "dull film", "positive", "positive", "negative", 0.0, f"Expected negative ({i}).")
              for i in range(3)]
    judge = JudgeFeedback(Judge())
    annotated = asyncio.run(judge.annotate("Classify.", traces))
    assert annotated.notes == ["Say negative for sarcasm.", "Expected negative (1).", "Expected negative (2)."]
    assert sorted(annotated.failures) == ["judge call failed: HTTP 429", "judge wrote nothing"]


def test_seed_prompt_too_long_for_the_dlm_fails_before_any_call(tmp_path, data_dir):
    settings = OptimizeSettings(**SMALL, data_dir=str(data_dir), seed_prompt="Answer. " * 1100)
    with pytest.raises(UserError, match="can rewrite at most .* shorten the prompt or lower --mask-tokens"):
        asyncio.run(Optimizer(settings, tmp_path / "run").run())
    assert not any(e.get("type") == "eval" for e in RunDir(tmp_path / "run").events())


def test_progress_reports_each_phase_without_logging_it(tmp_path, data_dir):
    seen: list[tuple[str, int, int | None]] = []
    settings = OptimizeSettings(**{**SMALL, "rounds": 1}, data_dir=str(data_dir))
    asyncio.run(Optimizer(settings, tmp_path / "run", on_progress=lambda *a: seen.append(a)).run())
    phases = list(dict.fromkeys(what for what, _, _ in seen))
    assert phases[0].startswith("loading the dlm proposer (tiny-random:dream)")
    assert "seed prompt on val" in phases and "seed prompt on test" in phases
    assert "round 1: dlm writing 2 candidates" in phases and "best prompt on test" in phases
    assert ("seed prompt on val", 8, 8) in seen  # every example ticks
    assert not any(e["type"] == "progress" for e in RunDir(tmp_path / "run").events())


def test_more_budget_continues_a_budget_stopped_run_and_pays_only_the_new_work(tmp_path, data_dir, finished_run):
    _, reference = finished_run
    out = tmp_path / "run"
    stopped = asyncio.run(Optimizer(OptimizeSettings(**SMALL, data_dir=str(data_dir), max_calls=reference.calls - 6),
                                    out).run())
    assert stopped.stop_reason.startswith("budget")
    continued = asyncio.run(Optimizer(OptimizeSettings(**SMALL, data_dir=str(data_dir)), out).run())
    assert (continued.best_prompt, continued.val, continued.test) == (reference.best_prompt, reference.val, reference.test)
    # the stopped run scored its own best prompt on test; that is the only work an uninterrupted run did not do
    extra = 0 if stopped.best_prompt in (reference.seed_prompt, reference.best_prompt) else SMALL["test_size"]
    assert continued.calls == reference.calls + extra


def test_the_run_directory_of_a_command_does_not_depend_on_its_budget():
    base = OptimizeSettings(**SMALL)
    assert base.identity() == OptimizeSettings(**{**SMALL, "rounds": 9}, max_calls=50, max_cost=1.0, patience=2).identity()
    assert base.identity() != OptimizeSettings(**{**SMALL, "candidates": 3}).identity()


def test_every_logged_event_reads_back_typed_and_writes_the_same_line(finished_run):
    """events.jsonl round-trips through the typed events: what resume, report and CLI read is what was written."""
    from dlmpo.optimizer.events import CandidateScored, Decision, RoundEnd, parse_event

    lines = RunDir(finished_run[0]).events()
    typed = [parse_event(line) for line in lines]
    assert [e.to_json() for e in typed] == [{k: v for k, v in line.items() if k != "time"} for line in lines]
    kinds = {type(e) for e in typed}
    assert {CandidateScored, RoundEnd} <= kinds
    round_end = next(e for e in typed if isinstance(e, RoundEnd))
    assert all(c.prompt for c in round_end.record.candidates)
    assert all(isinstance(e.verdict.p_value, float) for e in typed if isinstance(e, Decision))
    with pytest.raises(ValueError, match="unknown event type"):
        parse_event({"type": "nonsense"})
    with pytest.raises(ValueError, match="without"):
        parse_event({"type": "round_start"})
