"""Retries with exponential backoff, jitter, a cap, and the server's Retry-After."""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from ..base.errors import CallError, RateLimitError

__all__ = ["TIMEOUT_CODE", "RetryPolicy", "retry_after_seconds"]

T = TypeVar("T")
TIMEOUT_CODE = "timeout"
"""The ``code`` of a `TransportError` for an attempt that ran past TIMEOUT."""


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """How often and how long to wait between attempts.

    The n-th wait is ``waiting_time * exponential_backoff_factor ** (n - 1)``, capped at
    ``max_waiting_time``, with "equal jitter" (a random value between half and all of it).
    A server's Retry-After replaces the computed wait; one over ``max_retry_after`` (or not a
    finite number) is not waited for: the call fails at once with a `RateLimitError` saying so.
    With ``retry_timeouts`` False, an attempt that ran past TIMEOUT is not sent again (the local
    model: the abandoned generation would still hold llama.cpp, and the retry would queue behind it).
    """

    max_attempts: int = 5
    waiting_time: float = 1.0
    exponential_backoff_factor: float = 2.0
    max_waiting_time: float = 60.0
    max_retry_after: float = 60.0
    retry_timeouts: bool = True

    def retries(self, exc: CallError) -> bool:
        """Whether this policy sends again after ``exc``: `CallError.retryable` decides, except
        that a timeout (code ``"timeout"``) is final when ``retry_timeouts`` is False."""
        return exc.retryable and (self.retry_timeouts or exc.code != TIMEOUT_CODE)

    def delay(self, failures: int, retry_after: float | None = None) -> float:
        """Seconds to wait after the ``failures``-th failed attempt."""
        if retry_after is not None:
            return max(0.0, retry_after)
        wait = min(self.max_waiting_time,
                   self.waiting_time * self.exponential_backoff_factor ** (failures - 1))
        return wait / 2 + random.uniform(0, wait / 2)

    def run(self, attempt: Callable[[], T], *, sleep: Callable[[float], None] = time.sleep) -> T:
        """Call ``attempt`` until it succeeds, a failure that is not retryable occurs, or attempts
        run out; then the last failure is raised as it is, with ``attempts`` set."""
        failures = 0
        while True:
            try:
                return attempt()
            except CallError as exc:
                failures += 1
                exc.attempts = failures
                if not self.retries(exc) or failures >= self.max_attempts:
                    raise
                if exc.retry_after is not None and not exc.retry_after <= self.max_retry_after:
                    raise self._too_long(exc) from None
                sleep(self.delay(failures, exc.retry_after))


    def _too_long(self, exc: CallError) -> RateLimitError:
        asked = "forever" if not math.isfinite(exc.retry_after or 0) else f"{exc.retry_after:,.0f} s"
        error = RateLimitError(
            f"{exc.args[0]}; the server asks to wait {asked}, longer than MAX_RETRY_AFTER = "
            f"{self.max_retry_after:g} s: try again later, or raise MAX_RETRY_AFTER",
            status=exc.status, code=exc.code, retry_after=exc.retry_after)
        error.attempts = exc.attempts
        return error


def retry_after_seconds(headers: Mapping[str, str] | None) -> float | None:
    """Seconds from ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date)."""
    if not headers:
        return None
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return float(millis) / 1000
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    from email.utils import parsedate_to_datetime  # rare: imported only when needed
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None
