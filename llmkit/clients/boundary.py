"""The one error boundary: the ``openai`` SDK's calls and stream iterators, and nothing else.

Only what talks to the network runs inside it, so a bug in a user's callback (``on_delta``, a
progress hook) surfaces as itself, never as a server error. The SDK's exceptions are translated
into llmkit's tree here and only here (`translate`); the call's credentials are scrubbed from the
message (`llmkit.base.secrets.scrub`), and the SDK's exception is not chained (its text can carry
a key a server echoed).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

from ..base.errors import (
    AuthenticationError,
    CallError,
    ContextLengthError,
    InvalidRequestError,
    RateLimitError,
    ServerError,
    TransportError,
)
from ..base.secrets import scrub
from .retry import TIMEOUT_CODE, retry_after_seconds

__all__ = ["call", "read", "stream", "translate"]

T = TypeVar("T")


def call(fn: Callable[[], T], secrets: Sequence[str] = ()) -> T:
    """Run one SDK call; its exceptions come out as llmkit's."""
    import openai
    try:
        return fn()
    except openai.OpenAIError as exc:
        error = translate(exc, secrets)
    raise error from None


def read(open_response: Callable[[], Any], secrets: Sequence[str], deadline: float) -> bytes:
    """The whole body of a ``with_streaming_response`` call, read before ``deadline``
    (`time.monotonic`): TIMEOUT bounds the attempt, not each read of a server that trickles."""
    manager = open_response()
    response = call(manager.__enter__, secrets)
    try:
        body = bytearray()
        for chunk in _guarded(response.iter_bytes(), secrets):
            body += chunk
            _in_time(deadline)
        return bytes(body)
    finally:
        manager.__exit__(None, None, None)


def stream(open_stream: Callable[[], Any], secrets: Sequence[str],
           deadline: float) -> Generator[dict[str, Any], None, None]:
    """The chunks of a streamed answer as JSON dicts; opening and reading are inside the boundary,
    the consumer's own code (between chunks) is not. The SDK stream is closed when this closes."""
    chunks = call(open_stream, secrets)
    try:
        for chunk in _guarded(chunks, secrets):
            _in_time(deadline)
            yield chunk.model_dump(mode="json", exclude_unset=True)
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()


def _in_time(deadline: float) -> None:
    if time.monotonic() > deadline:
        raise TransportError("the answer did not arrive within TIMEOUT (a deadline for the whole "
                             "attempt); raise TIMEOUT for long answers", code=TIMEOUT_CODE)


def _guarded(items: Iterable[T], secrets: Sequence[str]) -> Iterator[T]:
    """``items``, with the errors raised while reading them translated."""
    import openai
    iterator = iter(items)
    while True:
        try:
            item = next(iterator)
        except StopIteration:
            return
        except openai.OpenAIError as exc:
            error: CallError = translate(exc, secrets)
        except json.JSONDecodeError as exc:  # a data: line that is not JSON (read by the SDK)
            error = ServerError(f"the server's streamed answer is malformed: {exc.msg}")
        except Exception as exc:
            if not _is_transport(exc):
                raise
            error = TransportError(scrub(f"the connection broke while reading the answer "
                                         f"({type(exc).__name__}: {exc})", secrets))
        else:
            yield item
            continue
        raise error from None


def _is_transport(exc: BaseException) -> bool:
    """An error of the HTTP stack under the SDK (httpx and its relatives) or of the socket."""
    package = type(exc).__module__.split(".")[0]
    return package.startswith(("httpx", "httpcore", "h11")) or isinstance(exc, OSError)


def translate(exc: BaseException, secrets: Sequence[str] = ()) -> CallError:
    """The llmkit error for an ``openai`` exception (anything else is not ours to translate)."""
    import openai

    def clean(text: str) -> str:
        return scrub(text, secrets)

    if isinstance(exc, openai.APITimeoutError):
        return TransportError(f"the request timed out ({type(exc).__name__}): no answer within "
                              f"TIMEOUT", code=TIMEOUT_CODE)
    if isinstance(exc, openai.APIConnectionError):
        return TransportError(clean(f"connection failed: {exc}"))
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        body: Any = exc.body if isinstance(exc.body, Mapping) else {}
        inner = body.get("error", body)
        body = inner if isinstance(inner, Mapping) else body
        code = body.get("code") or body.get("type")
        detail = body.get("message") or exc.message
        message = clean(f"HTTP {status}: {str(detail)[:2000]}")
        kw: dict[str, Any] = {"status": status, "code": code if isinstance(code, str) else None,
                              "retry_after": retry_after_seconds(exc.response.headers)}
        if status == 429:
            return RateLimitError(message, **kw)
        if status in (408, 409) or status >= 500:
            return ServerError(message, **kw)
        if status in (401, 403):
            return AuthenticationError(message, **kw)
        if code == "context_length_exceeded" or body.get("type") == "exceed_context_size_error":
            return ContextLengthError(message, **kw)
        return InvalidRequestError(message, **kw)
    if isinstance(exc, openai.APIResponseValidationError):
        return ServerError(clean(f"the server's answer is malformed: {exc}"))
    if isinstance(exc, openai.APIError):
        return ServerError(clean(f"API error: {exc}"))
    if isinstance(exc, openai.OpenAIError):
        return CallError(clean(str(exc)))
    raise TypeError(f"translate() takes openai exceptions, not {type(exc).__name__}")
