"""`OpenAIClient`: chat completions and embeddings over the ``openai`` SDK, with caching and retries.

The SDK is imported on first use; one SDK client is built per configuration and reused. The SDK's
own retries are off: llmkit's `RetryPolicy` is the only retry loop. The SDK's exceptions are
translated into llmkit's tree in exactly one place, `_map_openai_error`.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..base import config
from ..base.cache import ResponseCache, cache_key
from ..base.errors import (
    AuthenticationError,
    CallError,
    ConfigError,
    ContextLengthError,
    InvalidRequestError,
    LLMKitError,
    NonTerminalError,
    RateLimitError,
    ServerError,
    TransportError,
)
from ..base.result import Completion
from . import limiter
from .retry import RetryPolicy, retry_after_seconds
from .streaming import collect_stream

__all__ = ["OpenAIClient", "default_cache_dir", "open_cache"]

Messages = Sequence[Mapping[str, Any]]

# Chat parameters passed through to the API as they are (anything else fails loudly).
PASSTHROUGH = frozenset({
    "tools", "tool_choice", "parallel_tool_calls", "logprobs", "top_logprobs", "logit_bias",
    "user", "max_completion_tokens", "reasoning_effort", "verbosity", "metadata", "store",
    "modalities", "audio", "prediction", "service_tier", "extra_body", "extra_headers",
})
SAMPLING = ("temperature", "top_p", "frequency_penalty", "presence_penalty")
KNOWN_PARAMS = PASSTHROUGH | {"model", "max_tokens", "stop", "n", "response_format", "seed", *SAMPLING}
REASONING_PREFIXES = ("o1", "o3", "o4", "gpt-5")
DEFAULT_BASE_URL = "https://api.openai.com/v1"

_lock = threading.Lock()
_sdk_clients: dict[tuple[Any, ...], Any] = {}
_caches: dict[Path, ResponseCache] = {}


def default_cache_dir() -> Path:
    import os
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "llmkit"


def open_cache(directory: str | Path | None = None) -> ResponseCache:
    """The process-wide `ResponseCache` for a folder (the configured one by default)."""
    folder = Path(directory or config.resolve().cache_dir or default_cache_dir()).expanduser()
    with _lock:
        if folder not in _caches:
            _caches[folder] = ResponseCache(folder)
        return _caches[folder]


class OpenAIClient:
    """A client for the OpenAI API or any OpenAI-compatible server.

    Keyword arguments are configuration keys (see `llmkit.config.SCHEMA`) that this client uses
    in place of the configured ones, e.g. ``OpenAIClient(base_url="http://127.0.0.1:8000/v1")``.
    Everything else is resolved from configuration when a call is made.
    """

    api_type = "openai"

    def __init__(self, **overrides: Any) -> None:
        where = f"{type(self).__name__}(...)"
        self._overrides = {k.lower(): config.parse_value(k.lower(), v, where)
                           for k, v in overrides.items()}

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in self._overrides.items()
                          if k not in config.SECRET_KEYS)
        return f"{type(self).__name__}({shown})"

    # -- configuration --------------------------------------------------------------------------

    def settings(self) -> config.Settings:
        """Configuration as it stands now, with this client's overrides on top."""
        resolved = dict(config.resolve())
        resolved.update(self._overrides)
        return config.Settings(resolved)

    def endpoint(self, settings: Mapping[str, Any]) -> str:
        """Where requests go (part of the cache key; never a secret)."""
        return str(settings.get("base_url") or DEFAULT_BASE_URL)

    def credentials_configured(self, settings: Mapping[str, Any] | None = None) -> bool:
        s = settings if settings is not None else self.settings()
        return bool(s.get("api_key")) or bool(s.get("base_url"))

    def _new_sdk_client(self, s: Mapping[str, Any]) -> Any:
        import openai
        key = s.get("api_key")
        if not key:
            if not s.get("base_url"):
                raise AuthenticationError(
                    "no OpenAI API key: set the OPENAI_API_KEY environment variable, or point "
                    "llmkit at another server (OPENAI_BASE_URL, or llmkit.force_api_type('local'))")
            key = "not-needed"  # OpenAI-compatible servers usually take any key
        return openai.OpenAI(api_key=key, base_url=s.get("base_url") or None, max_retries=0)

    def _sdk(self, s: Mapping[str, Any]) -> Any:
        identity = (type(self), self.endpoint(s), s.get("azure_api_version"),
                    s.get("api_key"), s.get("azure_api_key"))
        with _lock:
            sdk = _sdk_clients.get(identity)
        if sdk is None:
            sdk = self._new_sdk_client(s)
            with _lock:
                sdk = _sdk_clients.setdefault(identity, sdk)
        return sdk

    def _policy(self, s: Mapping[str, Any], overrides: Mapping[str, Any]) -> RetryPolicy:
        def pick(key: str) -> Any:
            value = overrides.get(key)
            return config.parse_value(key, value, f"argument {key}") if value is not None else s[key]
        return RetryPolicy(max_attempts=pick("max_attempts"), waiting_time=pick("waiting_time"),
                           exponential_backoff_factor=pick("exponential_backoff_factor"),
                           max_waiting_time=s["max_waiting_time"])

    # -- chat -----------------------------------------------------------------------------------

    def send_message(self, messages: Messages, model: str | None = None,
                     temperature: float | None = None, max_tokens: int | None = None,
                     top_p: float | None = None, frequency_penalty: float | None = None,
                     presence_penalty: float | None = None, stop: str | list[str] | None = None,
                     timeout: float | None = None, max_attempts: int | None = None,
                     waiting_time: float | None = None,
                     exponential_backoff_factor: float | None = None, n: int = 1,
                     response_format: Mapping[str, Any] | None = None, seed: int | None = None,
                     **extra: Any) -> dict[str, Any]:
        """Send chat messages; return the assistant's message as a dict (``role``, ``content``)."""
        return self.complete(
            messages, model=model, temperature=temperature, max_tokens=max_tokens, top_p=top_p,
            frequency_penalty=frequency_penalty, presence_penalty=presence_penalty, stop=stop,
            timeout=timeout, max_attempts=max_attempts, waiting_time=waiting_time,
            exponential_backoff_factor=exponential_backoff_factor, n=n,
            response_format=response_format, seed=seed, **extra).message

    def complete(self, messages: Messages, *, stream: bool = False,
                 on_delta: Callable[[str], None] | None = None, cache: bool | None = None,
                 **params: Any) -> Completion:
        """Like `send_message`, returning the whole `Completion` (usage, latency, cache hit).

        ``stream=True`` calls ``on_delta(text)`` as pieces of the answer arrive; the Completion is
        the same as without streaming. ``cache=False`` neither reads nor writes the cache.
        """
        started = time.perf_counter()
        s = self.settings()
        call_only = {k: params.pop(k, None)
                     for k in ("timeout", "max_attempts", "waiting_time", "exponential_backoff_factor")}
        request = self.build_request(messages, s, params)
        self._check_context(request)
        use_cache = s["cache_api_calls"] if cache is None else cache
        store = open_cache(s["cache_dir"]) if use_cache else None
        endpoint = self.endpoint(s)
        key = cache_key({"kind": "chat", "api_type": self.api_type, "endpoint": endpoint, **request})
        if (hit := self._stored(s, store, key, request)) is not None:
            if on_delta is not None:
                on_delta(Completion(request, hit, 0.0, True).text)
            return Completion(request, hit, time.perf_counter() - started, True, self.api_type)

        timeout = call_only["timeout"] or s["timeout"]
        sdk = self._sdk(s)
        secret = s.get("api_key") or s.get("azure_api_key")
        # Rate limits (LLMCall.map): each attempt waits its turn in the endpoint's process-wide
        # limiter (RPM/TPM, paused by a 429's Retry-After). Cache hits never get here.
        gate = limiter.Gate(self.api_type, endpoint, s, request)

        def attempt() -> dict[str, Any]:
            emitted: list[str] = []
            gate.acquire()
            try:
                if stream:
                    return collect_stream(sdk.chat.completions.create(
                        **request, stream=True, stream_options={"include_usage": True},
                        timeout=timeout), on_delta, emitted)
                answer = sdk.chat.completions.create(**request, timeout=timeout)
                return _checked(answer.model_dump(mode="json", exclude_unset=True))
            except Exception as exc:
                mapped = exc if isinstance(exc, LLMKitError) else _map_openai_error(exc, secret)
                if isinstance(mapped, CallError):
                    gate.failed(mapped)
                if emitted and isinstance(mapped, NonTerminalError):
                    mapped.retryable = False  # part of the answer is already on screen
                if mapped is exc:
                    raise
                raise mapped from exc

        response = self._policy(s, call_only).run(attempt)
        gate.succeeded(response)
        self._keep(s, store, key, request, response)
        return Completion(request, response, time.perf_counter() - started, False, self.api_type)

    def _stored(self, s: Mapping[str, Any], store: ResponseCache | None, key: str,
                request: Mapping[str, Any]) -> dict[str, Any] | None:
        """A replayed or cached answer (None: ask the model). In replay mode a miss raises."""
        from .replay import append_recording, open_recording
        if s["replay"]:
            recording = open_recording(s["replay"])
            answer = recording.get(key)
            if answer is None:
                raise recording.miss(request, self.api_type)
        else:
            answer = store.get(key) if store is not None else None
        if answer is not None and s["record"]:
            append_recording(s["record"], key, request, answer)
        return answer

    def _keep(self, s: Mapping[str, Any], store: ResponseCache | None, key: str,
              request: Mapping[str, Any], answer: dict[str, Any]) -> None:
        """Cache a complete answer, and add it to the recording when RECORD is set."""
        from .replay import append_recording
        if store is not None:
            store.set(key, answer)
        if s["record"]:
            append_recording(s["record"], key, request, answer)

    def build_request(self, messages: Messages, s: Mapping[str, Any],
                      params: Mapping[str, Any]) -> dict[str, Any]:
        """The JSON body sent to the API: call arguments over configured defaults."""
        params = {k: v for k, v in params.items() if v is not None}
        unknown = set(params) - KNOWN_PARAMS
        if unknown:
            raise ConfigError(
                f"unknown chat parameter(s) {', '.join(sorted(unknown))}; known: "
                f"{', '.join(sorted(KNOWN_PARAMS))}; pass server-specific options as extra_body={{...}}")
        for key in ("max_tokens", *SAMPLING):
            if key in params:
                params[key] = config.parse_value(key, params[key], f"argument {key}")
        model = params.pop("model", None) or s["model"]
        if not model:
            raise ConfigError("no model: pass model=... or set MODEL in config.ini")
        request: dict[str, Any] = {"model": model, "messages": _checked_messages(messages)}
        reasoning = str(model).startswith(REASONING_PREFIXES)
        for key in SAMPLING:
            if key in params or not reasoning:
                request[key] = params.pop(key, s[key])
        max_tokens = params.pop("max_tokens", s["max_tokens"])
        request["max_completion_tokens" if reasoning else "max_tokens"] = max_tokens
        if params.get("n") == 1:
            params.pop("n")
        request.update(params)
        return request

    def _check_context(self, request: Mapping[str, Any]) -> None:
        """Raise `ContextLengthError` before sending a prompt that cannot fit the model."""
        from ..base import tokens
        model = str(request["model"])
        window = tokens.context_window(model)
        if not window:
            return
        limit = request.get("max_tokens") or request.get("max_completion_tokens") or 0
        # Every token covers at least one byte, so a prompt whose bytes fit needs no tokenizer.
        upper = 3 + sum(4 + len(json.dumps(m, ensure_ascii=False).encode()) for m in request["messages"])
        if upper + limit > window:
            tokens.check_context(request["messages"], model, limit)

    # -- embeddings -----------------------------------------------------------------------------

    def get_embedding(self, text: str | Iterable[str], model: str | None = None,
                      **call: Any) -> list[float] | list[list[float]]:
        """Embedding vector of a text, or a list of vectors for a list of texts (each cached)."""
        single = isinstance(text, str)
        inputs = [text] if single else list(text)  # type: ignore[list-item]
        if not inputs or not all(isinstance(t, str) and t for t in inputs):
            raise InvalidRequestError("get_embedding needs a non-empty text or list of non-empty texts")
        s = self.settings()
        model = model or s["embedding_model"]
        store = open_cache(s["cache_dir"]) if s["cache_api_calls"] else None
        asked = [{"model": model, "input": t} for t in inputs]
        keys = [cache_key({"kind": "embedding", "api_type": self.api_type,
                           "endpoint": self.endpoint(s), **a}) for a in asked]
        vectors: list[Any] = [self._stored(s, store, k, a) for k, a in zip(keys, asked, strict=True)]
        missing = [i for i, v in enumerate(vectors) if v is None]
        if missing:
            sdk, secret = self._sdk(s), s.get("api_key") or s.get("azure_api_key")
            timeout = call.get("timeout") or s["timeout"]

            def attempt() -> list[list[float]]:
                try:
                    answer = sdk.embeddings.create(model=model, input=[inputs[i] for i in missing],
                                                   timeout=timeout)
                except Exception as exc:
                    raise _map_openai_error(exc, secret) from exc
                return [d.embedding for d in sorted(answer.data, key=lambda d: d.index)]

            for i, vector in zip(missing, self._policy(s, call).run(attempt), strict=True):
                vectors[i] = {"embedding": vector}
                self._keep(s, store, keys[i], asked[i], vectors[i])
        result = [v["embedding"] for v in vectors]
        return result[0] if single else result


def _checked_messages(messages: Messages) -> list[dict[str, Any]]:
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence) or not messages:
        raise InvalidRequestError(
            "messages must be a non-empty list of dicts like {'role': 'user', 'content': '...'}")
    out = []
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping) or "role" not in message:
            raise InvalidRequestError(
                f"messages[{i}] must be a dict with a 'role' and a 'content', got {message!r:.80}")
        out.append(dict(message))
    return out


def _checked(response: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(response, dict) or not response.get("choices"):
        raise ServerError("the server's answer has no choices (malformed answer)")
    return response


def _map_openai_error(exc: BaseException, secret: str | None = None) -> CallError:
    """Translate an ``openai`` exception (or a malformed answer) into llmkit's tree."""
    import openai

    def scrub(text: str) -> str:
        return text.replace(secret, "<hidden>") if secret else text

    if isinstance(exc, openai.APITimeoutError):
        return TransportError(f"the request timed out ({type(exc).__name__})")
    if isinstance(exc, openai.APIConnectionError):
        return TransportError(scrub(f"connection failed: {exc}"))
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        body = exc.body if isinstance(exc.body, Mapping) else {}
        body = body.get("error", body) if isinstance(body.get("error", body), Mapping) else body
        code = body.get("code") or body.get("type")
        message = scrub(f"HTTP {status}: {body.get('message') or exc.message}")
        after = retry_after_seconds(exc.response.headers)
        kw: dict[str, Any] = {"status": status, "code": code if isinstance(code, str) else None,
                              "retry_after": after}
        if status == 429:
            return RateLimitError(message, **kw)
        if status in (408, 409) or status >= 500:
            return ServerError(message, **kw)
        if status in (401, 403):
            return AuthenticationError(message, **kw)
        if code == "context_length_exceeded" or body.get("type") == "exceed_context_size_error":
            return ContextLengthError(message, **kw)
        return InvalidRequestError(message, **kw)
    if isinstance(exc, (openai.APIResponseValidationError, ValueError)):
        return ServerError(f"the server's answer is malformed: {scrub(str(exc))}")
    if isinstance(exc, openai.APIError):
        return ServerError(scrub(f"API error: {exc}"))
    if isinstance(exc, openai.OpenAIError):
        return CallError(scrub(str(exc)))
    raise exc


def _close_caches() -> None:
    """Close every open cache (tests use this between cache folders)."""
    with _lock:
        for store in _caches.values():
            store.close()
        _caches.clear()
