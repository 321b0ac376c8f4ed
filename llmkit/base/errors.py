"""The one exception tree of llmkit.

    LLMKitError
    ├── ConfigError                  bad value in config.ini / environment / a call's arguments
    ├── TemplateError                template not found, or a syntax error in it
    │   └── MissingVariableError     a variable the template needs was not given
    ├── CacheError                   cache folder, export or import problem (replay misses too)
    │   └── ReplayMissError          read-only replay: the call is not in the recording
    ├── HistoryError                 the run history file cannot be opened or read (broken, newer)
    ├── OutputTypeError              an answer that does not validate as the output_type asked for
    ├── ToolLoopError                a tool-calling loop that did not end within max_steps
    ├── BudgetExceededError          refused before sending: it could pass BUDGET_USD or DAILY_BUDGET_USD
    └── CallError                    a request to a model API failed
        ├── InvalidRequestError      the request itself is wrong: do not retry (400, 404, 422)
        │   ├── AuthenticationError  401 / 403, or no credentials configured
        │   └── ContextLengthError   the prompt does not fit the model's input or output limit
        └── NonTerminalError         a failure that may pass: retried by llmkit
            ├── TransportError       timeout or connection failure
            ├── RateLimitError       429 (``insufficient_quota`` is not retried)
            └── ServerError          408, 409, 5xx, or an answer that is not a valid answer

When retries run out, the error raised is the last failure itself (a `RateLimitError` stays a
`RateLimitError`), with ``attempts`` saying how many were made. Whether a failure is retried is
decided in one place, `CallError.retryable`. `InvalidRequestError` and `NonTerminalError` keep
TinyTroupe's names. The ``openai`` package's exceptions are translated in exactly one place,
`llmkit.clients.boundary`.

Warnings: `LLMKitWarning` (a `UserWarning`) is the base of every warning llmkit gives;
`HistoryWarning` says the run history could not be written (the call itself went through);
`CacheWarning` says the cache folder or an entry in it could not be used (llmkit carried on without it).
"""

from __future__ import annotations

__all__ = [
    "AuthenticationError",
    "BudgetExceededError",
    "CacheError",
    "CacheWarning",
    "CallError",
    "ConfigError",
    "ContextLengthError",
    "HistoryError",
    "HistoryWarning",
    "InvalidRequestError",
    "LLMKitError",
    "LLMKitWarning",
    "MissingVariableError",
    "NonTerminalError",
    "OutputTypeError",
    "RateLimitError",
    "ReplayMissError",
    "ServerError",
    "TemplateError",
    "ToolLoopError",
    "TransportError",
]


class LLMKitError(Exception):
    """Base class of every error llmkit raises."""


class LLMKitWarning(UserWarning):
    """Base class of every warning llmkit gives (e.g. an answer cut off with nothing in it)."""


class ConfigError(LLMKitError, ValueError):
    """A configuration value or a call argument is missing or malformed."""


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


class OutputTypeError(LLMKitError, ValueError):
    """The answer does not validate as the requested ``output_type`` (or the type cannot be turned
    into a schema). ``text`` is the raw answer, ``detail`` what failed (the field, the problem)."""

    def __init__(self, message: str, *, text: str | None = None, detail: str | None = None) -> None:
        super().__init__(message)
        self.text = text
        self.detail = detail


class ToolLoopError(LLMKitError):
    """A tool-calling loop reached ``max_steps`` without a final answer; ``steps`` holds what ran."""

    def __init__(self, message: str, *, steps: list | None = None) -> None:
        super().__init__(message)
        self.steps = steps or []


class BudgetExceededError(LLMKitError):
    """An uncached call refused before anything was sent: its estimated cost (prompt tokens plus
    the output limit, at the model's prices) could take spend past ``BUDGET_USD`` (this process)
    or ``DAILY_BUDGET_USD`` (today, every process, from the run history)."""


class HistoryError(LLMKitError):
    """The run history file cannot be opened or read (not a database, written by a newer llmkit,
    locked past its timeout). Reading raises it; recording never does (see `HistoryWarning`)."""


class HistoryWarning(LLMKitWarning):
    """The run history could not be written (locked, read-only or broken); calls go on."""


class CacheWarning(LLMKitWarning):
    """The cache folder or an entry in it could not be used; llmkit carried on without it."""


class CallError(LLMKitError):
    """A request to a model API failed.

    ``status`` is the HTTP status (None for transport failures), ``code`` the API's error code,
    ``retry_after`` the wait the server asked for, ``attempts`` how many attempts were made and
    ``partial`` whether part of a streamed answer had already been passed to ``on_delta``.
    """

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.retry_after = retry_after
        self.attempts = 1
        self.partial = False

    @property
    def retryable(self) -> bool:
        """Whether sending the same request again may succeed: the one place this is decided.

        Transport failures, 408/409/5xx, malformed answers and 429s are retried, except a 429
        saying the quota is spent and a stream that already showed part of its answer (a retry
        would show it twice).
        """
        return (isinstance(self, NonTerminalError) and not self.partial
                and self.code != "insufficient_quota")

    def __str__(self) -> str:
        text = super().__str__()
        return text if self.attempts <= 1 else f"{text} (gave up after {self.attempts} attempts)"


class InvalidRequestError(CallError):
    """The request is wrong and will fail again unchanged (400, 404, 422)."""


class AuthenticationError(InvalidRequestError):
    """Credentials are missing or rejected (401, 403)."""


class ContextLengthError(InvalidRequestError):
    """The prompt does not fit the model's input limit, or the output limit asked for is too big."""


class NonTerminalError(CallError):
    """A failure that may pass if the request is sent again (`CallError.retryable` says whether)."""


class TransportError(NonTerminalError):
    """Timeout, refused or dropped connection."""


class RateLimitError(NonTerminalError):
    """429. Retried, unless the code says the quota is spent (``insufficient_quota``)."""


class ServerError(NonTerminalError):
    """408, 409 or 5xx from the server, or an answer that is not a valid answer."""
