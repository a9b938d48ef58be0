"""dlmpo.integrations.mlflow: DLMPromptOptimizer inside mlflow.genai.optimize_prompts, against a
local sqlite tracking store; the optimized version is read back from the Prompt Registry
(tiny-random DLM: mechanics, not quality); and `dlmpo optimize --mlflow`, read back with MlflowClient."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from dlmpo.errors import UserError
from tests.support.fake_openai_server import FakeOpenAIServer


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


# ---------------------------------------------------------------- dlmpo optimize --mlflow


def _optimize(data_dir, out, target, *extra):
    return [sys.executable, "-m", "dlmpo", "optimize", "--task", "sst2", "--data-dir", str(data_dir), "--target",
            f"{target.base_url}#t", "--dlm", "tiny-random:dream", "--rounds", "2", "--candidates", "2",
            "--train-size", "4", "--val-size", "4", "--test-size", "4", "--set", "steps=4", "--set", "mask_tokens=6",
            "--set", "readability=false", "--out", str(out), *extra]


def test_optimize_logs_the_run_into_mlflow(data_dir, tmp_path):
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with FakeOpenAIServer(answer=lambda body: "negative") as target:
        first = subprocess.run(_optimize(data_dir, tmp_path / "run", target, "--mlflow", uri, "--json"),
                               capture_output=True, text=True, timeout=900, cwd=tmp_path)  # artifacts under tmp_path
        assert first.returncode == 0, first.stderr
        more = _optimize(data_dir, tmp_path / "run", target, "--mlflow", uri)  # one more round: the run resumes
        more[more.index("--rounds") + 1] = "3"
        resumed = subprocess.run(more, capture_output=True, text=True, timeout=900, cwd=tmp_path)
        assert resumed.returncode == 0, resumed.stderr
    result = json.loads(first.stdout.strip().splitlines()[-1])

    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name("dlmpo").experiment_id], order_by=["start_time ASC"])
    assert len(runs) == 2
    run = runs[0]
    assert run.info.run_id in first.stderr and run.info.status == "FINISHED"
    assert run.data.params["task"] == "sst2" and run.data.params["rounds"] == "2"
    assert run.data.params["dlm"] == "tiny-random:dream" and "seed_prompt" not in run.data.params
    assert run.data.tags["dlmpo.stop_reason"] == result["stop_reason"]
    history = client.get_metric_history(run.info.run_id, "best_val")
    assert [m.step for m in history] == [1, 2]
    assert all(m.value == result["val"]["best"] for m in history)  # the target always answers the same
    assert [m.value for m in client.get_metric_history(run.info.run_id, "candidates")] == [2, 2]
    spent = [m.value for m in client.get_metric_history(run.info.run_id, "spend_calls")]
    assert spent == sorted(spent) and 0 < spent[-1] <= result["calls"]
    assert run.data.metrics["test_best"] == result["test"]["best"] and run.data.metrics["calls"] == result["calls"]
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"best_prompt.txt", "seed_prompt.txt", "report.md", "report.html", "scores.png", "result.json",
            "events.jsonl", "config.json"} <= artifacts
    best = Path(client.download_artifacts(run.info.run_id, "best_prompt.txt", str(tmp_path)))
    assert best.read_text() == result["best_prompt"]

    again = runs[1]  # the resumed run's MLflow run also holds the rounds logged before
    assert again.data.tags["dlmpo.resumed_after_rounds"] == "[1, 2]" and again.data.params["rounds"] == "3"
    assert [m.step for m in client.get_metric_history(again.info.run_id, "best_val")] == [1, 2, 3]


def test_optimize_mlflow_without_the_extra_is_one_sentence(data_dir, tmp_path):
    block = "import sys; sys.modules['mlflow'] = None; from dlmpo.cli import main; main(sys.argv[1:])"
    with FakeOpenAIServer(answer=lambda body: "negative") as target:
        cmd = _optimize(data_dir, tmp_path / "run", target, "--mlflow", "sqlite:///m.db")
        proc = subprocess.run([sys.executable, "-c", block, *cmd[3:]], capture_output=True, text=True, timeout=300,
                              cwd=tmp_path)
    errors = [line for line in proc.stderr.splitlines() if line.strip() and not line.startswith(("note:", "warning:"))]
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert errors == ["error: dlmpo optimize --mlflow needs the mlflow package: pip install 'dlmpo[mlflow]' "
                      "(or pip install mlflow)."]
    assert not target.requests and not (tmp_path / "run").exists()  # refused before the run


def test_a_tracking_store_that_refuses_is_one_sentence(tmp_path):
    from dlmpo.integrations.mlflow_run import MLflowRun
    from dlmpo.optimizer.settings import OptimizeSettings

    with pytest.raises(UserError, match=r"^MLflow tracking store 'foo://x': "):
        MLflowRun("foo://x", OptimizeSettings(task="sst2"), tmp_path / "run")
