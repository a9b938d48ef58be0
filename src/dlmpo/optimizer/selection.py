"""When is a challenger really better than the incumbent? A one-sided sign test on the val pool.

Candidates are screened on examples outside the val pool, so the one challenger of a round is
chosen without looking at it. On val, both prompts answer the same examples, so each example is a
pair: the challenger wins it, loses it, or ties. If the two prompts were equally good, each
non-tied pair would be a coin flip, and `p = P(Binomial(wins + losses, 1/2) >= wins)` is the
chance of doing at least this well by luck; the challenger is accepted when `p <= level`. The val
pool is scored in parts and a challenger that is not ahead after a part is dropped early
(futility): that only ever turns an acceptance into a rejection, so the level still holds, and
losing challengers cost a fraction of val. The other early stop, accepting once even all remaining
rows lost could not undo significance, would be sound but is not made: it needs a lopsided lead
(69 wins, no loss, after 100 of 150 rows), and the accepted challenger's scores on the rest of val
are needed anyway as the next incumbent's (docs/optimize.md).

Two looks, when the task has examples to spare for a confirmation pool: the first look (the val
pool) and the second (val pool + confirmation pool together) are each held to `significance / 2`,
so by the union bound the chance that an equally good challenger passes either is at most
`significance`. Only a promising challenger (ahead, first-look p <= PROMISING) pays for the second
look; which ones do cannot raise that bound. Without a confirmation pool there is one look at
`significance`. `significance` 1 turns the test off (any higher val score wins)."""

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


def val_parts(n: int, parts: int = 3, smallest: int = 16) -> list[int]:
    """Where the val pool is cut for the futility checks: end indices of up to `parts` parts of at
    least `smallest` examples each (one part when val is small)."""
    parts = max(1, min(parts, n // smallest))
    return [round(n * (i + 1) / parts) for i in range(parts)]


def paired(challenger: list[float], incumbent: list[float]) -> tuple[int, int]:
    """Wins and losses of the challenger over the incumbent on the same examples, in order (the
    incumbent may have scored more examples; the extra ones are not compared)."""
    pairs = list(zip(challenger, incumbent))
    return sum(c > i for c, i in pairs), sum(c < i for c, i in pairs)


def futile(challenger: list[float], incumbent: list[float]) -> bool:
    """A challenger that has not won more of the scored pairs than it lost stops here."""
    wins, losses = paired(challenger, incumbent)
    return wins <= losses


PROMISING = 0.2  # the first-look p-value up to which a challenger gets the second look


@dataclass(frozen=True)
class Verdict:
    wins: int
    losses: int
    p_value: float
    level: float  # the level the p-value is held to
    significant: bool
    scored: int  # examples scored before the decision (val pool, and confirmation pool on a second look)
    dropped: bool  # stopped for futility before the whole val pool was scored
    first_p: float | None = None  # on a second look: the first look's p-value (val pool alone)
    confirmed_on: int = 0  # on a second look: the confirmation examples added

    def to_json(self) -> dict:
        return {"wins": self.wins, "losses": self.losses, "p_value": round(self.p_value, 5),
                "level": round(self.level, 5), "significant": self.significant, "scored": self.scored,
                "dropped": self.dropped, "first_p": None if self.first_p is None else round(self.first_p, 5),
                "confirmed_on": self.confirmed_on}

    def describe(self, val: float, incumbent: float | None = None, *, cell: bool = False) -> str:
        """The decision in words, one text for the terminal and the report. The terminal line
        (after `challenger i `): `on val 0.7031 vs 0.6500 (+30/-12, sign test p 0.004 vs 0.025)`,
        `on the first 50 val examples 0.4200 (+3/-9): not ahead, dropped`. The report's cell
        (`cell`): `0.7031 (+30/−12, p 0.004 ≤ 0.025)`, `0.4200 on 50 (dropped: not ahead, +3/−9)`.
        A second look adds the confirmation examples and the first look's p-value."""
        counts = f"+{self.wins}/{'−' if cell else '-'}{self.losses}"
        if self.dropped:
            return (f"{val:.4f} on {self.scored} (dropped: not ahead, {counts})" if cell else
                    f"on the first {self.scored} val examples {val:.4f} ({counts}): not ahead, dropped")
        first = "" if self.first_p is None else f"first look p {self.first_p:.3g}"
        second = f" with {self.confirmed_on} confirmation examples" + (f", {first}" if cell else f" ({first})") if first else ""
        if cell:
            return f"{val:.4f} ({counts}{second}, p {self.p_value:.3g} {'≤' if self.significant else '>'} {self.level:.3g})"
        return f"on val {val:.4f} vs {incumbent:.4f} ({counts}{second}, sign test p {self.p_value:.3g} vs {self.level:.3g})"

    def worth_second_look(self) -> bool:
        return not self.significant and not self.dropped and self.wins > self.losses and self.p_value <= PROMISING


def look_level(significance: float, two_looks: bool) -> float:
    """The level each look is held to: the whole `significance` for one look, half for each of two."""
    return significance / 2 if two_looks and significance < 1 else significance


def judge(challenger: list[float], incumbent: list[float], alpha: float) -> Verdict:
    """Paired scores of the challenger and the incumbent on the same examples, in order; a
    challenger with fewer scores than the incumbent was dropped early and is never significant."""
    if len(challenger) > len(incumbent):
        raise ValueError("every challenger score needs the incumbent's on the same example")
    wins, losses = paired(challenger, incumbent)
    p = sign_test(wins, losses)
    dropped = len(challenger) < len(incumbent)
    return Verdict(wins, losses, p, alpha, p <= alpha and not dropped, len(challenger), dropped)  # alpha 1: off


def second_look(first: Verdict, challenger: list[float], incumbent: list[float], alpha: float) -> Verdict:
    """The sign test on the val pool and the confirmation pool together (paired scores, in order)."""
    combined = judge(challenger, incumbent, alpha)
    return Verdict(combined.wins, combined.losses, combined.p_value, alpha, combined.significant, len(challenger),
                   False, first.p_value, len(challenger) - first.scored)


def smallest_detectable_gain(n: int, alpha: float, disagree: float = 0.25) -> float | None:
    """The smallest val accuracy gain that passes the test when the two prompts answer `disagree`
    of val differently (a quarter is typical of rewritten prompts on a classification task)."""
    pairs = max(1, round(disagree * n))
    for wins in range(pairs // 2 + 1, pairs + 1):
        if sign_test(wins, pairs - wins) <= alpha:
            return (2 * wins - pairs) / n
    return None


def power_note(n: int, alpha: float) -> str | None:
    """A warning when val is too small to tell candidates apart, else None."""
    if alpha >= 1:
        return None
    if smallest_winning_margin(n, alpha) is None:
        return (f"val has {n} examples: no challenger can pass the sign test at level {alpha:.3g}; "
                "no prompt will be accepted. Raise --val-size.")
    gain = smallest_detectable_gain(n, alpha)
    if gain is None or gain > 0.1:
        shown = "no gain passes" if gain is None else f"only gains of {gain:.0%} or more pass"
        return (f"val has {n} examples: when a challenger answers a quarter of them differently from the "
                f"incumbent, {shown} the sign test at level {alpha:.3g}; smaller gains cannot be told "
                "from chance. Raise --val-size to detect them.")
    return None
