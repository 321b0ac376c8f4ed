"""Spend limits: ``BUDGET_USD`` for this process, ``DAILY_BUDGET_USD`` for today across processes.

Before an uncached call is sent, its cost is estimated at its worst: the prompt's tokens at the
input price plus the output limit (``max_tokens``, else the model's own) at the output price. If
that could take spend past a budget, `BudgetExceededError` is raised and nothing is sent. The
estimate is reserved while the call is in flight, so eight batch threads cannot each see room
for one more call and together overspend; when the answer comes, the reservation gives way to its
real cost. With a budget set, a call whose model has no known price is refused (it would count
$0); the local model costs nothing and is never refused.
"""

from __future__ import annotations

import math
import threading

from ..base import tokens
from ..base.errors import BudgetExceededError, ConfigError
from ..base.models import model_info
from .prepare import Prepared

__all__ = ["estimate", "reserve", "settle", "spent"]

_lock = threading.Lock()
_spent = 0.0  # USD paid by this process (answers from the model, not the cache)
_reserved = 0.0  # USD estimated for calls in flight


def spent() -> float:
    """USD this process has paid so far (calls answered by a model, priced by the model table)."""
    return _spent


def estimate(p: Prepared) -> float | None:
    """The most ``p`` could cost in USD (None: the model has no known price)."""
    info = model_info(p.priced_as)
    if info.input_price is None or info.output_price is None:
        return None
    if p.kind == "embedding":
        texts = p.request["input"]
        texts = [texts] if isinstance(texts, str) else texts
        return sum(tokens.count_text(t, info.encoding) for t in texts) * info.input_price / 1e6
    prompt = tokens.count_tokens(p.request["messages"], info.encoding,
                                 tools=p.request.get("tools"))
    limit = (p.request.get("max_completion_tokens") or p.request.get("max_tokens")
             or info.max_output_tokens or 0)
    return (prompt * info.input_price + int(limit) * info.output_price) / 1e6


def reserve(p: Prepared) -> float:
    """Check ``p`` against the budgets and reserve its estimate (returned, for `settle`).

    Raises `BudgetExceededError` when it could take spend past either budget.
    """
    global _reserved
    s = p.settings
    per_process, daily = s["budget_usd"], s["daily_budget_usd"]
    if per_process is None and daily is None:
        return 0.0
    if p.api_type == "local":
        return 0.0  # runs on this machine: nothing to pay (`Completion.paid`)
    model = p.request["model"]
    worst = estimate(p)
    if worst is None:
        names = (n for n, v in (("BUDGET_USD", per_process), ("DAILY_BUDGET_USD", daily)) if v is not None)
        raise BudgetExceededError(_unpriced(p, " and ".join(names)))
    with _lock:
        if per_process is not None and _spent + _reserved + worst > per_process:
            raise BudgetExceededError(
                f"this call to {model!r} could cost up to ${worst:.4f}, and this process has "
                f"spent ${_spent:.4f} (${_reserved:.4f} more in flight) of its BUDGET_USD "
                f"${per_process:g}; nothing was sent. Raise BUDGET_USD, lower max_tokens, or "
                f"use a cheaper model")
        if daily is not None:
            if not p.history:
                raise ConfigError("DAILY_BUDGET_USD is read from the run history, which is off "
                                  "(HISTORY=False): turn the history on, or use BUDGET_USD")
            from .history import spent_today
            today = spent_today(p.history)
            if today + _reserved + worst > daily:
                raise BudgetExceededError(
                    f"this call to {model!r} could cost up to ${worst:.4f}, and ${today:.4f} has "
                    f"been spent today (${_reserved:.4f} more in flight) of the DAILY_BUDGET_USD "
                    f"${daily:g}; nothing was sent. Raise DAILY_BUDGET_USD, lower max_tokens, or "
                    f"wait until tomorrow")
        _reserved += worst
    return worst


def _unpriced(p: Prepared, budgets: str) -> str:
    model = str(p.request["model"])
    shown = repr(model) if p.priced_as == model else f"{model!r} (taken as {p.priced_as!r})"
    if p.api_type == "azure":
        hint = (f"map the deployment to the model it serves, e.g. AZURE_DEPLOYMENTS = {model}:gpt-4o "
                f"(environment LLMKIT_AZURE_DEPLOYMENTS, or llmkit.force_default_value("
                f"'azure_deployments', '{model}:gpt-4o'))")
    else:
        hint = "use a model llmkit has a price for (llmkit.model_info(name).input_price)"
    return (f"llmkit has no price for {shown}, so this call cannot be kept within {budgets}; "
            f"nothing was sent. To go on, {hint}, or unset {budgets}")


def settle(reserved: float, paid: float | None) -> None:
    """Release a reservation and count what the call really cost (``paid``; None: unknown).
    A negative or non-finite amount is never added."""
    global _spent, _reserved
    with _lock:
        _reserved = max(0.0, _reserved - reserved)
        if paid is not None and math.isfinite(paid) and paid > 0:
            _spent += paid


def _reset() -> None:
    """Forget this process's spend (tests use this between tests)."""
    global _spent, _reserved
    with _lock:
        _spent = _reserved = 0.0
