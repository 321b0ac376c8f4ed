"""How llmkit writes an amount of US dollars, in every layer: a progress line in a script shows a
cost exactly as a notebook display does."""

from __future__ import annotations

__all__ = ["format_cost"]


def format_cost(cost: float | None) -> str:
    """``"$0.000150"``-style text (cents once a dollar is reached), or ``"n/a"`` for an unknown
    price: calls cost fractions of a cent, so six decimals show them."""
    if cost is None:
        return "n/a"
    return f"${cost:.2f}" if cost >= 1 else f"${cost:.6f}"
