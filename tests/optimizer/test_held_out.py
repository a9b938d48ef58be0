"""Test scores with their 95% intervals, and test scoring that stops once the gain's interval is as
narrow as asked: the interval functions against values worked out by hand, and the stop rule."""

import pytest

from dlmpo.optimizer.held_out import NARROW, RAN_OUT, SAME_PROMPT, HeldOutScores, join_parts, shown_with_intervals, why_stop
from dlmpo.optimizer.intervals import Z95, Interval, agresti_min, gain_interval, mean_interval, plus_minus, score_interval, wilson
from dlmpo.tasks import EvalResult, Example, Trace


def test_z_is_the_two_sided_95_percent_normal_quantile():
    assert Z95 == pytest.approx(1.959964, abs=1e-6)


def test_wilson_against_hand_computed_values():
    # 8 of 10: p 0.8, z² 3.841459; centre (0.8 + 0.192073) / 1.384146 = 0.716740,
    # half 1.959964 / 1.384146 * sqrt(0.016 + 0.009604) = 1.416009 * 0.160011 = 0.226577
    got = wilson(8, 10)
    assert (got.low, got.high) == (pytest.approx(0.490162, abs=1e-5), pytest.approx(0.943318, abs=1e-5))
    # 0 of 10: the bounds are 0 and z² / (n + z²) = 3.841459 / 13.841459
    zero = wilson(0, 10)
    assert (zero.low, zero.high) == (pytest.approx(0.0, abs=1e-12), pytest.approx(0.277533, abs=1e-5))
    assert wilson(0, 0) == Interval(0.0, 1.0)  # nothing scored: nothing known
    # half of 2401 rows: the widest accuracy interval is ±0.02 at n = (1.96 * 0.5 / 0.02)² = 2401
    assert wilson(1200, 2401).half_width == pytest.approx(0.02, abs=5e-5)


def test_agresti_min_against_hand_computed_values():
    # +30/-12 of 436 rows: n* 438, d* 18/438 = 0.041096, variance (43 - 324/438) / 438² = 42.260274 / 191844,
    # sd 0.014842, half 0.029090
    got = agresti_min(30, 12, 436)
    assert (got.low, got.high) == (pytest.approx(0.012006, abs=1e-5), pytest.approx(0.070186, abs=1e-5))
    # no disagreement at all: centred on 0, half z / (n + 2), not the plain Wald interval's [0, 0]
    none = agresti_min(0, 0, 96)
    assert none.low == pytest.approx(-none.high) and none.half_width == pytest.approx(Z95 / 98)
    # +3/-0 of 3: n* 5, d* 0.6, variance (4 - 9/5) / 25 = 0.088, half 0.581419: the top is cut to 1
    assert agresti_min(3, 0, 3) == Interval(pytest.approx(0.018581, abs=1e-5), 1.0)


def test_normal_interval_on_a_mean_against_hand_computed_values():
    # mean 0.5625, sample variance 0.546875 / 3 = 0.182292, se sqrt(0.182292 / 4) = 0.213478, half 0.418413
    got = mean_interval([0.5, 1.0, 0.0, 0.75], 0.0, 1.0)
    assert (got.low, got.high) == (pytest.approx(0.144087, abs=1e-5), pytest.approx(0.980913, abs=1e-5))
    assert mean_interval([0.25], 0.0, 1.0) == Interval(0.0, 1.0)  # one value: no spread to measure
    assert mean_interval([0.9, 1.0, 1.0, 1.0], 0.0, 1.0).high == 1.0  # kept inside the range


def test_binary_rows_get_wilson_and_agresti_min_other_rows_the_normal_interval():
    assert score_interval([1.0, 0.0, 1.0, 1.0]) == wilson(3, 4)
    assert score_interval([0.5, 1.0, 0.0, 0.75]) == mean_interval([0.5, 1.0, 0.0, 0.75], 0.0, 1.0)
    assert gain_interval([1, 1, 0, 1], [1, 0, 0, 0]) == agresti_min(2, 0, 4)
    assert gain_interval([1.0, 0.5], [0.5, 0.0]) == Interval(0.5, 0.5)  # every row +0.5: no spread
    with pytest.raises(ValueError):
        gain_interval([1.0], [1.0, 0.0])


def test_the_shown_radius_covers_the_whole_interval():
    assert plus_minus(0.555, [0.5081, 0.601]) == "0.5550 ± 0.047"  # 0.555 - 0.5081 is the larger side
    assert plus_minus(0.095, [0.043, 0.147], signed=True) == "+0.0950 ± 0.052"
    assert plus_minus(0.0, [0.0, 0.0], signed=True) == "+0.0000 ± 0.000"


def test_why_test_scoring_stops():
    wide, narrow = Interval(-0.05, 0.05), Interval(0.01, 0.04)
    assert why_stop(wide, 0.02, 250, 2401) is None  # score the next part
    assert why_stop(narrow, 0.02, 250, 2401) == NARROW
    assert why_stop(Interval(0.0, 0.04), 0.02, 250, 2401) == NARROW  # exactly as narrow as asked
    assert why_stop(wide, 0.02, 2401, 2401) == RAN_OUT
    assert why_stop(None, 0.02, 250, 2401) == SAME_PROMPT  # the best prompt is the seed: the gain is exactly 0


class Metrics:
    """A task's metrics over predictions, recorded so the test can see the order they came in."""
    name = "t"

    def __init__(self):
        self.seen = []

    def metrics(self, examples, predictions):
        self.seen.append(([ex.id for ex in examples], predictions))
        return {"n": len(predictions)}


def trace(example_id: str, score: float, prediction: str = "") -> Trace:
    return Trace(example_id, "u", "o", prediction or None, "l", score, "f")


def result(traces) -> EvalResult:
    return EvalResult("t", "test", "p", traces, {})


def test_joined_parts_keep_an_episodic_tasks_trials_one_after_another_over_all_rows():
    rows1, rows2 = [Example("a", {}, "l"), Example("b", {}, "l")], [Example("c", {}, "l")]
    # two trials per row, each part's traces trial after trial, as an episodic task returns them
    part1 = result([trace("a", 1, "a1"), trace("b", 0, "b1"), trace("a", 1, "a2"), trace("b", 1, "b2")])
    part2 = result([trace("c", 0, "c1"), trace("c", 1, "c2")])
    task = Metrics()
    joined = join_parts(task, "p", "test", [(rows1, part1), (rows2, part2)])
    assert [t.prediction for t in joined.traces] == ["a1", "b1", "c1", "a2", "b2", "c2"]
    assert task.seen == [(["a", "b", "c"], ["a1", "b1", "c1", "a2", "b2", "c2"])] and joined.metrics == {"n": 6}
    single = join_parts(Metrics(), "p", "test", [(rows1, result([trace("a", 1), trace("b", 0)])),
                                                 (rows2, result([trace("c", 1)]))])
    assert [t.example_id for t in single.traces] == ["a", "b", "c"] and single.score == pytest.approx(2 / 3)


def test_the_test_entry_holds_both_scores_the_gain_and_their_intervals():
    seed = result([trace(str(i), s) for i, s in enumerate([1, 0, 0, 1, 0, 1, 1, 0])])
    best = result([trace(str(i), s) for i, s in enumerate([1, 1, 1, 1, 0, 0, 1, 1])])
    entry = HeldOutScores(seed, best, rows=8, stopped=RAN_OUT).to_json()
    assert entry == {"seed": 0.5, "best": 0.75, "wins": 3, "losses": 1, "p_value": 0.3125,
                     "seed_interval": wilson(4, 8).to_json(), "best_interval": wilson(6, 8).to_json(),
                     "gain_interval": agresti_min(3, 1, 8).to_json(), "rows": 8, "stopped": RAN_OUT}
    for point, (low, high) in ((0.5, entry["seed_interval"]), (0.75, entry["best_interval"]),
                               (0.25, entry["gain_interval"])):
        assert low <= point <= high
    # Wilson 4/8 [0.2152, 0.7848]; Wilson 6/8 [0.4093, 0.9285]; Agresti-Min +3/-1 of 8: n* 10, d* 0.2,
    # variance ((3 + 1 + 1) - 2² / 10) / 10² = 0.046, half 0.420365 -> [-0.2204, 0.6204]
    assert shown_with_intervals(entry) == ("0.5000 ± 0.285", "0.7500 ± 0.341", "+0.2500 ± 0.470")
    same = HeldOutScores(seed, seed, rows=8, stopped=SAME_PROMPT).to_json()
    assert same["gain_interval"] == [0.0, 0.0] and (same["wins"], same["losses"]) == (0, 0)
    assert shown_with_intervals({"seed": 0.5, "best": 0.5}) is None  # a result of an earlier version
    with pytest.raises(ValueError, match="different test rows"):
        HeldOutScores(seed, result(best.traces[::-1]), rows=8, stopped=RAN_OUT).to_json()
