import json

import pytest

from dlmpo.catalog import get_task
from dlmpo.errors import DataError, UserError
from dlmpo.tasks.base import Example, SplitSet, carve


@pytest.mark.parametrize("name, labels", [
    ("sst2", {"negative", "positive"}),
    ("sst5", {"very negative", "negative", "neutral", "positive", "very positive"}),
    ("mrpc", {"equivalent", "not equivalent"}),
    ("snli", {"entailment", "neutral", "contradiction"}),
])
def test_builtin_loads_from_shared_data(data_dir, name, labels):
    task = get_task(name, data_dir)
    train, val, test = (task.examples(s) for s in ("train", "val", "test"))
    assert train and val and test
    assert {ex.label for ex in val + test} == labels
    # held-out splits never overlap
    ids = [ex.id for ex in train + val + test]
    assert len(ids) == len(set(ids))
    assert task.notes, "carving a missing split must be said"
    message = task.user_message(val[0])
    assert all(v in message for v in val[0].inputs.values())


def test_sst2_counts(data_dir):
    task = get_task("sst2", data_dir)
    assert len(task.examples("train")) == 67349
    assert len(task.examples("val")) + len(task.examples("test")) == 872


def test_snli_drops_no_consensus_rows(data_dir):
    task = get_task("snli", data_dir)
    total = sum(len(task.examples(s)) for s in ("train", "val", "test"))
    raw = [json.loads(line) for line in (data_dir / "snli" / "dev_sample.jsonl").read_text().splitlines()]
    assert total == sum(r["gold_label"] != "-" for r in raw) < len(raw)


def test_mrpc_quotes_are_detokenised(data_dir):
    task = get_task("mrpc", data_dir)
    assert not any("<QUOTE>" in v for ex in task.examples("train")[:500] for v in ex.inputs.values())


def test_splits_are_deterministic_and_seeded(data_dir):
    a = get_task("sst2", data_dir)
    b = get_task("sst2", data_dir)
    c = get_task("sst2", data_dir, split_seed=1)
    assert [e.id for e in a.examples("val")] == [e.id for e in b.examples("val")]
    assert [e.id for e in a.examples("val")] != [e.id for e in c.examples("val")]


def test_carve_is_independent_of_row_order():
    rows = [Example(f"r{i}", {"x": str(i)}, "a") for i in range(100)]
    p1 = carve(rows, {"a": 0.3, "b": 0.7})
    p2 = carve(list(reversed(rows)), {"a": 0.3, "b": 0.7})
    assert [e.id for e in p1["a"]] == [e.id for e in p2["a"]]
    assert len(p1["a"]) == 30 and len(p1["b"]) == 70


def test_split_set_uses_real_test_when_present():
    mk = lambda p, n: [Example(f"{p}{i}", {"x": "t"}, "a") for i in range(n)]  # noqa: E731
    s = SplitSet.from_available({"train": mk("t", 50), "dev": mk("d", 10), "test": mk("s", 20)}, "x")
    assert (len(s.train), len(s.val), len(s.test), s.notes) == (50, 10, 20, [])


def test_a_local_test_file_is_the_held_out_split(tmp_path):
    folder = tmp_path / "sst2"
    folder.mkdir()
    (folder / "train.tsv").write_text("".join(f"train row {i}\t{i % 2}\n" for i in range(20)))
    (folder / "dev.tsv").write_text("".join(f"dev row {i}\t{i % 2}\n" for i in range(10)))
    task = get_task("sst2", tmp_path)
    assert {ex.inputs["sentence"][:3] for ex in task.examples("test")} == {"dev"}  # carved from dev
    (folder / "test.tsv").write_text("".join(f"test row {i}\t{i % 2}\n" for i in range(6)))
    task = get_task("sst2", tmp_path)
    assert [ex.inputs["sentence"] for ex in task.examples("test")] == [f"test row {i}" for i in range(6)]
    assert len(task.examples("val")) == 10 and not any("carved" in n for n in task.notes)


def test_unknown_task_and_split(data_dir):
    with pytest.raises(UserError, match="Unknown task 'nope'"):
        get_task("nope", data_dir)
    with pytest.raises(UserError, match="Unknown split"):
        get_task("sst2", data_dir).examples("dev")


def test_malformed_row_names_file_and_line(tmp_path):
    (tmp_path / "sst2").mkdir()
    (tmp_path / "sst2" / "train.tsv").write_text("good row\t1\nbad row without label\n")
    (tmp_path / "sst2" / "dev.tsv").write_text("fine\t0\n")
    with pytest.raises(DataError, match=r"train.tsv, line 2"):
        get_task("sst2", tmp_path)


def test_missing_task_folder(tmp_path):
    with pytest.raises(DataError, match="No folder"):
        get_task("sst5", tmp_path)


def test_custom_jsonl_label_task(tmp_path):
    rows = [{"text": f"ticket {i}", "label": ["bug", "billing"][i % 2]} for i in range(40)]
    (tmp_path / "t.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    (tmp_path / "task.toml").write_text(
        '[task]\nname = "tickets"\ndata = "t.jsonl"\ninput_fields = ["text"]\n'
        'labels = ["bug", "billing"]\nseed_prompt = "Route the ticket."\ntemplate = "Ticket: {text}"\n'
    )
    task = get_task(str(tmp_path / "task.toml"))
    assert task.name == "tickets"
    ex = task.examples("val")[0]
    assert task.user_message(ex) == f"Ticket: {ex.inputs['text']}"
    assert task.grade(ex, f"Category: {ex.label}").score == 1.0


def test_custom_csv_regex_task(tmp_path):
    (tmp_path / "q.csv").write_text("question,answer\n" + "\n".join(f"what is {i}+1?,{i + 1}" for i in range(30)))
    (tmp_path / "task.json").write_text(json.dumps({
        "name": "add", "data": "q.csv", "input_fields": ["question"], "label_field": "answer",
        "metric": "regex", "pattern": r"(-?\d+)\s*$", "seed_prompt": "Add.",
    }))
    task = get_task(str(tmp_path / "task.json"))
    ex = task.examples("test")[0]
    assert task.grade(ex, f"The answer is {ex.label}").score == 1.0
    assert task.grade(ex, "I do not know").prediction is None


def test_custom_task_errors(tmp_path):
    (tmp_path / "t.jsonl").write_text('{"text": "a", "label": "x"}\n{"text": "b"}\n')
    (tmp_path / "task.toml").write_text(
        '[task]\nname = "t"\ndata = "t.jsonl"\ninput_fields = ["text"]\nlabels = ["x"]\nseed_prompt = "s"\n'
    )
    with pytest.raises(DataError, match=r"t.jsonl, line 2: missing field\(s\) label"):
        get_task(str(tmp_path / "task.toml"))
    (tmp_path / "bad.toml").write_text('[task]\nname = "t"\ndata = "t.jsonl"\ninput_fields = ["text"]\nseed_prompt = "s"\n')
    with pytest.raises(UserError, match="needs a list of labels"):
        get_task(str(tmp_path / "bad.toml"))


def test_grade_feedback_sentences(data_dir):
    task = get_task("sst2", data_dir)
    ex = next(e for e in task.examples("val") if e.label == "positive")
    assert task.grade(ex, "negative").feedback == "Expected 'positive' but the answer was 'negative'."
    assert "Format error: the answer named no single label" in task.grade(ex, "The movie review is").feedback
    m = task.metrics([ex, ex], ["positive", None])
    assert m["accuracy"] == 0.5
