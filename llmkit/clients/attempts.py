"""One attempt at a call, by its kind: the only step in which chat, Responses and embeddings differ.

`OpenAIClient.execute` does everything else once for every kind (lookup, budget, rate limits,
retries, keep, record); here each kind says which SDK method it calls, inside the error boundary
(`llmkit.clients.boundary`), and how its answer is checked (`llmkit.clients.answers`,
`llmkit.clients.responses`) before anything returns or keeps it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import closing
from typing import Any

from . import answers, boundary, responses
from .prepare import Prepared
from .streaming import collect_stream

__all__ = ["Attempt", "attempt"]

Attempt = Callable[[], dict[str, Any]]
OnDelta = Callable[[str], None] | None


def attempt(sdk: Any, p: Prepared, on_delta: OnDelta) -> Attempt:
    """A function making one attempt at ``p`` with the SDK client ``sdk``; it returns the
    validated answer (the API's own JSON) or raises an llmkit `CallError`."""
    return _KINDS[p.kind](sdk, p, on_delta)


def _chat(sdk: Any, p: Prepared, on_delta: OnDelta) -> Attempt:
    create = sdk.chat.completions.create
    open_response = sdk.chat.completions.with_streaming_response.create

    def run() -> dict[str, Any]:
        deadline = time.monotonic() + p.timeout
        if p.stream:
            chunks = boundary.stream(lambda: create(
                **p.request, stream=True, stream_options={"include_usage": True},
                timeout=p.timeout), p.secrets, deadline)
            with closing(chunks):
                return answers.chat_answer(collect_stream(chunks, on_delta))
        body = boundary.read(lambda: open_response(**p.request, timeout=p.timeout), p.secrets, deadline)
        return answers.chat_answer(answers.parse_json(body))
    return run


def _responses(sdk: Any, p: Prepared, on_delta: OnDelta) -> Attempt:
    create = sdk.responses.create
    open_response = sdk.responses.with_streaming_response.create

    def run() -> dict[str, Any]:
        deadline = time.monotonic() + p.timeout
        if p.stream:
            events = boundary.stream(lambda: create(**p.request, stream=True, timeout=p.timeout),
                                     p.secrets, deadline)
            with closing(events):
                return responses.answer(responses.collect_events(events, on_delta))
        body = boundary.read(lambda: open_response(**p.request, timeout=p.timeout), p.secrets, deadline)
        return responses.answer(answers.parse_json(body))
    return run


def _embedding(sdk: Any, p: Prepared, on_delta: OnDelta) -> Attempt:
    open_response = sdk.embeddings.with_streaming_response.create

    def run() -> dict[str, Any]:
        deadline = time.monotonic() + p.timeout
        body = boundary.read(lambda: open_response(**p.request, timeout=p.timeout), p.secrets, deadline)
        answer: dict[str, Any] = answers.parse_json(body)
        answers.embedding_vectors(answer, len(p.request["input"]))
        return answer
    return run


_KINDS: dict[str, Callable[[Any, Prepared, OnDelta], Attempt]] = {
    "chat": _chat, "responses": _responses, "embedding": _embedding}
