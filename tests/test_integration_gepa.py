"""dlmpo.integrations.gepa: the DLM as GEPA's candidate proposer, inside gepa.optimize and as the
`gepa+dlm` row of dlmpo compare (tiny-random DLM: mechanics, not quality)."""

import json
import subprocess
import sys

import pytest

from dlmpo.integrations.gepa import context_items, failures_first
from tests.support.fake_openai_server import FakeOpenAIServer


def test_reflective_rows_become_dlm_traces():
    rows = [{"Inputs": {"review": "great film"}, "Generated Outputs": "negative", "Feedback": "Score 0. Expected positive."},
            {"Inputs": "dull", "Generated Outputs": "negative", "Feedback": "Correct.", "Score": 1},
            {"Feedback": "no inputs: skipped"}]
    items = context_items(rows)
    assert len(items) == 2
    assert items[0].query == "review: great film" and items[0].score == 0 and items[0].feedback == "Expected positive."
    assert items[1].score == 1.0 and items[1].feedback == "Correct."
    assert [i.query for i in failures_first(items[::-1], 1)] == ["review: great film"]


def test_gepa_optimize_with_the_dlm_proposer():
    gepa = pytest.importorskip("gepa")
    from gepa.core.adapter import EvaluationBatch

    from dlmpo.integrations.gepa import dlm_proposer

    seen = []

    class Adapter:  # a toy program: the answer is right when the instruction mentions the input's word
        propose_new_texts = None

        def evaluate(self, batch, candidate, capture_traces=False):
            text = candidate["instructions"]
            outs = [f"{x} -> {'yes' if x in text else 'no'}" for x in batch]
            scores = [float(x in text) for x in batch]
            return EvaluationBatch(outputs=outs, scores=scores, trajectories=list(zip(batch, outs, scores)) if capture_traces else None)

        def make_reflective_dataset(self, candidate, eval_batch, components_to_update):
            rows = [{"Inputs": x, "Generated Outputs": o, "Feedback": f"Score {s:g}. Mention '{x}'."}
                    for x, o, s in eval_batch.trajectories]
            seen.append(rows)
            return {c: rows for c in components_to_update}

    proposer = dlm_proposer("tiny-random:dream", steps=4, mask_tokens=6, readability=False, seed=1)
    result = gepa.optimize(seed_candidate={"instructions": "Answer the question."}, trainset=["alpha", "beta", "gamma"],
                           valset=["alpha", "beta"], adapter=Adapter(), custom_candidate_proposer=proposer,
                           reflection_minibatch_size=2, max_metric_calls=16, display_progress_bar=False, seed=0)
    assert seen and proposer.log, "GEPA never asked the DLM for an edit"
    assert all(r["component"] == "instructions" and r["traces"] == 2 for r in proposer.log)
    assert any(r["changed"] for r in proposer.log)
    assert result.num_candidates >= 1 and "instructions" in result.best_candidate


def test_compare_has_a_gepa_dlm_row(data_dir, tmp_path):
    pytest.importorskip("gepa")
    tiny = ["--task", "sst2", "--rounds", "1", "--candidates", "1", "--train-size", "4", "--val-size", "4",
            "--test-size", "6", "--set", "steps=4", "--set", "mask_tokens=8", "--set", "readability=false"]
    with FakeOpenAIServer(answer=lambda body: "negative") as target:
        proc = subprocess.run([sys.executable, "-m", "dlmpo", "compare", *tiny, "--target", f"{target.base_url}#t",
                               "--dlm", "tiny-random:dream", "--optimizers", "gepa+dlm", "--seeds", "1",
                               "--max-calls", "40", "--data-dir", str(data_dir), "--out", str(tmp_path), "--json"],
                              capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    row = json.loads(proc.stdout.strip().splitlines()[-1])["results"][0]
    assert row["optimizer"] == "gepa+dlm" and 0 < row["calls"] <= 40
    run = next(p for p in tmp_path.iterdir() if p.is_dir() and (p / "events.jsonl").is_file())
    stops = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines() if '"stop"' in line]
    assert stops and stops[-1]["dlm_edits"] >= 1
    assert json.loads((run / "result.json").read_text())["stop_reason"] == "gepa+dlm"


def test_a_missing_gepa_is_one_sentence(monkeypatch):
    from dlmpo.errors import UserError
    from dlmpo.integrations.gepa import dlm_proposer

    monkeypatch.setitem(sys.modules, "gepa", None)
    with pytest.raises(UserError, match=r"pip install 'dlmpo\[gepa\]'"):
        dlm_proposer("tiny-random:dream")
