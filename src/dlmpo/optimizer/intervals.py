"""95% intervals of test scores: one prompt's score, and the gain of one prompt over another on the
same rows.

A score is the mean of per-row scores. Rows scored 0 or 1 (accuracy) get the Wilson interval,
which stays inside [0, 1] and keeps its coverage near 0 and 1 where the normal one does not; other
rows (a fraction of tests passed, a reward) get the normal interval on the mean.

The gain is the mean of the paired differences best − seed on the same rows. For 0/1 rows those
are +1 (a win), −1 (a loss) or 0, and the interval is Agresti and Min's (2005) for matched pairs:
the Wald interval after adding ½ to each cell of the 2×2 table, which keeps its coverage when
there are few or no disagreements (the plain Wald interval is then [0, 0]). Other rows get the
normal interval on the mean of the differences."""

from __future__ import annotations

from dataclasses import dataclass
from math import sqrt
from statistics import NormalDist
from typing import Sequence

Z95 = NormalDist().inv_cdf(0.975)  # 1.95996...


@dataclass(frozen=True)
class Interval:
    low: float
    high: float

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    def to_json(self) -> list[float]:
        return [round(self.low, 4), round(self.high, 4)]


def wilson(successes: int, n: int, z: float = Z95) -> Interval:
    """Wilson's score interval for `successes` of `n`; [0, 1] when nothing was scored."""
    if n == 0:
        return Interval(0.0, 1.0)
    p, z2 = successes / n, z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z / (1 + z2 / n) * sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return Interval(max(0.0, centre - half), min(1.0, centre + half))


def mean_interval(values: Sequence[float], low: float, high: float, z: float = Z95) -> Interval:
    """The normal interval on the mean of `values` (sample standard deviation), kept inside the
    values' range [low, high]; that whole range with fewer than two values."""
    n = len(values)
    if n < 2:
        return Interval(low, high)
    mean = sum(values) / n
    variance = sum((v - mean) ** 2 for v in values) / (n - 1)
    half = z * sqrt(variance / n)
    return Interval(max(low, mean - half), min(high, mean + half))


def agresti_min(wins: int, losses: int, n: int, z: float = Z95) -> Interval:
    """Matched-pairs difference of two proportions: `wins` rows only the first prompt gets right,
    `losses` only the second, of `n` rows; ½ added to each of the four cells, then Wald."""
    m = n + 2
    d = (wins - losses) / m
    variance = ((wins + losses + 1) - (wins - losses) ** 2 / m) / (m * m)
    half = z * sqrt(variance)
    return Interval(max(-1.0, d - half), min(1.0, d + half))


def _binary(values: Sequence[float]) -> bool:
    return all(v in (0.0, 1.0) for v in values)


def score_interval(scores: Sequence[float]) -> Interval:
    """A prompt's per-row scores (in [0, 1]) -> the 95% interval of its mean."""
    if _binary(scores):
        return wilson(int(sum(scores)), len(scores))
    return mean_interval(scores, 0.0, 1.0)


def gain_interval(best: Sequence[float], seed: Sequence[float]) -> Interval:
    """Two prompts' per-row scores on the same rows, in order -> the 95% interval of the mean of
    best − seed."""
    if len(best) != len(seed):
        raise ValueError("the gain needs both prompts' scores on the same rows")
    if _binary(best) and _binary(seed):
        wins = sum(b > s for b, s in zip(best, seed))
        losses = sum(b < s for b, s in zip(best, seed))
        return agresti_min(wins, losses, len(best))
    return mean_interval([b - s for b, s in zip(best, seed)], -1.0, 1.0)


def plus_minus(point: float, bounds: Sequence[float], digits: int = 4, *, signed: bool = False) -> str:
    """`0.6420 ± 0.041`: the point and the smallest radius around it that covers the interval
    `bounds` (the intervals are not centred on the point, so this never shows less than they hold)."""
    low, high = bounds
    radius = max(point - low, high - point, 0.0)
    return f"{point:{'+' if signed else ''}.{digits}f} ± {radius:.3f}"
