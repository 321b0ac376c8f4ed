"""Backoff arithmetic and the retry loop, without a server."""

from __future__ import annotations

import time
from email.utils import formatdate

import pytest

from llmkit.base.errors import (
    InvalidRequestError,
    RateLimitError,
    ServerError,
    TransportError,
)
from llmkit.clients.retry import TIMEOUT_CODE, RetryPolicy, retry_after_seconds


def test_delay_grows_exponentially_with_jitter_and_cap() -> None:
    policy = RetryPolicy(waiting_time=1, exponential_backoff_factor=2, max_waiting_time=5)
    for failures, full in [(1, 1), (2, 2), (3, 4), (4, 5), (10, 5)]:
        for _ in range(50):
            assert full / 2 <= policy.delay(failures) <= full


def test_retry_after_replaces_backoff() -> None:
    assert RetryPolicy(waiting_time=10).delay(1, retry_after=0.25) == 0.25


def test_retry_after_header_forms() -> None:
    assert retry_after_seconds({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert retry_after_seconds({"retry-after": "3"}) == 3.0
    date = retry_after_seconds({"retry-after": formatdate(time.time() + 30, usegmt=True)})
    assert date is not None and 25 < date <= 31
    assert retry_after_seconds({"retry-after": "soon"}) is None
    assert retry_after_seconds(None) is None


def test_run_retries_non_terminal_then_succeeds() -> None:
    outcomes: list[Exception | str] = [ServerError("boom", status=500), RateLimitError("slow", status=429,
                                       retry_after=0.5), "ok"]
    waits: list[float] = []

    def attempt() -> str:
        item = outcomes.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    assert RetryPolicy(waiting_time=0.1).run(attempt, sleep=waits.append) == "ok"
    assert len(waits) == 2 and waits[1] == 0.5


def test_run_gives_up_saying_how_many_and_last_failure() -> None:
    def attempt() -> str:
        raise ServerError("HTTP 503: overloaded", status=503)

    waits: list[float] = []
    with pytest.raises(ServerError, match=r"^HTTP 503: overloaded \(gave up after 3 attempts\)$") as info:
        RetryPolicy(max_attempts=3).run(attempt, sleep=waits.append)
    assert info.value.attempts == 3 and len(waits) == 2 and info.value.status == 503


def test_quota_and_invalid_requests_are_not_retried() -> None:
    calls = []

    def quota() -> str:
        calls.append(1)
        raise RateLimitError("quota", status=429, code="insufficient_quota")

    with pytest.raises(RateLimitError):
        RetryPolicy().run(quota, sleep=lambda s: None)

    def invalid() -> str:
        calls.append(1)
        raise InvalidRequestError("bad", status=400)

    with pytest.raises(InvalidRequestError):
        RetryPolicy().run(invalid, sleep=lambda s: None)
    assert len(calls) == 2


@pytest.mark.parametrize(("retry_timeouts", "attempts"), [(True, 3), (False, 1)])
def test_a_policy_without_retry_timeouts_stops_at_the_first_timeout(retry_timeouts: bool,
                                                                    attempts: int) -> None:
    calls: list[str] = []

    def attempt(code: str | None) -> str:
        calls.append("sent")
        raise TransportError("slow", code=code)

    policy = RetryPolicy(max_attempts=3, retry_timeouts=retry_timeouts)
    with pytest.raises(TransportError) as info:
        policy.run(lambda: attempt(TIMEOUT_CODE), sleep=lambda s: None)
    assert info.value.attempts == len(calls) == attempts
    calls.clear()
    with pytest.raises(TransportError):  # a refused connection is retried either way
        policy.run(lambda: attempt(None), sleep=lambda s: None)
    assert len(calls) == 3
