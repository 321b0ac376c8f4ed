"""Process-wide rate limiting: requests per minute (RPM) and tokens per minute (TPM) per endpoint.

Every request `OpenAIClient.complete` sends (cache hits excepted) first waits in the `RateLimiter`
of its ``(api_type, endpoint)``: providers count limits per account or resource, so calls to the
same endpoint share one budget whatever thread or `LLMCall` they come from, and a local server
never throttles OpenAI. RPM and TPM are read from configuration when each request is made.

Requests are spaced evenly (a GCRA, i.e. a token bucket that holds one request): at ``rpm`` a
request may start ``60 / rpm`` seconds after the previous one, never in bursts, because providers
enforce per-minute limits over much shorter windows. TPM works the same way with a request's
estimated tokens (prompt tokens from the token counter plus ``max_tokens``, which providers
reserve); when the answer's usage is known the unused part is given back.

A 429 pauses every request to the endpoint for its Retry-After; 429s that keep coming after the
pause lower the pace to 90 % (each time); each success then restores 1 % of the limit.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from ..base.errors import RateLimitError
from .prepare import Prepared

__all__ = ["Gate", "RateLimiter", "estimate_tokens", "limiter_for"]

SLOWDOWN = 0.9  # pace after a repeated burst of 429s, relative to the current one
REPEAT = 10.0  # seconds: a burst of 429s this soon after the last one slows the pace down
RECOVERY = 0.01  # pace regained per successful request, up to the configured limits
FLOOR = 0.05  # the pace never drops below 5 % of the limits

_lock = threading.Lock()
_limiters: dict[tuple[str, str], RateLimiter] = {}


class RateLimiter:
    """Paces requests to one endpoint; thread-safe. ``factor`` is the pace relative to the limits."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._cond = threading.Condition()
        self._next_request = float("-inf")  # earliest start of the next request (RPM)
        self._next_token = float("-inf")  # the same for the token budget (TPM)
        self._paused_until = float("-inf")
        self._last_429 = float("-inf")
        self.factor = 1.0

    def try_acquire(self, tokens: int = 0, *, rpm: float | None = None, tpm: float | None = None,
                    now: float | None = None) -> float:
        """Book a request now and return 0.0, or return the seconds to wait before trying again."""
        now = self._clock() if now is None else now
        with self._cond:
            start = max(self._paused_until, self._next_request if rpm else now,
                        self._next_token if tpm else now)
            if start > now:
                return start - now
            if rpm:
                self._next_request = max(self._next_request, now) + 60.0 / (rpm * self.factor)
            if tpm:
                self._next_token = max(self._next_token, now) + tokens * 60.0 / (tpm * self.factor)
            return 0.0

    def acquire(self, tokens: int = 0, *, rpm: float | None = None, tpm: float | None = None) -> float:
        """Block until a request of ``tokens`` may start; return the seconds waited."""
        started = self._clock()
        with self._cond:
            while (wait := self.try_acquire(tokens, rpm=rpm, tpm=tpm)) > 0:
                self._cond.wait(wait)  # woken early by refunds and pauses
        return self._clock() - started

    def rate_limited(self, retry_after: float | None = None) -> None:
        """A 429: pause everyone for ``retry_after`` seconds; slow down if 429s keep coming.

        One burst of 429s (those arriving while paused, or within a second of each other) only
        pauses: pacing at a limit meets an occasional 429 from clock jitter, and slowing down for
        it would cost more than the pause. A new burst within `REPEAT` seconds of the last one
        means the limit is really lower: the pace drops to `SLOWDOWN` of what it was.
        """
        with self._cond:
            now = self._clock()
            pause = max(retry_after or 0.0, 0.0)
            same_burst = now <= self._paused_until or now - self._last_429 < 1.0
            if not same_burst and now - self._last_429 < REPEAT:
                self.factor = max(FLOOR, self.factor * SLOWDOWN)
            self._last_429 = now
            self._paused_until = max(self._paused_until, now + pause)
            self._cond.notify_all()

    def succeeded(self, refund: int = 0, *, tpm: float | None = None) -> None:
        """A request got its answer: regain pace and give back ``refund`` tokens it did not use."""
        with self._cond:
            self.factor = min(1.0, self.factor + RECOVERY)
            if tpm and refund:  # negative: the answer used more than estimated
                self._next_token -= refund * 60.0 / (tpm * self.factor)
                self._cond.notify_all()


def limiter_for(api_type: str, endpoint: str) -> RateLimiter:
    """The process-wide `RateLimiter` of an endpoint."""
    with _lock:
        return _limiters.setdefault((api_type, endpoint), RateLimiter())


def estimate_tokens(request: Mapping[str, Any]) -> int:
    """Tokens a request may use: a chat request's prompt (token counter) plus its answer limit,
    an embeddings request's input texts (``request`` in the chat vocabulary: `Prepared.chat`)."""
    from ..base.models import model_info
    from ..base.tokens import count_text, count_tokens
    encoding = model_info(str(request["model"])).encoding
    if "messages" not in request:
        texts = request.get("input")
        texts = [texts] if isinstance(texts, str) else texts if isinstance(texts, list) else []
        return sum(count_text(t, encoding) for t in texts if isinstance(t, str))
    limit = request.get("max_tokens") or request.get("max_completion_tokens") or 0
    return count_tokens(request["messages"], encoding, tools=request.get("tools")) + int(limit)


class Gate:
    """One request's passage through its endpoint's limiter (see `OpenAIClient.complete`)."""

    def __init__(self, prepared: Prepared) -> None:
        self.limiter = limiter_for(prepared.api_type, prepared.endpoint)
        self.rpm, self.tpm = prepared.rpm, prepared.tpm
        self.longest_pause = prepared.policy.max_retry_after
        self.tokens = estimate_tokens(prepared.chat) if self.tpm else 0
        self.reserved = 0

    def acquire(self) -> None:
        """Wait for this attempt's turn."""
        self.limiter.acquire(self.tokens, rpm=self.rpm, tpm=self.tpm)
        self.reserved += self.tokens

    def failed(self, error: BaseException) -> None:
        """A failed attempt: a retryable 429 pauses and slows down every request to the endpoint."""
        if isinstance(error, RateLimitError) and error.retryable:
            # Never hold other calls longer than MAX_RETRY_AFTER ("inf" is not a wait).
            asked = error.retry_after
            cap = self.longest_pause
            self.limiter.rate_limited(None if asked is None else asked if asked <= cap else cap)

    def succeeded(self, response: Mapping[str, Any]) -> None:
        """The answer came: tokens reserved beyond its reported usage go back to the budget."""
        used = (response.get("usage") or {}).get("total_tokens")
        refund = self.reserved - int(used) if isinstance(used, int) else 0
        self.limiter.succeeded(refund, tpm=self.tpm)


def _reset() -> None:
    """Forget every limiter's state (tests use this)."""
    with _lock:
        _limiters.clear()
