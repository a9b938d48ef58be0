"""dlmpo.integrations.mlflow: DLMPromptOptimizer inside mlflow.genai.optimize_prompts, against a
local sqlite tracking store; the optimized version is read back from the Prompt Registry
(tiny-random DLM: mechanics, not quality)."""

import sys

import pytest

from dlmpo.errors import UserError


def test_optimize_prompts_registers_the_dlm_version(tmp_path, monkeypatch):
    mlflow = pytest.importorskip("mlflow")
    from mlflow.entities import Feedback
    from mlflow.genai.scorers import scorer

    from dlmpo.integrations.mlflow import DLMPromptOptimizer

    monkeypatch.chdir(tmp_path)  # mlflow's artifacts land here
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    mlflow.set_experiment("dlmpo-test")
    seed = mlflow.genai.register_prompt(name="sentiment", template="Classify the review: {{text}}")

    def predict_fn(text):  # a toy program that reads the prompt from the registry, as MLflow asks
        rendered = mlflow.genai.load_prompt("prompts:/sentiment/1").format(text=text)
        return "positive" if "good" in rendered else "negative"

    @scorer
    def right(outputs, expectations):
        ok = outputs == expectations["label"]
        return Feedback(value=float(ok), rationale="correct" if ok else f"wrong, the label is {expectations['label']}")

    data = [{"inputs": {"text": t}, "expectations": {"label": y}} for t, y in
            [("good film", "positive"), ("bad food", "negative"), ("a good trip", "positive"), ("dull", "negative")]]
    optimizer = DLMPromptOptimizer("tiny-random:dream", rounds=1, candidates=2, max_metric_calls=20, steps=4,
                                   mask_tokens=6, readability=False)
    seen = []
    propose = optimizer.writer.propose
    optimizer.writer.propose = lambda inc, ctx, k, **kw: (seen.append(ctx), propose(inc, ctx, k, **kw))[1]
    result = mlflow.genai.optimize_prompts(predict_fn=predict_fn, train_data=data, prompt_uris=[seed.uri],
                                           optimizer=optimizer, scorers=[right])

    assert result.optimizer_name == "DLMPromptOptimizer"
    (version,) = result.optimized_prompts
    assert version.name == "sentiment" and version.version == 2
    assert mlflow.genai.load_prompt("prompts:/sentiment/2").template == version.template
    assert "{{text}}" in version.template or "{{ text }}" in version.template
    assert seen and all(c.query.startswith("text: ") for c in seen[0])
    assert all(c.feedback.startswith("right: ") and "expected: label: " in c.feedback for c in seen[0])  # rationales
    assert optimizer.calls <= 20 and 0 <= result.initial_eval_score <= 1
    assert sum(h["type"] == "candidate" for h in optimizer.history) == 2


def test_a_missing_mlflow_is_one_sentence(monkeypatch):
    from dlmpo.integrations import mlflow as integration

    monkeypatch.setitem(sys.modules, "mlflow", None)
    monkeypatch.setattr(integration, "_CLASS", None)
    with pytest.raises(UserError, match=r"pip install 'dlmpo\[mlflow\]'"):
        integration.DLMPromptOptimizer()
