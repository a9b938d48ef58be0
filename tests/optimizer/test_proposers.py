import asyncio

import pytest

from dlmpo.dlm import ContextItem, SamplerConfig, load_dlm
from dlmpo.optimizer.proposers import REDRAWS, DLMProposer

INCUMBENT = "You classify movie reviews as positive or negative."
CONTEXT = [ContextItem("Review: a dull film", "positive", 0.0, "Expected 'negative'.")]


@pytest.fixture(scope="module")
def tiny_dream():
    return load_dlm("tiny-random:dream", device="cpu")


def propose(model, k, temperature, round_index=1):
    proposer = DLMProposer(model, SamplerConfig(steps=4, temperature=temperature), strategy="append",
                           mask_tokens=4, span_ratio=0.25, span_length=6, seed=0)
    return asyncio.run(proposer.propose(INCUMBENT, CONTEXT, k, round_index))


def test_repeated_candidates_are_drawn_again(tiny_dream):
    # greedy: every candidate of the one masked text is the same text at the first draw
    proposals = propose(tiny_dream, 4, temperature=0.0)
    texts = [p.prompt for p in proposals]
    assert len(set(texts)) == 4 and INCUMBENT not in texts
    assert proposals[0].draws == 1 and all(1 < p.draws <= REDRAWS + 1 for p in proposals[1:])
    assert all(p.nfe == 4 * p.draws for p in proposals)


def test_a_candidate_does_not_depend_on_how_many_follow(tiny_dream):
    few = [p.prompt for p in propose(tiny_dream, 2, temperature=0.7)]
    many = [p.prompt for p in propose(tiny_dream, 5, temperature=0.7)]
    assert few == many[:2]
