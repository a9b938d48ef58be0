import asyncio

import pytest

from dlmpo.errors import UserError
from dlmpo.lm import RetryPolicy, open_target
from dlmpo.optimizer.feedback import HumanFeedback, JudgeFeedback, MetricFeedback, NoFeedback, Notes
from dlmpo.tasks import Trace
from tests.support.fake_openai_server import FakeOpenAIServer

TRACES = [Trace("val:1", "Review: a dull film\nIs this review positive or negative?", "positive", "positive",
                "negative", 0.0, "Expected 'negative' but the answer was 'positive'."),
          Trace("val:2", "Review: a joy\nIs this review positive or negative?", "positive", "positive",
                "positive", 1.0, "Correct: the answer is 'positive'.")]


def test_metric_and_none():
    assert asyncio.run(MetricFeedback().annotate("p", TRACES)).notes == [t.feedback for t in TRACES]
    assert asyncio.run(NoFeedback().annotate("p", TRACES)).notes == [None, None]


def test_judge_writes_one_critique_per_trace(tmp_path):
    def critique(body):
        user = body["messages"][-1]["content"]
        return "Sarcasm was missed." if "Correct answer: negative" in user else "Fine."

    with FakeOpenAIServer(answer=critique) as server:
        judge = open_target(f"{server.base_url}#judge-model", cache_path=tmp_path / "c.sqlite",
                            retry=RetryPolicy(max_retries=1, base_delay=0.01))
        annotated = asyncio.run(JudgeFeedback(judge).annotate("Classify reviews.", TRACES))
        assert annotated.notes == ["Sarcasm was missed.", "Fine."] and annotated.failures == []
        assert "System prompt:\nClassify reviews." in server.requests[0]["messages"][-1]["content"]
        assert judge.accounting.calls == 2


def test_judge_failure_falls_back_to_metric(tmp_path):
    with FakeOpenAIServer() as server:
        server.faults = ["500"] * 10
        judge = open_target(f"{server.base_url}#judge-model", cache_path=tmp_path / "c.sqlite",
                            retry=RetryPolicy(max_retries=1, base_delay=0.01))
        annotated = asyncio.run(JudgeFeedback(judge).annotate("p", TRACES[:1]))
        assert annotated.notes == [TRACES[0].feedback] and annotated.failures[0].startswith("judge call failed")


def test_human_notes_files(tmp_path):
    (tmp_path / "notes.txt").write_text("Watch for sarcasm.")
    notes = asyncio.run(HumanFeedback(str(tmp_path / "notes.txt")).annotate("p", TRACES)).notes
    assert notes[0].endswith("Note: Watch for sarcasm.")
    (tmp_path / "notes.jsonl").write_text('{"example_id": "val:2", "note": "good"}\n')
    notes = asyncio.run(HumanFeedback(str(tmp_path / "notes.jsonl")).annotate("p", TRACES)).notes
    assert notes == [TRACES[0].feedback, f"{TRACES[1].feedback} Note: good"]
    with pytest.raises(UserError, match="does not exist"):
        HumanFeedback(str(tmp_path / "missing.txt"))
    (tmp_path / "bad.jsonl").write_text('{"id": 1}\n')
    with pytest.raises(UserError, match="bad.jsonl, line 1"):
        HumanFeedback(str(tmp_path / "bad.jsonl"))


def test_feedback_notes_are_logged_and_reused_on_resume(tmp_path, data_dir):
    """A note typed by a person is not asked for again when an interrupted round is redone."""
    from dlmpo.optimizer import Optimizer, OptimizeSettings
    from dlmpo.runs.rundir import RunDir

    class CountingFeedback(MetricFeedback):
        calls = 0

        async def annotate(self, prompt, traces):
            CountingFeedback.calls += 1
            return Notes([f"typed note {i}" for i in range(len(traces))])

    settings = OptimizeSettings(task="sst2", target="embedded", dlm="tiny-random:dream", rounds=1, candidates=1,
                                train_size=4, val_size=4, test_size=4, batch_size=2, screen_batch=4, steps=4,
                                mask_tokens=4, data_dir=str(data_dir))
    out = tmp_path / "run"
    RunDir(out).append({"type": "feedback", "round": 1, "source": "human", "notes": ["kept", "kept too"]})
    opt = Optimizer(settings, out, feedback=CountingFeedback())
    asyncio.run(opt.run())
    assert CountingFeedback.calls == 0
