"""When is a challenger really better than the incumbent? A one-sided sign test on the val pool.

Both prompts answer the same val examples, so each example is a pair: the challenger wins it,
loses it, or ties. If the two prompts were equally good, each non-tied pair would be a coin
flip, and `p = P(Binomial(wins + losses, 1/2) >= wins)` is the chance of doing at least this well
by luck. The challenger was the best of several candidates, so the level is divided by their
number (Bonferroni): a run that tries many junk candidates on a small val does not accept the
luckiest one. `significance` 1 turns the test off (any higher val score wins, as before)."""

from __future__ import annotations

from dataclasses import dataclass
from math import comb


def sign_test(wins: int, losses: int) -> float:
    """One-sided p-value that the challenger is better, given paired wins and losses."""
    n = wins + losses
    if n == 0:
        return 1.0
    return sum(comb(n, k) for k in range(wins, n + 1)) / 2**n


def smallest_winning_margin(n: int, alpha: float) -> int | None:
    """The fewest paired wins (with no loss) that pass the test among `n` val examples; None
    when even winning all of them does not."""
    for wins in range(1, n + 1):
        if sign_test(wins, 0) <= alpha:
            return wins
    return None


@dataclass(frozen=True)
class Verdict:
    wins: int
    losses: int
    p_value: float
    level: float  # the Bonferroni-corrected level the p-value is held to
    significant: bool

    def to_json(self) -> dict:
        return {"wins": self.wins, "losses": self.losses, "p_value": round(self.p_value, 5),
                "level": round(self.level, 5), "significant": self.significant}


def judge(challenger: list[float], incumbent: list[float], alpha: float, compared: int) -> Verdict:
    """Paired scores of the challenger and the incumbent on the same examples, in order."""
    if len(challenger) != len(incumbent):
        raise ValueError("paired scores must have equal length")
    wins = sum(c > i for c, i in zip(challenger, incumbent))
    losses = sum(c < i for c, i in zip(challenger, incumbent))
    p = sign_test(wins, losses)
    level = 1.0 if alpha >= 1 else alpha / max(1, compared)  # alpha 1 turns the test off
    return Verdict(wins, losses, p, level, p <= level)


def power_note(n: int, alpha: float, candidates: int) -> str | None:
    """A warning when val is too small to tell candidates apart, else None."""
    if alpha >= 1:
        return None
    level = alpha / max(1, candidates)
    need = smallest_winning_margin(n, level)
    if need is None:
        return (f"val has {n} examples: no challenger can pass the sign test at level {level:.3g} "
                f"(alpha {alpha} / {candidates} candidates); no prompt will be accepted. Raise --val-size.")
    if need > 0.25 * n:
        return (f"val has {n} examples: a challenger must win at least {need} more examples than the incumbent "
                f"({need / n:.0%} of val) to pass the sign test; smaller gains cannot be told from chance. "
                "Raise --val-size to detect them.")
    return None
