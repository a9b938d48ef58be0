"""Selection that generalizes: the sign test, and the loop against a target whose answers are
noise that depends on the prompt (junk must not win on a small val)."""

import asyncio
import hashlib

import pytest

from dlmpo.optimizer import Optimizer, OptimizeSettings
from dlmpo.optimizer.rounds import screening_batch
from dlmpo.optimizer.selection import (
    futile,
    judge,
    look_level,
    power_note,
    second_look,
    sign_test,
    smallest_detectable_gain,
    smallest_winning_margin,
    val_parts,
)
from tests.support.fake_openai_server import FakeOpenAIServer


def test_sign_test_by_hand():
    assert sign_test(0, 0) == 1.0
    assert sign_test(5, 0) == pytest.approx(1 / 32)
    assert sign_test(2, 1) == pytest.approx(4 / 8)  # P(X >= 2), X ~ Bin(3, 1/2)
    assert sign_test(9, 3) == pytest.approx((220 + 66 + 12 + 1) / 4096)


def test_judge_holds_the_p_value_to_the_level():
    verdict = judge([1, 1, 1, 1, 1, 0], [0, 0, 0, 0, 0, 0], alpha=0.05)
    assert (verdict.wins, verdict.losses, verdict.significant, verdict.dropped) == (5, 0, True, False)
    assert not judge([1, 1, 1, 1, 0, 0], [0, 0, 0, 0, 0, 0], alpha=0.05).significant  # p = 1/16
    assert judge([1, 0], [0, 1], alpha=1.0).significant  # off: only the loop's higher-score rule decides


def test_a_challenger_dropped_early_is_never_significant():
    verdict = judge([1] * 10, [0] * 20, alpha=0.05)
    assert verdict.p_value < 0.05 and verdict.dropped and not verdict.significant and verdict.scored == 10


def test_futility_and_val_parts():
    assert futile([1, 0, 0], [0, 1, 0]) and not futile([1, 1, 0], [0, 1, 0])
    assert val_parts(150) == [50, 100, 150] and val_parts(40) == [20, 40] and val_parts(10) == [10]


def test_screening_uses_spare_val_rows_else_avoids_the_traces_the_dlm_saw():
    import random

    from dlmpo.tasks import Example

    pool = [Example(str(i), {"text": f"q{i}"}, "a") for i in range(12)]
    spare = [Example(f"v{i}", {"text": f"v{i}"}, "a") for i in range(9)]
    traces = pool[:4]
    assert {ex.id for ex in screening_batch(spare, pool, traces, 8, random.Random(0))} <= {ex.id for ex in spare}
    screen = screening_batch(spare[:7], pool, traces, 8, random.Random(0))
    assert len(screen) == 8 and not {ex.id for ex in screen} & {"0", "1", "2", "3"}
    topped_up = screening_batch([], pool, traces, 10, random.Random(0))
    assert len({ex.id for ex in topped_up}) == 10 and len({ex.id for ex in topped_up} & {"0", "1", "2", "3"}) == 2


def test_small_val_is_flagged():
    assert smallest_winning_margin(16, 0.05) == 5
    assert smallest_detectable_gain(150, 0.05) == pytest.approx(0.08)
    assert "16 examples" in power_note(16, 0.05)
    assert "no challenger can pass" in power_note(4, 0.05)
    assert power_note(150, 0.05) is None


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
                                    rounds=6, candidates=4, train_size=8, val_size=16, screen_batch=16, batch_size=4,
                                    test_size=8, data_dir=str(data_dir), significance=significance,
                                    readability=False)  # junk on purpose: the sign test must stop it
        opt = Optimizer(settings, tmp_path / "run", proposer=_Rotating(junk))
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

    async def propose(self, incumbent, context, k, round_index, *, avoid=frozenset()):
        from dlmpo.optimizer.proposers import Proposal

        start = (round_index - 1) * k
        return [Proposal(p, "junk", p) for p in self.prompts[start:start + k]]


def test_two_looks_split_the_level_and_only_a_promising_challenger_gets_the_second():
    assert look_level(0.05, two_looks=True) == 0.025 and look_level(0.05, two_looks=False) == 0.05
    assert look_level(1.0, two_looks=True) == 1.0  # the test is off
    # +25/-14 on 150: p 0.054, not enough at 0.025 but promising
    first = judge([1] * 25 + [0] * 14 + [1] * 111, [0] * 25 + [1] * 14 + [1] * 111, 0.025)
    assert not first.significant and first.worth_second_look()
    # 100 confirmation examples that agree: +17/-9 more
    confirmed = second_look(first, [1] * 25 + [0] * 14 + [1] * 111 + [1] * 17 + [0] * 9 + [1] * 74,
                            [0] * 25 + [1] * 14 + [1] * 111 + [0] * 17 + [1] * 9 + [1] * 74, 0.025)
    assert (confirmed.wins, confirmed.losses, confirmed.scored, confirmed.confirmed_on) == (42, 23, 250, 100)
    assert confirmed.significant and confirmed.first_p == first.p_value and confirmed.level == 0.025
    assert not judge([1] * 4 + [0] * 4, [0] * 4 + [1] * 4, 0.025).worth_second_look()  # not ahead
    assert not judge([1] * 3 + [0] * 1, [0] * 3 + [1] * 1, 0.025).worth_second_look()  # p 0.31: not promising


def _better_by_a_tenth(body):
    """The seed prompt answers right on half the reviews, 'GOOD' prompts on six tenths of them (a
    superset): a real but small gain that a 64-example val pool alone cannot show."""
    system, user = body["messages"][0]["content"], body["messages"][-1]["content"]
    bucket = hashlib.sha256(user.encode()).digest()[0] % 10
    right = bucket < (6 if "GOOD" in system else 5)
    gold = GOLD[user]
    return gold if right else ("negative" if gold == "positive" else "positive")


GOLD: dict[str, str] = {}


def test_a_promising_challenger_is_confirmed_on_the_second_look(tmp_path, data_dir):
    from dlmpo.catalog import get_task

    task = get_task("sst2", str(data_dir))
    GOLD.update({task.user_message(ex): ex.label for split in ("train", "val", "test") for ex in task.examples(split)})
    with FakeOpenAIServer(answer=_better_by_a_tenth) as server:
        settings = OptimizeSettings(task="sst2", target=f"{server.base_url}#target", dlm="tiny-random:dream",
                                    rounds=1, candidates=1, train_size=8, val_size=64, confirm_size=100,
                                    screen_batch=16, batch_size=4, test_size=8, data_dir=str(data_dir),
                                    readability=False)
        opt = Optimizer(settings, tmp_path / "run", proposer=_Rotating(["Label the review. GOOD"]))
        result = asyncio.run(opt.run())
    (challenger,) = result.rounds[0].candidates
    verdict = challenger.significance
    assert verdict.first_p is not None and verdict.first_p > 0.025  # the val pool alone could not tell
    assert verdict.confirmed_on == 100 and verdict.losses == 0 and verdict.significant
    assert result.rounds[0].accepted and "GOOD" in result.best_prompt


class _Same:
    """The same prompt every round; remembers what the loop asked it to avoid."""

    name = "same"

    def __init__(self, prompt):
        self.prompt, self.avoided = prompt, {}

    def prompt_token_limit(self):
        return None

    async def propose(self, incumbent, context, k, round_index, *, avoid=frozenset()):
        from dlmpo.optimizer.proposers import Proposal

        self.avoided[round_index] = set(avoid)
        return [Proposal(self.prompt, "same", self.prompt)]


def test_a_prompt_challenges_once_per_run(tmp_path, data_dir):
    from dlmpo.catalog import get_task
    from dlmpo.optimizer.rounds import challenged_rounds

    task = get_task("sst2", str(data_dir))
    GOLD.update({task.user_message(ex): ex.label for split in ("train", "val", "test") for ex in task.examples(split)})
    proposer = _Same("Label the review.  GOOD")

    def better_by_three_tenths(body):
        system, user = body["messages"][0]["content"], body["messages"][-1]["content"]
        right = hashlib.sha256(user.encode()).digest()[0] % 10 < (8 if "GOOD" in system else 5)
        return GOLD[user] if right else ("negative" if GOLD[user] == "positive" else "positive")

    with FakeOpenAIServer(answer=better_by_three_tenths) as server:
        settings = OptimizeSettings(task="sst2", target=f"{server.base_url}#target", dlm="tiny-random:dream",
                                    rounds=3, candidates=1, train_size=8, val_size=64, screen_batch=16, batch_size=4,
                                    test_size=8, data_dir=str(data_dir), significance=1e-12, readability=False)
        result = asyncio.run(Optimizer(settings, tmp_path / "run", proposer=proposer).run())
    first, *later = [r.candidates[0] for r in result.rounds]
    assert first.significance is not None and not result.rounds[0].accepted
    for c in later:  # rejected before screening: no call spent on it
        assert c.rejected == "challenged on val in round 1" and c.screen_score is None and c.significance is None
    assert proposer.avoided == {1: set(), 2: {"Label the review. GOOD"}, 3: {"Label the review. GOOD"}}
    assert challenged_rounds(result.rounds) == {"Label the review. GOOD": 1}  # what a resumed run rebuilds
