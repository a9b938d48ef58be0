"""Dollar prices per million tokens, overridable by the user."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from dlmpo.errors import UserError
from dlmpo.files import read_json
from dlmpo.lm.types import Usage

# USD per 1M tokens (input, output), public list prices.
DEFAULT_PRICES: dict[str, tuple[float, float]] = {
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4o": (2.50, 10.00),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-5-mini": (0.25, 2.00),
    "gpt-5-nano": (0.05, 0.40),
}


@dataclass(frozen=True)
class Price:
    input_per_million: float
    output_per_million: float

    def cost(self, usage: Usage) -> float:
        return (
            usage.prompt_tokens * self.input_per_million + usage.completion_tokens * self.output_per_million
        ) / 1e6


FREE = Price(0.0, 0.0)


class PriceTable:
    def __init__(self, overrides: dict[str, tuple[float, float]] | None = None):
        self.prices = {**DEFAULT_PRICES, **(overrides or {})}

    @classmethod
    def from_file(cls, path: str | Path) -> PriceTable:
        """A JSON object {model: [input_usd_per_1M, output_usd_per_1M]}."""
        path = Path(path)
        raw = read_json(path, "Price", expect=None)
        try:
            overrides = {str(k): (float(v[0]), float(v[1])) for k, v in raw.items()}
            if any(len(v) != 2 for v in raw.values()):
                raise ValueError
        except (ValueError, TypeError, IndexError, KeyError, AttributeError):
            raise UserError(
                f"Price file {path} must be a JSON object {{model: [input_usd_per_1M, output_usd_per_1M]}}."
            ) from None
        bad = [k for k, (i, o) in overrides.items() if not (0 <= i < math.inf and 0 <= o < math.inf)]
        if bad:
            raise UserError(f"Price file {path}: the prices of '{bad[0]}' must be finite numbers >= 0.")
        return cls(overrides)

    def price(self, model_name: str, local: bool) -> Price | None:
        """The price of a model; FREE when it runs locally, None when no price is known."""
        if local:
            return FREE
        name = model_name.split("/")[-1]
        best = max((k for k in self.prices if name == k or name.startswith(k + "-")), key=len, default=None)
        return Price(*self.prices[best]) if best else None
