"""The process-wide rate limiter: pacing, token budget, 429 pauses and slowdown, threads."""

from __future__ import annotations

import itertools
import threading
import time

import pytest

from llmkit.base import config
from llmkit.base.tokens import count_text, count_tokens
from llmkit.clients.limiter import RateLimiter, estimate_tokens, limiter_for
from llmkit.clients.openai_client import OpenAIClient
from tests.openai_server import OpenAITestServer


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def starts(rl: RateLimiter, clock: Clock, n: int, tokens: int = 0, **limits: float) -> list[float]:
    """Start times of ``n`` requests sent as soon as the limiter lets them (simulated time)."""
    out = []
    while len(out) < n:
        wait = rl.try_acquire(tokens, **limits)
        if wait:
            clock.now += wait
        else:
            out.append(clock.now)
    return out


def most_in_window(times: list[float], window: float) -> int:
    return max(sum(1 for u in times if t <= u < t + window) for t in times)


def test_rpm_spaces_requests_evenly_at_the_limit() -> None:
    clock = Clock()
    times = starts(RateLimiter(clock), clock, 1000, rpm=480)
    gaps = {b - a for a, b in itertools.pairwise(times)}
    assert gaps == {0.125}  # exactly 60 / rpm: as fast as allowed, never a burst
    assert most_in_window(times, 60.0) == 480
    assert most_in_window(times, 1.0) == 8


def test_tpm_spaces_requests_by_their_tokens() -> None:
    clock = Clock()
    times = starts(RateLimiter(clock), clock, 100, tokens=500, tpm=6000)  # 100 tokens / s
    assert {round(b - a, 9) for a, b in itertools.pairwise(times)} == {5.0}
    assert most_in_window(times, 60.0) * 500 <= 6000


def test_the_stricter_of_rpm_and_tpm_wins() -> None:
    clock = Clock()
    times = starts(RateLimiter(clock), clock, 3, tokens=10, rpm=60, tpm=60_000)
    assert times[2] - times[0] == pytest.approx(2.0)  # RPM binds: 1 s apart
    clock = Clock()
    times = starts(RateLimiter(clock), clock, 3, tokens=2000, rpm=60, tpm=60_000)
    assert times[2] - times[0] == pytest.approx(4.0)  # TPM binds: 2000 tokens = 2 s


def test_unused_tokens_are_given_back() -> None:
    clock = Clock()
    rl = RateLimiter(clock)
    assert rl.try_acquire(1000, tpm=60_000) == 0.0  # reserves 1 s of the budget
    assert rl.try_acquire(1000, tpm=60_000) == pytest.approx(1.0)
    rl.succeeded(900, tpm=60_000)  # the answer used 100 of the 1000
    assert rl.try_acquire(1000, tpm=60_000) == pytest.approx(0.1)
    rl.succeeded(-400, tpm=60_000)  # used more than estimated: charged
    assert rl.try_acquire(1000, tpm=60_000) == pytest.approx(0.5)


def test_no_limits_means_no_waiting() -> None:
    clock = Clock()
    assert starts(RateLimiter(clock), clock, 50) == [clock.now] * 50


def test_a_429_pauses_everyone_repeated_429s_slow_down_and_it_recovers() -> None:
    clock = Clock()
    rl = RateLimiter(clock)
    assert rl.try_acquire(rpm=60) == 0.0
    clock.now += 1.0
    rl.rate_limited(retry_after=5.0)
    rl.rate_limited(retry_after=5.0)  # the same burst of 429s
    assert rl.try_acquire(rpm=60) == pytest.approx(5.0)
    assert rl.try_acquire() == pytest.approx(5.0)  # even a request with no limits waits
    clock.now += 5.0
    after = starts(rl, clock, 3, rpm=60)
    assert after[1] - after[0] == pytest.approx(1.0)  # one burst: a pause, not a slowdown
    clock.now += 2.0
    rl.rate_limited(retry_after=1.0)  # 429s again, soon after: the limit is really lower
    clock.now += 1.0
    after = starts(rl, clock, 3, rpm=60)
    assert after[1] - after[0] == pytest.approx(1 / 0.9)  # 90 % of the limit
    for _ in range(100):
        rl.succeeded()
    assert rl.factor == 1.0
    clock.now += 10
    again = starts(rl, clock, 2, rpm=60)
    assert again[1] - again[0] == pytest.approx(1.0)


def test_repeated_429s_without_retry_after_still_slow_down() -> None:
    clock = Clock()
    rl = RateLimiter(clock)
    rl.rate_limited(None)
    clock.now += 3.0
    rl.rate_limited(None)
    assert rl.try_acquire(rpm=60) == 0.0
    assert rl.try_acquire(rpm=60) == pytest.approx(1 / 0.9)


def test_threads_share_the_pace() -> None:
    rl = RateLimiter()
    booked: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(5):
            rl.acquire(rpm=6000)  # 10 ms apart
            with lock:
                booked.append(time.monotonic())

    started = time.monotonic()
    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(booked) == 40
    assert max(booked) - started >= 39 * 0.01  # 40 requests at 100/s need 0.39 s at least


def test_a_refund_wakes_waiting_threads() -> None:
    rl = RateLimiter()
    rl.acquire(6000, tpm=60_000)  # the next request must wait 6 s ...
    waited: list[float] = []
    thread = threading.Thread(target=lambda: waited.append(rl.acquire(10, tpm=60_000)))
    thread.start()
    time.sleep(0.05)
    rl.succeeded(6000, tpm=60_000)  # ... unless those tokens come back
    thread.join(timeout=5)
    assert waited and waited[0] < 1.0


def test_one_limiter_per_endpoint() -> None:
    a = limiter_for("openai", "https://api.openai.com/v1")
    assert limiter_for("openai", "https://api.openai.com/v1") is a
    assert limiter_for("local", "http://127.0.0.1:8080/v1") is not a


def test_token_estimate_is_prompt_plus_answer_limit() -> None:
    messages = [{"role": "user", "content": "How many tokens is this?"}]
    request = {"model": "gpt-4o-mini", "messages": messages, "max_tokens": 50}
    assert estimate_tokens(request) == count_tokens(messages, "gpt-4o-mini") + 50
    reasoning = {"model": "o3-mini", "messages": messages, "max_completion_tokens": 7}
    assert estimate_tokens(reasoning) == count_tokens(messages, "o3-mini") + 7


def test_embeddings_wait_in_the_limiter_like_chat(llm: OpenAITestServer) -> None:
    """One executor for every kind: an embeddings call takes its turn at RPM (and its input at
    TPM), so chat calls after it wait for it, as they wait for each other."""
    config.force_default_value("rpm", 60)  # one request a second
    config.force_default_value("tpm", 1000)
    OpenAIClient().get_embedding(["the cat sat on the mat", "a dog"])
    assert llm.requests[-1].path.endswith("/embeddings")
    shared = limiter_for("openai", llm.base_url)
    assert shared.try_acquire(rpm=60) == pytest.approx(1.0, abs=0.1)  # the slot was taken
    OpenAIClient().get_embedding(["the cat sat on the mat", "a dog"])  # cached: no turn taken
    assert len(llm.requests) == 1


def test_token_estimate_of_embeddings_is_their_input() -> None:
    request = {"model": "text-embedding-3-small", "input": ["How many tokens is this?", "two"]}
    assert estimate_tokens(request) == (count_text("How many tokens is this?", "cl100k_base")
                                        + count_text("two", "cl100k_base"))
