"""Selection that generalizes: the sign test, and the loop against a target whose answers are
noise that depends on the prompt (junk must not win on a small val)."""

import asyncio
import hashlib

import pytest

from dlmpo.optimizer import Optimizer, OptimizeSettings
from dlmpo.optimizer.selection import judge, power_note, sign_test, smallest_winning_margin
from tests.optimizer.test_loop import ListProposer
from tests.support.fake_openai_server import FakeOpenAIServer


def test_sign_test_by_hand():
    assert sign_test(0, 0) == 1.0
    assert sign_test(5, 0) == pytest.approx(1 / 32)
    assert sign_test(2, 1) == pytest.approx(4 / 8)  # P(X >= 2), X ~ Bin(3, 1/2)
    assert sign_test(9, 3) == pytest.approx((220 + 66 + 12 + 1) / 4096)


def test_judge_divides_the_level_by_the_candidates_compared():
    verdict = judge([1, 1, 1, 1, 1, 0], [0, 0, 0, 0, 0, 0], alpha=0.05, compared=1)
    assert (verdict.wins, verdict.losses, verdict.significant) == (5, 0, True)
    assert not judge([1, 1, 1, 1, 1, 0], [0, 0, 0, 0, 0, 0], alpha=0.05, compared=4).significant


def test_small_val_is_flagged():
    assert smallest_winning_margin(16, 0.05 / 4) == 7
    assert "16 examples" in power_note(16, 0.05, 4)
    assert "no challenger can pass" in power_note(4, 0.05, 4)
    assert power_note(200, 0.05, 4) is None


def _noise_answer(body):
    """Right or wrong at random, but the same for the same (system prompt, question)."""
    system = body["messages"][0]["content"]
    user = body["messages"][-1]["content"]
    digest = hashlib.sha256((system + "\x00" + user).encode()).digest()
    return "positive" if digest[0] % 2 else "negative"


@pytest.mark.parametrize("significance,junk_may_win", [(1.0, True), (0.05, False)])
def test_junk_does_not_win_a_small_val(tmp_path, data_dir, significance, junk_may_win):
    junk = [f"Sword persistence {i} everse ## lantern quartz {i * 7}" for i in range(24)]
    with FakeOpenAIServer(answer=_noise_answer) as server:
        settings = OptimizeSettings(task="sst2", target=f"{server.base_url}#noise", dlm="tiny-random:dream",
                                    rounds=6, candidates=4, train_size=8, val_size=16, val_batch=16, batch_size=4,
                                    test_size=8, data_dir=str(data_dir), significance=significance)
        opt = Optimizer(settings, tmp_path / "run", proposer=ListProposer(junk))
        opt._proposer = _Rotating(junk)
        result = asyncio.run(opt.run())
    accepted = [r for r in result.rounds if r.accepted]
    assert bool(accepted) == junk_may_win
    if significance < 1:
        assert result.best_prompt == result.seed_prompt and result.warnings  # val of 16 is flagged as too small


class _Rotating:
    """A fresh slice of junk prompts each round."""

    name = "junk"

    def __init__(self, prompts):
        self.prompts = prompts

    def prompt_token_limit(self):
        return None

    async def propose(self, incumbent, context, k, round_index):
        from dlmpo.optimizer.proposers import Proposal

        start = (round_index - 1) * k
        return [Proposal(p, "junk", p) for p in self.prompts[start:start + k]]
