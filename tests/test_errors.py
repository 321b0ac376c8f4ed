"""Every openai exception maps into llmkit's tree, in one place."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import httpx2
import openai
import pytest

import llmkit
from llmkit.base import errors
from llmkit.base.cache import ResponseCache
from llmkit.clients.boundary import translate as _map_openai_error

REQUEST = httpx2.Request("POST", "http://127.0.0.1/v1/chat/completions")
BY_STATUS = {400: errors.InvalidRequestError, 401: errors.AuthenticationError,
             403: errors.AuthenticationError, 404: errors.InvalidRequestError,
             408: errors.ServerError, 409: errors.ServerError, 422: errors.InvalidRequestError,
             429: errors.RateLimitError, 500: errors.ServerError, 503: errors.ServerError}


def _status_error(status: int, code: str | None = None, headers: dict[str, str] | None = None
                  ) -> openai.APIStatusError:
    response = httpx2.Response(status, request=REQUEST, headers=headers or {})
    body = {"message": f"status {status}", "code": code, "type": "x"}
    return openai.APIStatusError(f"status {status}", response=response, body=body)


@pytest.mark.parametrize(("status", "expected"), sorted(BY_STATUS.items()))
def test_status_errors(status: int, expected: type[errors.CallError]) -> None:
    mapped = _map_openai_error(_status_error(status))
    assert type(mapped) is expected
    assert mapped.status == status and "status" in str(mapped)


def _instance(cls: type[openai.APIError]) -> openai.APIError:
    """An instance of any APIError subclass, whatever its own constructor wants."""
    exc = cls.__new__(cls)
    if issubclass(cls, openai.APIStatusError):
        status = {"BadRequestError": 400, "AuthenticationError": 401, "OAuthError": 401,
                  "PermissionDeniedError": 403, "NotFoundError": 404, "ConflictError": 409,
                  "UnprocessableEntityError": 422, "RateLimitError": 429}.get(cls.__name__, 500)
        openai.APIStatusError.__init__(exc, "m", response=httpx2.Response(status, request=REQUEST),
                                       body=None)
    elif issubclass(cls, openai.APIResponseValidationError):
        openai.APIResponseValidationError.__init__(exc, httpx2.Response(200, request=REQUEST), None)
    elif issubclass(cls, openai.APIConnectionError):
        openai.APIConnectionError.__init__(exc, request=REQUEST)
    else:
        openai.APIError.__init__(exc, "m", REQUEST, body=None)
    return exc


def test_every_openai_exception_class_is_mapped() -> None:
    classes = [c for _, c in inspect.getmembers(openai, inspect.isclass) if issubclass(c, openai.OpenAIError)]
    api_errors = [c for c in classes if issubclass(c, openai.APIError)]
    assert len(api_errors) >= 10
    for cls in api_errors:
        mapped = _map_openai_error(_instance(cls))
        assert isinstance(mapped, errors.CallError), cls
        assert type(mapped) is not errors.CallError, cls  # a specific branch of the tree
    for cls in set(classes) - set(api_errors):  # SDK-side errors (e.g. no API key given)
        exc = cls.__new__(cls)
        Exception.__init__(exc, "m")
        assert isinstance(_map_openai_error(exc), errors.CallError), cls


def test_transport_and_malformed_answers() -> None:
    assert isinstance(_map_openai_error(openai.APITimeoutError(request=REQUEST)), errors.TransportError)
    assert isinstance(_map_openai_error(openai.APIConnectionError(request=REQUEST)), errors.TransportError)
    with pytest.raises(TypeError):  # only the SDK's errors are translated: a bug stays a bug
        _map_openai_error(ValueError("my bug"))


def test_quota_code_and_retry_after() -> None:
    quota = _map_openai_error(_status_error(429, "insufficient_quota"))
    assert isinstance(quota, errors.RateLimitError) and quota.retryable is False
    limited = _map_openai_error(_status_error(429, "rate_limit_exceeded", {"retry-after": "2"}))
    assert limited.retryable is True and limited.retry_after == 2.0  # type: ignore[attr-defined]
    assert type(_map_openai_error(_status_error(400, "context_length_exceeded"))) is errors.ContextLengthError


def test_tree_shape_and_tinytroupe_names() -> None:
    assert issubclass(errors.InvalidRequestError, errors.CallError)
    assert issubclass(errors.NonTerminalError, errors.CallError)
    assert issubclass(errors.MissingVariableError, errors.TemplateError)
    for name in errors.__all__:
        cls = getattr(errors, name)
        if issubclass(cls, errors.LLMKitWarning):
            assert issubclass(cls, UserWarning)
            continue
        assert issubclass(cls, errors.LLMKitError) and issubclass(cls, Exception)
        assert getattr(llmkit, name, cls) is cls


def test_every_warning_is_an_llmkit_warning_exported_at_the_top(tmp_path: Path) -> None:
    warning_names = [n for n in errors.__all__ if issubclass(getattr(errors, n), Warning)]
    assert {"CacheWarning", "HistoryWarning", "LLMKitWarning"} <= set(warning_names)
    for name in warning_names:
        assert issubclass(getattr(errors, name), errors.LLMKitWarning), name
        assert getattr(llmkit, name) is getattr(errors, name), name
    # what a user sees: one filter on LLMKitWarning catches the cache's warnings too
    not_a_folder = tmp_path / "not-a-folder"
    not_a_folder.write_text("a file")
    with pytest.warns(llmkit.LLMKitWarning, match="temporary") as record:
        ResponseCache(not_a_folder).close()
    assert record[0].category is llmkit.CacheWarning
def test_every_error_is_drawn_in_the_tree_and_exported() -> None:
    drawn = errors.__doc__ or ""
    for name in errors.__all__:
        assert re.search(rf"\b{name}\b", drawn), name
        assert getattr(llmkit, name) is getattr(errors, name), name


def test_history_errors_are_their_own_branch(tmp_path: Path) -> None:
    """A broken history file is not a cache problem: it raises `HistoryError`, a direct child of
    `LLMKitError` (code that catches `CacheError` does not swallow it)."""
    assert errors.HistoryError.__bases__ == (errors.LLMKitError,)
    assert not issubclass(errors.HistoryError, errors.CacheError)
    broken = tmp_path / "history.sqlite3"
    broken.write_bytes(b"not a database" * 100)
    with pytest.raises(llmkit.HistoryError, match=r"cannot be used.*HISTORY_PATH"):
        llmkit.history(path=str(broken))
