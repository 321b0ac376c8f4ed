"""`OpenAIClient`: chat completions and embeddings over the ``openai`` SDK.

Every call takes one path: `prepare` reads configuration once into a `Prepared` record, then
`execute` answers it from replay or the cache, or sends it (rate limiter, retries, the error
boundary), validates the answer, and keeps it. The SDK is imported on first use, one SDK client
is built per configuration and reused, and the SDK's own retries are off.
"""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from ..base import config
from ..base.errors import AuthenticationError, CallError, InvalidRequestError, LLMKitWarning
from ..base.result import Completion
from ..base.secrets import SECRET_KEYS
from . import answers, attempts, budget, limiter, recorder, store
from .prepare import Prepared, narrowed, prepare_chat, prepare_embeddings

__all__ = ["OpenAIClient"]

Messages = Sequence[Mapping[str, Any]]
DEFAULT_BASE_URL = "https://api.openai.com/v1"

_lock = threading.Lock()
_sdk_clients: dict[tuple[Any, ...], Any] = {}


class OpenAIClient:
    """A client for the OpenAI API or any OpenAI-compatible server.

    Keyword arguments are configuration keys (see `llmkit.base.config.SCHEMA`) that this client
    uses in place of the configured ones, e.g. ``OpenAIClient(base_url="http://127.0.0.1:8000/v1")``.
    Everything else is read from configuration when a call is made. The client holds no per-call
    state: one client serves any number of threads.
    """

    api_type = "openai"
    structured_outputs = True  # honours response_format with a strict JSON schema
    max_stop: int | None = 4  # OpenAI's spec: stop is a string or 1-4 strings (None: not known)
    retry_timeouts = True  # an attempt that ran past TIMEOUT is sent again (see RetryPolicy)
    vision = True  # takes image parts in messages (False: refused before sending)
    endpoint_key, secret_key = "base_url", "api_key"  # where requests go, and the key they carry

    def __init__(self, **overrides: Any) -> None:
        where = f"{type(self).__name__}(...)"
        self._overrides = {k.lower(): config.parse_value(k.lower(), v, where)
                           for k, v in overrides.items()}

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in self._overrides.items()
                          if k not in SECRET_KEYS)
        return f"{type(self).__name__}({shown})"

    # -- configuration --------------------------------------------------------------------------

    def settings(self, base: config.Settings | None = None) -> config.Settings:
        """Configuration as it stands now (or ``base``), with this client's overrides on top."""
        resolved = config.resolve() if base is None else base
        return resolved.with_values(self._overrides) if self._overrides else resolved

    def endpoint(self, settings: Mapping[str, Any]) -> str:
        """Where requests go (part of the cache key; never a secret)."""
        return str(settings.get("base_url") or DEFAULT_BASE_URL)

    def credentials_configured(self, settings: Mapping[str, Any] | None = None) -> bool:
        s = settings if settings is not None else self.settings()
        return bool(s.get("api_key")) or bool(s.get("base_url"))

    def priced_as(self, settings: Mapping[str, Any], model: str) -> str:
        """The model whose prices, limits, reasoning rules and encoding apply to ``model`` as this
        client names it: the model itself (Azure maps deployment names)."""
        return model

    def _new_sdk_client(self, s: Mapping[str, Any]) -> Any:
        import openai
        key = s.get("api_key")
        if not key:
            if not s.get("base_url"):
                raise AuthenticationError(
                    "no OpenAI API key: set the OPENAI_API_KEY environment variable, or run on "
                    "this machine without a key: %llm_api local in a notebook, "
                    "llmkit.force_api_type('local') in code")
            key = "not-needed"  # OpenAI-compatible servers usually take any key
        return openai.OpenAI(api_key=key, base_url=s.get("base_url") or None, max_retries=0)

    def _sdk(self, s: config.Settings) -> Any:
        s.check_key_destination(self.endpoint_key, self.secret_key)
        identity = (type(self), self.endpoint(s), s.get("azure_api_version"),
                    s.get("api_key"), s.get("azure_api_key"), s.get(self.secret_key))
        with _lock:
            sdk = _sdk_clients.get(identity)
        if sdk is None:
            sdk = self._new_sdk_client(s)
            with _lock:
                sdk = _sdk_clients.setdefault(identity, sdk)
        return sdk

    def advice(self, error: CallError, p: Prepared) -> str | None:
        """What the user should change, added to the message of ``error`` from a call that failed
        (None: nothing to add). Clients that know their server say more (the local model's
        timeouts, a compatible server's key); never a secret."""
        return None

    # -- chat -----------------------------------------------------------------------------------

    def send_message(self, messages: Messages, model: str | None = None,
                     temperature: float | None = None, max_tokens: int | None = None,
                     top_p: float | None = None, frequency_penalty: float | None = None,
                     presence_penalty: float | None = None, stop: str | list[str] | None = None,
                     timeout: float | None = None, max_attempts: int | None = None,
                     waiting_time: float | None = None,
                     exponential_backoff_factor: float | None = None, n: int | None = None,
                     response_format: Mapping[str, Any] | None = None, seed: int | None = None,
                     **extra: Any) -> dict[str, Any]:
        """Send chat messages; return the assistant's message as a dict (``role``, ``content``).

        ``None`` for any parameter means not given: the configured value applies, and where
        there is none nothing is sent (the server's default applies).
        """
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
        return self.execute(self.prepare(messages, stream=stream, cache=cache, **params), on_delta)

    def prepare(self, messages: Messages, *, stream: bool = False, cache: bool | None = None,
                settings: config.Settings | None = None, **params: Any) -> Prepared:
        """The call as it will be made, configuration read once (``settings``: already read)."""
        return prepare_chat(self, self.settings(settings), messages, params, stream=stream,
                            cache=cache)

    def execute(self, p: Prepared, on_delta: Callable[[str], None] | None = None,
                accept: Callable[[Completion], object] | None = None) -> Completion:
        """Answer a prepared call of any kind (chat, Responses, embeddings): from replay or the
        cache, else from the server.

        ``accept(completion)`` checks an answer before it is returned or cached (a typed answer
        is parsed); what it raises propagates, and nothing is cached. Every outcome, answer or
        error, is recorded in the run history.
        """
        completion: Completion | None = None
        try:
            hit = store.lookup(p)
            if hit is not None:
                completion = Completion(p.view, hit, time.perf_counter() - p.started, True,
                                        p.api_type, p.priced_as)
                if accept is not None:
                    accept(completion)
                if on_delta is not None and completion.text:
                    on_delta(completion.text)
            else:
                completion = self._send(p, on_delta)
                if completion.finish_reason != "length" or completion.message.get("content") or \
                        completion.message.get("tool_calls"):
                    if accept is not None:
                        accept(completion)
                    store.keep(p, completion.response)
                else:
                    limit = (p.chat.get("max_completion_tokens") or p.chat.get("max_tokens")
                             or p.request.get("max_output_tokens"))
                    warnings.warn(
                        f"{p.request['model']!r} stopped at its output limit before writing "
                        f"anything (finish_reason='length', limit {limit}); a reasoning model's "
                        f"hidden reasoning counts against it: pass a larger max_tokens, or none at "
                        f"all. The empty answer is not cached.", LLMKitWarning, stacklevel=3)
        except BaseException as exc:
            recorder.record(p, completion, exc)
            raise
        recorder.record(p, completion)
        return completion

    def _send(self, p: Prepared, on_delta: Callable[[str], None] | None) -> Completion:
        """Ask the server (within the budgets, the rate limits and the retry policy). An
        embeddings call sends only the texts not already kept (`store.cached_parts`)."""
        found = store.cached_parts(p) if p.parts else {}
        sent = narrowed(p, [i for i in range(len(p.parts)) if i not in found]) if found else p
        reserved = budget.reserve(sent)
        completion = None
        try:
            gate = limiter.Gate(sent)
            one = attempts.attempt(self._sdk(p.settings), sent, on_delta)

            def attempt() -> dict[str, Any]:
                gate.acquire()
                try:
                    return one()
                except Exception as exc:
                    gate.failed(exc)
                    raise

            try:
                response = p.policy.run(attempt)
            except CallError as exc:
                _advise(exc, self.advice(exc, p))
                raise
            gate.succeeded(response)
            if found:
                response = answers.merged_embeddings(response, found, len(p.parts))
            completion = Completion(p.view, response, time.perf_counter() - p.started, False,
                                    p.api_type, p.priced_as)
        finally:  # an answer that cannot be priced counts as the worst case held (fails closed)
            paid = None if completion is None else completion.paid
            budget.settle(reserved, reserved.worst if completion is not None and paid is None else paid)
        return completion

    # -- embeddings -----------------------------------------------------------------------------

    def get_embedding(self, text: str | Iterable[str], model: str | None = None,
                      **params: Any) -> list[float] | list[list[float]]:
        """Embedding vector of a text, or a list of vectors for a list of texts (each cached).

        Parameters follow the chat vocabulary: ``dimensions``, ``user``, ``encoding_format``,
        ``extra_body``, ``timeout``, ... (``None``: not given).
        """
        single = isinstance(text, str)
        inputs: list[str] = [text] if isinstance(text, str) else list(text)
        if not inputs or not all(isinstance(t, str) and t for t in inputs):
            raise InvalidRequestError("get_embedding needs a non-empty text or list of non-empty texts")
        cache = params.pop("cache", None)
        prepared = prepare_embeddings(self, self.settings(), inputs, {"model": model, **params},
                                      cache=cache)
        vectors = answers.embedding_vectors(self.execute(prepared).response, len(inputs))
        return vectors[0] if single else vectors


def _advise(error: CallError, advice: str | None) -> None:
    """Add ``advice`` to ``error``'s message (its type, status and attempts stay as they are)."""
    if advice:
        error.args = (f"{error.args[0]}; {advice}", *error.args[1:])
