import pytest

from dlmpo.tasks.builtin import BUILTINS
from dlmpo.tasks.parsing import LabelParser


def parser(name):
    spec = BUILTINS[name]
    return LabelParser.build(spec.labels, spec.synonyms)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("positive", "positive"),
        ("Positive.", "positive"),
        ("  NEGATIVE!! ", "negative"),
        ("Answer: positive", "positive"),
        ("**Answer:** negative", "negative"),
        ("Sentiment - negative", "negative"),
        ("This review is positive, as it highlights the humor", "positive"),
        ("The review is not positive.", None),
        ("It is not negative; it is positive.", "positive"),
        ("The review isn't positive, it is negative", "negative"),
        ("positive or negative", None),  # echoes the label list
        ("Positive or negative?", None),
        ("The movie review is", None),  # cut-off sentence
        ("", None),
        ("I think the answer is neg", "negative"),
        ("'positive'", "positive"),
        ("positively", None),  # no whole-word match
        ("Positive. The acting is not negative at all.", "positive"),
        ("Answer: The sentiment is positive, not negative", "positive"),
        ("The reviewer mentions negative and positive points. Answer: negative", "negative"),
    ],
)
def test_sst2_parser(text, expected):
    assert parser("sst2").parse(text) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("very positive", "very positive"),
        ("Very Negative", "very negative"),
        ("positive", "positive"),
        ("The sentiment is strongly negative", "very negative"),
        ("neutral", "neutral"),
        ("It is not very positive, just positive", "positive"),
        ("very negative, negative, neutral, positive or very positive", None),
    ],
)
def test_sst5_parser(text, expected):
    assert parser("sst5").parse(text) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("equivalent", "equivalent"),
        ("not equivalent", "not equivalent"),
        ("Not_equivalent", "not equivalent"),
        ("No, they are not paraphrases.", "not equivalent"),
        ("Yes.", "equivalent"),
        ("The two sentences are equivalent.", "equivalent"),
    ],
)
def test_mrpc_parser(text, expected):
    assert parser("mrpc").parse(text) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("entailment", "entailment"),
        ("Contradiction.", "contradiction"),
        ("The premise contradicts the hypothesis", "contradiction"),
        ("Neither entailment nor contradiction: neutral", "neutral"),
        ("Answer: Neutral", "neutral"),
        ("entailment, neutral or contradiction", None),
    ],
)
def test_snli_parser(text, expected):
    assert parser("snli").parse(text) == expected
