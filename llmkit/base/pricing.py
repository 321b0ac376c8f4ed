"""Estimated cost of a call, from one table of OpenAI prices.

`PRICES` is the only place prices live: edit it when OpenAI changes them. Dated snapshots
(``gpt-4o-2024-08-06``, ``gpt-3.5-turbo-0125``) cost what their base model costs; anything else
(local models, fine-tuned ``ft:`` models, other providers) has no estimate and displays show "n/a".
Cached-input discounts and batch prices are not modelled: the figure is an upper estimate.
"""

from __future__ import annotations

import re

from .errors import LLMKitError

__all__ = ["PRICES", "estimate_cost", "format_cost", "price_of"]

# USD per 1M tokens: (input, output). Written down on 2025-08-15 from OpenAI's public pricing page
# (https://platform.openai.com/docs/pricing); they change: check them there before relying on them.
PRICES: dict[str, tuple[float, float]] = {
    "gpt-5": (1.25, 10.00),
    "gpt-5-mini": (0.25, 2.00),
    "gpt-5-nano": (0.05, 0.40),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-mini": (0.15, 0.60),
    "o3": (2.00, 8.00),
    "o3-mini": (1.10, 4.40),
    "o4-mini": (1.10, 4.40),
    "o1": (15.00, 60.00),
    "gpt-4-turbo": (10.00, 30.00),
    "gpt-4": (30.00, 60.00),
    "gpt-3.5-turbo": (0.50, 1.50),
    "text-embedding-3-small": (0.02, 0.0),
    "text-embedding-3-large": (0.13, 0.0),
    "text-embedding-ada-002": (0.10, 0.0),
}

# What may follow a base name in a dated snapshot's name: -2024-08-06 or -0125.
_SNAPSHOT = re.compile(r"(?:-\d{4}(?:-\d{2}-\d{2})?)?")


def price_of(model: str) -> tuple[float, float] | None:
    """(input, output) USD per 1M tokens of ``model`` or of the model it is a snapshot of."""
    name = model.strip().lower().rsplit("/", 1)[-1]  # "openai/gpt-4o" → "gpt-4o"
    if name.startswith("gpt-35"):  # Azure's spelling
        name = "gpt-3.5" + name[6:]
    for base in sorted(PRICES, key=len, reverse=True):
        if name.startswith(base) and _SNAPSHOT.fullmatch(name[len(base):]):
            return PRICES[base]
    return None


def estimate_cost(model: str, prompt_tokens: int, completion_tokens: int) -> float | None:
    """Estimated USD cost of a call, or None when ``model`` is not in `PRICES` (e.g. a local model)."""
    if not isinstance(model, str):
        raise LLMKitError(f"estimate_cost: model must be a model name (str), got {type(model).__name__}")
    for name, value in (("prompt_tokens", prompt_tokens), ("completion_tokens", completion_tokens)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise LLMKitError(f"estimate_cost: {name} must be a non-negative integer, got {value!r}; "
                              f"pass the counts from a result's .usage")
    price = price_of(model)
    if price is None:
        return None
    return (prompt_tokens * price[0] + completion_tokens * price[1]) / 1_000_000


def format_cost(cost: float | None) -> str:
    """``"$0.000150"``-style text, or ``"n/a"`` for an unknown price."""
    if cost is None:
        return "n/a"
    return f"${cost:.2f}" if cost >= 1 else f"${cost:.6f}"
