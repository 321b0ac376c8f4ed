"""Spend limits: ``BUDGET_USD`` for this process, ``DAILY_BUDGET_USD`` for today across processes.

Before an uncached call is sent, its cost is estimated at its worst: the prompt's tokens at the
input price plus the output limit (``max_tokens``, else the model's own) at the output price, at
the prices of the model it is priced as (`Prepared.priced_as`: on Azure the model a deployment
serves). If that could take spend past a budget, `BudgetExceededError` is raised and nothing is
sent. The estimate is held while the call is in flight, so eight batch threads, or four kernels,
cannot each see room for one more call and together overspend; when the answer comes, the hold
gives way to what it cost (`Completion.paid`, estimated from llmkit's own counts when the server
sends no usable usage).

``BUDGET_USD`` is counted in this process. ``DAILY_BUDGET_USD`` is counted in a ledger file that
every process shares (`llmkit.base.ledger`, ``LEDGER_PATH``, else ``ledger.sqlite3`` in the cache
folder), written by the calls made while it is set; it does not read the run history.

Money controls fail closed: with a budget set, a call whose model has no known price, or whose
spend cannot be written to the ledger, is refused before sending. The local model costs nothing
and is never refused.
"""

from __future__ import annotations

import math
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path

from ..base import tokens
from ..base.errors import BudgetExceededError, LLMKitWarning
from ..base.ledger import Ledger, LedgerError
from ..base.models import model_info
from .prepare import Prepared

__all__ = ["Hold", "estimate", "ledger_path", "reserve", "settle", "spent"]

_lock = threading.Lock()
_spent = 0.0  # USD paid by this process (answers from the model, not the cache)
_reserved = 0.0  # USD estimated for calls in flight
_unsettled: dict[str, list[tuple[str, float]]] = {}  # ledger path -> (id, paid) not yet written


@dataclass(frozen=True)
class Hold:
    """What `reserve` set aside for one call, for `settle`."""

    worst: float  # USD held in this process
    ledger: str | None = None  # the ledger's file, when DAILY_BUDGET_USD holds it there too
    id: str | None = None  # the reservation's id in that ledger


_NOTHING = Hold(0.0)


def spent() -> float:
    """USD this process has paid so far (calls answered by a model, priced by the model table)."""
    return _spent


def ledger_path(p: Prepared) -> str:
    """The daily ledger's file: LEDGER_PATH, else ``ledger.sqlite3`` in the cache folder."""
    configured = p.settings.get("ledger_path")
    return str(Path(configured).expanduser()) if configured else str(Path(p.cache_dir) / "ledger.sqlite3")


def estimate(p: Prepared) -> float | None:
    """The most ``p`` could cost in USD (None: its model has no known price)."""
    info = model_info(p.priced_as)
    if info.input_price is None or info.output_price is None:
        return None
    if p.kind == "embedding":
        texts = p.request["input"]
        texts = [texts] if isinstance(texts, str) else texts
        return sum(tokens.count_text(t, info.encoding) for t in texts) * info.input_price / 1e6
    prompt = tokens.count_tokens(p.chat["messages"], info.encoding, tools=p.chat.get("tools"))
    limit = (p.chat.get("max_completion_tokens") or p.chat.get("max_tokens")
             or info.max_output_tokens or 0)
    return (prompt * info.input_price + int(limit) * info.output_price) / 1e6


def reserve(p: Prepared) -> Hold:
    """Check ``p`` against the budgets and hold its worst case (returned, for `settle`).

    Raises `BudgetExceededError` when it could take spend past either budget, when its model has
    no known price, or when the daily ledger cannot be written.
    """
    global _reserved
    s = p.settings
    per_process, daily = s["budget_usd"], s["daily_budget_usd"]
    if (per_process is None and daily is None) or p.api_type == "local":
        return _NOTHING  # no budget, or it runs on this machine: nothing to pay (`Completion.paid`)
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
        _reserved += worst
    if daily is None:
        return Hold(worst)
    path = ledger_path(p)
    with _lock:
        owed = _unsettled.pop(path, [])
    held = None
    try:
        held = Ledger(path).reserve(worst, daily, ttl=_longest_life(p), settle_first=owed)
    except LedgerError as exc:
        raise BudgetExceededError(
            f"the spend ledger {path} cannot be written ({exc}), so DAILY_BUDGET_USD cannot be "
            f"kept; nothing was sent. Make the file writable, delete it if it is damaged "
            f"(today's spend recorded in it is lost), set LEDGER_PATH to another file, or "
            f"unset DAILY_BUDGET_USD") from None
    finally:
        if held is None or held.id is None:  # not sent: give the hold back, keep what is owed
            with _lock:
                _reserved = max(0.0, _reserved - worst)
                if held is None:
                    _unsettled.setdefault(path, []).extend(owed)
    if held.id is None:
        raise BudgetExceededError(
            f"this call to {model!r} could cost up to ${worst:.4f}, and ${held.spent:.4f} has "
            f"been spent today (${held.held:.4f} more in flight, every process) of the "
            f"DAILY_BUDGET_USD ${daily:g}; nothing was sent. Raise DAILY_BUDGET_USD, lower "
            f"max_tokens, or wait until tomorrow")
    return Hold(worst, path, held.id)


def settle(hold: Hold, paid: float | None) -> None:
    """Release a hold and count what the call really cost (``paid``; None: unknown, or nothing
    came back). A negative or non-finite amount is never added."""
    global _spent, _reserved
    amount = paid if paid is not None and math.isfinite(paid) and paid > 0 else 0.0
    with _lock:
        _reserved = max(0.0, _reserved - hold.worst)
        _spent += amount
    if hold.ledger is None or hold.id is None:
        return
    try:
        Ledger(hold.ledger).settle(hold.id, amount)
    except LedgerError as exc:  # the call went through: keep its cost for the next write
        with _lock:
            _unsettled.setdefault(hold.ledger, []).append((hold.id, amount))
        warnings.warn(f"the spend ledger {hold.ledger} could not be written ({exc}); this call's "
                      f"${amount:.4f} is kept in this process until it can be, and calls with "
                      f"DAILY_BUDGET_USD are refused until then", LLMKitWarning, stacklevel=4)


def _longest_life(p: Prepared) -> float:
    """Seconds a call can stay in flight (every attempt, every wait between them), plus a margin:
    after that a hold whose process cannot be checked lapses."""
    policy = p.policy
    waits = max(policy.max_waiting_time, policy.max_retry_after) * (policy.max_attempts - 1)
    return p.timeout * policy.max_attempts + waits + 600.0


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


def _reset() -> None:
    """Forget this process's spend (tests use this between tests)."""
    global _spent, _reserved
    with _lock:
        _spent = _reserved = 0.0
        _unsettled.clear()
