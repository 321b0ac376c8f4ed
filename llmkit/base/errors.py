"""The one exception tree of llmkit.

    LLMKitError
    ├── ConfigError                  bad value in config.ini / environment / force_default_value
    ├── TemplateError                template not found, or a syntax error in it
    │   └── MissingVariableError     a variable the template needs was not given
    ├── CacheError                   cache folder, export or import problem (replay misses too)
    │   └── ReplayMissError          read-only replay: the call is not in the recording
    └── CallError                    a request to a model API failed
        ├── InvalidRequestError      the request itself is wrong: do not retry (400, 404, 422)
        │   ├── AuthenticationError  401 / 403, or no credentials configured
        │   └── ContextLengthError   the prompt does not fit the model's context window
        └── NonTerminalError         a failure that may pass: retried by llmkit
            ├── TransportError       timeout or connection failure
            ├── RateLimitError       429 (``insufficient_quota`` is not retried, see ``retryable``)
            ├── ServerError          408, 409, 5xx
            └── AttemptsExhaustedError  raised when ``max_attempts`` ran out

`InvalidRequestError` and `NonTerminalError` keep TinyTroupe's names. The ``openai`` package's
exceptions are translated in exactly one place: `llmkit.openai_client._map_openai_error`.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AttemptsExhaustedError",
    "AuthenticationError",
    "CacheError",
    "CallError",
    "ConfigError",
    "ContextLengthError",
    "InvalidRequestError",
    "LLMKitError",
    "MissingVariableError",
    "NonTerminalError",
    "RateLimitError",
    "ReplayMissError",
    "ServerError",
    "TemplateError",
    "TransportError",
]


class LLMKitError(Exception):
    """Base class of every error llmkit raises."""


class ConfigError(LLMKitError, ValueError):
    """A configuration value is missing or malformed."""


class TemplateError(LLMKitError):
    """A template could not be found or parsed."""


class MissingVariableError(TemplateError, KeyError):
    """A template variable was not given.  ``.variable`` and ``.template`` name it."""

    def __init__(self, variable: str, template: str) -> None:
        self.variable = variable
        self.template = template
        super().__init__(variable, template)

    def __str__(self) -> str:
        return (
            f"template {self.template} needs the variable {self.variable!r}; "
            f"pass it as {self.variable}=... to .call()"
        )


class CacheError(LLMKitError):
    """The cache could not be read, written, exported or imported."""


class ReplayMissError(CacheError):
    """A call was not found in a read-only replay recording."""


class CallError(LLMKitError):
    """A request to a model API failed.

    ``status`` is the HTTP status (None for transport failures), ``code`` the API's error code.
    """

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.retry_after = retry_after


class InvalidRequestError(CallError):
    """The request is wrong and will fail again unchanged (400, 404, 422)."""


class AuthenticationError(InvalidRequestError):
    """Credentials are missing or rejected (401, 403)."""


class ContextLengthError(InvalidRequestError):
    """The prompt plus ``max_tokens`` does not fit the model's context window."""


class NonTerminalError(CallError):
    """A failure that may pass if the request is sent again (``retryable`` says whether llmkit will)."""

    def __init__(self, message: str, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retryable = True


class TransportError(NonTerminalError):
    """Timeout, refused or dropped connection."""


class RateLimitError(NonTerminalError):
    """429. Retried, unless the code says the quota is spent (``insufficient_quota``)."""

    def __init__(self, message: str, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retryable = self.code != "insufficient_quota"


class ServerError(NonTerminalError):
    """408, 409 or 5xx from the server, or an answer that is not valid JSON."""


class AttemptsExhaustedError(NonTerminalError):
    """Every attempt failed; ``attempts`` says how many, ``last_error`` the last failure."""

    def __init__(self, attempts: int, last_error: CallError) -> None:
        super().__init__(
            f"gave up after {attempts} attempt(s); last failure: "
            f"{type(last_error).__name__}: {last_error}",
            status=last_error.status, code=last_error.code,
        )
        self.attempts = attempts
        self.last_error = last_error
