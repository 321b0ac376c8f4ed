"""How llmkit writes an amount of US dollars, in every layer: a progress line in a script, a
Result's footer, the run history and the spend table use the same words for the same call."""

from __future__ import annotations

import math

__all__ = ["UNKNOWN_PRICE", "format_cost"]

UNKNOWN_PRICE = "price unknown"
"""What an amount reads when the model has no known price (never "$0": that would read as free)."""


def format_cost(cost: float | None, *, estimated: bool = False) -> str:
    """``"$0.0012"``: two significant digits below a dollar (calls cost fractions of a cent, and
    ``"$0.001200"`` shows noise), cents from a dollar up; ``"$0"`` for what was free (the local
    model, a cache hit); `UNKNOWN_PRICE` for None. ``estimated``: the amount was worked out from
    llmkit's own token counts (``"≈ $0.0012 (estimated)"``)."""
    if cost is None:
        return UNKNOWN_PRICE
    if cost <= 0:
        text = "$0"
    elif cost >= 1:
        text = f"${cost:,.2f}"
    else:
        decimals = max(2, 1 - math.floor(math.log10(cost)))
        digits = f"{cost:.{decimals}f}"
        whole, _, fraction = digits.partition(".")
        text = f"${whole}.{fraction.rstrip('0').ljust(2, '0')}"
    return f"≈ {text} (estimated)" if estimated and cost > 0 else text
