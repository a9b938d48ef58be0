import random

import pytest

from dlmpo.errors import UserError
from dlmpo.optimizer import load_settings
from dlmpo.optimizer.guards import PromptGuard
from dlmpo.optimizer.rounds import select_context
from dlmpo.optimizer.strategies import HEADING, apply_strategy
from dlmpo.report.diff import diff_markdown
from dlmpo.tasks import Trace

count = lambda text: len(text.split())  # noqa: E731
SEED = "You are a sentiment classifier. Read the review. Reply with exactly one word: positive or negative."


def run(spec, prompt=SEED, i=0, n=8):
    return apply_strategy(spec, i, prompt, random.Random(0), count, n=n, ratio=0.3, span_length=3)


def test_append_adds_heading_then_extends_it():
    first, name = run("append")
    assert name == "append" and first == f"{SEED}\n\n{HEADING}\n[MASK:8]"
    grown, _ = run("append", prompt=f"{SEED}\n\n{HEADING}\nBe strict.")
    assert grown == f"{SEED}\n\n{HEADING}\nBe strict.\n[MASK:8]"


def test_regrow_remasks_the_added_section():
    text, _ = run("regrow", prompt=f"{SEED}\n\n{HEADING}\nBe very strict about sarcasm and irony here.")
    assert text == f"{SEED}\n\n{HEADING}\n[MASK:8]"
    assert run("regrow", n=4, prompt=f"{SEED}\n\n{HEADING}\none two three four five six")[0].endswith("[MASK:6]")


def test_span_masks_words_of_the_original_only():
    text, _ = run("span")
    assert "[MASK:" in text and text != SEED
    kept = [w for w in text.split() if not w.startswith("[MASK")]
    assert all(w in SEED.split() for w in kept)


def test_sentence_masks_whole_sentences():
    text, _ = run("sentence")
    sentences = ["You are a sentiment classifier.", "Read the review.",
                 "Reply with exactly one word: positive or negative."]
    assert sum(s in text for s in sentences) == 2 and "[MASK:" in text


def test_alternate_and_combine():
    assert run("append,span", i=0)[1] == "append" and run("append,span", i=1)[1] == "span"
    text, name = run("span+append")
    assert name == "span+append" and text.count("[MASK:") >= 2 and text.endswith("[MASK:8]")


def test_guard_rejects_copies_length_and_duplicates():
    guard = PromptGuard(max_chars=200, copy_ngram=5)
    source = "the film is a charming and often affecting journey through grief"
    assert "copies training text" in guard.reject_reason(
        f"{SEED} Example: a charming and often affecting journey.", SEED, [source])
    assert guard.reject_reason(SEED + " x" * 200, SEED, []) == "longer than 200 characters"
    assert guard.reject_reason(SEED, SEED, []) == "identical to the incumbent"
    assert guard.reject_reason(SEED + " Be strict about sarcasm.", SEED, [source]) is None


def test_guard_rejects_the_canvas_trace_format_unless_the_incumbent_has_it():
    guard = PromptGuard(max_chars=1000, copy_ngram=8)
    seed = "Classify the review."
    assert "trace format" in guard.reject_reason(seed + "\n[1] User: great film", seed, [])
    assert "trace format" in guard.reject_reason(seed + "\nScore: 0\nFeedback: wrong", seed, [])
    assert "trace format" in guard.reject_reason(seed + "\n[7] Sentence 1: a made-up example", seed, [])
    assert guard.reject_reason(seed + " Give a score: 1 to 5.", seed, []) is None  # not at a line start
    own = "Grade the answer.\nFeedback: one sentence."
    assert guard.reject_reason(own + "\nFeedback: be kind.", own, []) is None


def test_context_puts_failures_first():
    mk = lambda i, s: Trace(f"e{i}", f"q{i}", f"o{i}", None, "positive", s, f"fb{i}")  # noqa: E731
    traces = [mk(0, 1), mk(1, 0), mk(2, 1), mk(3, 0), mk(4, 1), mk(5, 0), mk(6, 0)]
    items = select_context(traces, [t.feedback for t in traces], 6)
    assert [i.score for i in items] == [0, 0, 0, 0, 1, 1]
    assert items[0].feedback == "fb1"


def test_context_puts_answers_that_name_no_label_first():
    mk = lambda i, pred: Trace(f"e{i}", f"q{i}", f"o{i}", pred, "positive", 0.0, f"fb{i}")  # noqa: E731
    traces = [mk(0, "negative"), mk(1, "negative"), mk(2, None), mk(3, "negative"), mk(4, None)]
    items = select_context(traces, [t.feedback for t in traces], 3)
    assert [i.feedback for i in items] == ["fb2", "fb4", "fb0"]


def test_settings_errors():
    with pytest.raises(UserError, match="unknown strategy 'grow'"):
        load_settings(None, {"strategy": "append,grow"})
    with pytest.raises(UserError, match="needs a judge model"):
        load_settings(None, {"feedback": "judge"})
    with pytest.raises(UserError, match="'rounds'"):
        load_settings(None, {"rounds": 0})
    with pytest.raises(UserError, match="unknown remasking rule"):
        load_settings(None, {"alg": "best"})


def test_settings_from_file_with_overrides(tmp_path):
    (tmp_path / "run.toml").write_text('[optimize]\nrounds = 3\ncandidates = 5\nstrategy = "span+append"\n')
    s = load_settings(tmp_path / "run.toml", {"rounds": 7, "candidates": None})
    assert (s.rounds, s.candidates, s.strategy) == (7, 5, "span+append")
    (tmp_path / "bad.toml").write_text("[optimize]\nrounds = \n")
    with pytest.raises(UserError, match="not valid TOML"):
        load_settings(tmp_path / "bad.toml", {})
    (tmp_path / "typo.toml").write_text("[optimize]\nround = 3\n")
    with pytest.raises(UserError, match="'round' extra inputs"):
        load_settings(tmp_path / "typo.toml", {})


def test_diff_marks_added_and_removed_spans():
    assert diff_markdown("Be brief. Answer now.", "Be brief. Answer carefully now.") == \
        "Be brief. Answer [+carefully+] now."
    assert "[-brief.-]" in diff_markdown("Be brief.", "Be")


POLICY = ("# Retail agent policy\n\nYou help users. Be polite and brief.\n\n"
          "- Check the order id first. Then ask for the reason.\n- Never refund twice.\n1. Confirm the user.\n2. Act.")


@pytest.mark.parametrize("spec", ["span", "sentence"])
def test_span_and_sentence_keep_lines_and_markdown(spec):
    for seed in range(5):
        text = apply_strategy(spec, 0, POLICY, random.Random(seed), count, n=8, ratio=0.3, span_length=3)[0]
        assert "[MASK:" in text
        assert text.count("\n") == POLICY.count("\n")  # no line is merged or split
        for masked, original in zip(text.split("\n"), POLICY.split("\n")):
            for marker in ("# ", "- ", "1. ", "2. "):
                assert masked.startswith(marker) == original.startswith(marker)


def test_guard_counts_tokens_when_the_proposer_has_a_limit():
    guard = PromptGuard(max_chars=1000, copy_ngram=8, max_tokens=6, count_tokens=lambda t: len(t.split()))
    assert guard.reject_reason("one two three four five six", "x", []) is None
    assert "longer than 6 tokens" in guard.reject_reason("one two three four five six seven", "x", [])
