"""dlmpo.integrations.dspy: the DLMPO teleprompter on a two-predictor DSPy program served by the
embedded target through ChatLM (tiny settings: mechanics, not quality)."""

import json
import sys

import pytest

from dlmpo.errors import UserError


def test_chat_lm_serves_dspy_from_the_embedded_target(tmp_path):
    pytest.importorskip("dspy")
    from dlmpo.integrations.dspy import ChatLM

    lm = ChatLM("embedded", max_tokens=8, cache_path=tmp_path / "calls.sqlite")
    out = lm("Say hello.")
    assert isinstance(out, list) and isinstance(out[0], str) and out[0].strip()
    assert lm.chat_model.accounting.calls == 1
    lm.copy(temperature=0.0)("Say hello.")  # a copy shares the model
    assert lm.chat_model.accounting.cache_hits == 1


def test_dlmpo_compiles_a_two_predictor_program(tmp_path):
    dspy = pytest.importorskip("dspy")
    from dlmpo.integrations.dspy import DLMPO, ChatLM, lenient_adapter

    class TwoSteps(dspy.Module):
        def __init__(self):
            super().__init__()
            self.topic = dspy.Predict(dspy.Signature("text -> topic", "Name the topic of the text."))
            self.label = dspy.Predict(dspy.Signature("text, topic -> label", "Answer positive or negative."))

        def forward(self, text):
            topic = self.topic(text=text).topic
            return self.label(text=text, topic=topic)

    asked = []

    def metric(gold, pred, trace=None, pred_name=None, pred_trace=None):  # GEPA's metric form
        right = gold.label in (pred.label or "").lower()
        if pred_name is not None:
            asked.append((pred_name, len(pred_trace)))
        return dspy.Prediction(score=float(right), feedback=f"The answer should be {gold.label}.")

    data = [dspy.Example(text=t, label=y).with_inputs("text") for t, y in
            [("I loved this film.", "positive"), ("Awful, boring food.", "negative"), ("A wonderful trip.", "positive")]]
    lm = ChatLM("embedded", max_tokens=24, cache_path=tmp_path / "calls.sqlite")
    dspy.configure(lm=lm, adapter=lenient_adapter())
    teleprompter = DLMPO(metric, dlm="tiny-random:dream", rounds=1, candidates=1, max_calls=40, batch_size=3,
                         steps=4, mask_tokens=6, readability=False, run_dir=tmp_path / "run")
    contexts = []
    propose = teleprompter.writer.propose

    def spy(incumbent, context, k, **kw):  # the real DLM writer, its inputs recorded
        contexts.append((incumbent, context))
        return propose(incumbent, context, k, **kw)

    teleprompter.writer.propose = spy
    program = TwoSteps()
    optimized = teleprompter.compile(program, trainset=data, valset=data)

    assert optimized is not program and isinstance(optimized, TwoSteps)
    assert [c[0] for c in contexts] == ["Name the topic of the text.", "Answer positive or negative."]
    topic_ctx, label_ctx = contexts[0][1], contexts[1][1]
    assert topic_ctx and label_ctx
    assert all(c.query.startswith("text: ") and c.output.startswith("topic: ") for c in topic_ctx)
    assert all("topic: " in c.query and c.output.startswith("label: ") for c in label_ctx)
    assert all(c.feedback.startswith("The answer should be") and c.score in (0, 1) for c in label_ctx)
    assert {name for name, n in asked} == {"topic", "label"} and all(n == 1 for _, n in asked)
    assert teleprompter.calls <= 40
    events = [json.loads(line) for line in (tmp_path / "run" / "events.jsonl").read_text().splitlines()]
    assert events[0]["type"] == "run_start" and events[-1]["type"] == "run_end"
    assert sum(e["type"] == "candidate" for e in events) == 2
    for e in events:
        if e["type"] == "decision" and "verdict" in e:
            assert e["accepted"] == e["verdict"]["significant"]
    best = json.loads((tmp_path / "run" / "best_prompt.txt").read_text())
    assert best == {n: p.signature.instructions for n, p in optimized.named_predictors()}


def test_a_missing_dspy_is_one_sentence(monkeypatch):
    from dlmpo.integrations import dspy as integration

    monkeypatch.setitem(sys.modules, "dspy", None)  # `import dspy` raises ImportError
    monkeypatch.setattr(integration, "_CLASS", None)
    with pytest.raises(UserError, match=r"pip install 'dlmpo\[dspy\]'"):
        integration.DLMPO(lambda g, p, t=None: 1.0)
