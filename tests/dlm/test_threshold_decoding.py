"""Threshold decoding as Fast-dLLM defines it, on a model whose predictions are fixed by hand."""

import math

import torch

from dlmpo.dlm import Sampler, SamplerConfig
from dlmpo.dlm.base import DiffusionLM

MASK, VOCAB = 7, 8  # tokens 0..6 are answers, 7 is the mask


def _row(top1: float, second: float = 0.0) -> list[float]:
    """Logits whose softmax over tokens 0..6 puts `top1` on token 0, `second` on token 1 and the
    rest evenly on tokens 2..6 (the mask's logit is irrelevant: the sampler never proposes it)."""
    rest = (1 - top1 - second) / 5
    probs = [top1, second] + [rest] * 5
    return [math.log(p) if p > 0 else -1e9 for p in probs] + [0.0]


# the masked positions 1..4 of a 6-token canvas, with these answer distributions:
#   A 0.95 / rest spread    entropy 0.28    above 0.9
#   B 0.88 / 0.12           entropy 0.37    below 0.9, but less uncertain than C
#   C 0.92 / rest spread    entropy 0.41    above 0.9
#   D 0.30 / 0.20 / rest    entropy 1.83
FIXED = torch.tensor([[_row(0.5)] + [_row(0.95), _row(0.88, 0.12), _row(0.92), _row(0.30, 0.20)] + [_row(0.5)]])


class FixedPredictions(DiffusionLM):
    """Always predicts FIXED (not shifted), and records which positions are masked at each forward."""

    def __init__(self):
        tokenizer = type("Tok", (), {"__len__": lambda self: VOCAB})()
        super().__init__(torch.nn.Identity(), tokenizer, name="fixed", family="llada", mask_token_id=MASK,
                         shift=False, max_length=16, device=torch.device("cpu"))
        self.masked_at_forward: list[list[int]] = []

    @property
    def vocab_size(self) -> int:
        return VOCAB

    def raw_logits(self, input_ids, rows=None):
        self.masked_at_forward.append((input_ids[0] == MASK).nonzero().squeeze(1).tolist())
        logits = FIXED.expand(input_ids.shape[0], -1, -1)
        return logits if rows is None else logits.gather(1, rows[..., None].expand(-1, -1, VOCAB))


def _run(steps: int, alg: str = "entropy"):
    model = FixedPredictions()
    x = torch.tensor([[3, MASK, MASK, MASK, MASK, 4]])
    out = Sampler(model, SamplerConfig(steps=steps, alg=alg, threshold=0.9, temperature=0.0, top_p=None)).sample(x)
    return model.masked_at_forward, out


def test_every_position_above_the_threshold_and_only_those():
    # step 1: A (0.95) and C (0.92), not B: the former rule took the 2 lowest entropies, A and B
    # step 2: nothing reaches 0.9, so the most probable alone: B (0.88)
    # step 3: D, the last one
    masked, out = _run(steps=8)
    assert masked == [[1, 2, 3, 4], [2, 4], [4]]
    assert out.nfe == 3 and out.tokens.tolist() == [[3, 0, 0, 0, 0, 4]]


def test_the_rule_does_not_change_what_is_revealed():
    for alg in ("maskgit_plus", "topk_margin", "random", "origin"):
        assert _run(steps=8, alg=alg)[0] == [[1, 2, 3, 4], [2, 4], [4]]


def test_a_blocks_last_step_reveals_the_rest():
    masked, out = _run(steps=2)
    assert masked == [[1, 2, 3, 4], [2, 4]] and out.nfe == 2
    assert not (out.tokens == MASK).any()
