"""`Prepared`: everything about one call, decided once, before anything is looked up or sent.

Configuration is read once per call, here: the request body, where it goes, its cache key, its
timeout and retry policy, whether the cache is used, replay and recording, rate limits. Every
later step (cache, replay, limiter, retries, display, history) reads this immutable record and
nothing else, so what a call used is written down in one place.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..base import tokens
from ..base.cache_entries import cache_key
from ..base.config import Settings
from ..base.errors import ConfigError, InvalidRequestError
from ..base.models import model_info
from ..base.secrets import public_request, request_secrets
from . import params as vocabulary
from . import responses
from .retry import RetryPolicy

__all__ = ["SAMPLING", "Prepared", "check_no_images", "check_stop", "default_cache_dir", "history_path",
           "narrowed", "prepare_chat", "prepare_embeddings"]

SAMPLING = ("temperature", "top_p", "frequency_penalty", "presence_penalty")


@dataclass(frozen=True)
class Prepared:
    """One call as it will be made. ``request`` is the JSON body as sent; ``public`` the same with
    credential-like ``extra_headers`` / ``extra_body`` values hidden
    (`llmkit.base.secrets.public_request`), which is what is hashed into the cache ``key``,
    recorded and shown (``key`` is None when no cache, replay or recording
    needs one)."""

    kind: str  # "chat", "responses" or "embedding": which attempt the executor makes
    api_type: str
    endpoint: str
    request: dict[str, Any]
    public: dict[str, Any]
    key: str | None
    use_cache: bool
    cache_dir: str
    replay: str | None
    record: str | None
    stream: bool
    timeout: float
    policy: RetryPolicy
    rpm: float | None
    tpm: float | None
    history: str | None  # the run history's file (None: HISTORY is off)
    settings: Settings = field(repr=False)  # for the SDK client; its repr hides credentials
    started: float = field(default_factory=time.perf_counter, repr=False)
    # The model whose table entry (price, limits, reasoning rules, encoding) applies: the request's
    # model, or on Azure the model a deployment serves (AZURE_DEPLOYMENTS; see client.priced_as).
    priced_as: str = ""
    # An embeddings call: one record per text, each cached on its own (their keys); empty otherwise.
    parts: tuple[Prepared, ...] = ()
    # A Responses call: the chat-vocabulary request its body was translated from (its messages and
    # tools are what token estimates, transcripts and displays read). None: ``request`` itself.
    source: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def chat(self) -> dict[str, Any]:
        """The request in the chat vocabulary (``messages``, ``tools``, ``max_tokens``...)."""
        return self.request if self.source is None else self.source

    @property
    def view(self) -> dict[str, Any]:
        """What a `Completion` holds as its request: the public body, with the conversation as
        chat ``messages`` for a Responses call (transcripts and displays read those)."""
        if self.source is None:
            return self.public
        return {**self.public, "messages": self.source["messages"]}

    @functools.cached_property
    def secrets(self) -> tuple[str, ...]:
        """Every credential this call carries, longest first, as a server may quote it back (to
        scrub from errors and the history): see `llmkit.base.secrets.request_secrets`."""
        return request_secrets(self.request, self.endpoint, self.settings.secrets())


def _common(client: Any, s: Settings, kind: str, request: dict[str, Any],
            options: Mapping[str, Any], *, stream: bool, cache: bool | None,
            priced_as: str, source: dict[str, Any] | None = None) -> Prepared:
    if cache is not None and not isinstance(cache, bool):
        raise ConfigError(f"cache={cache!r} is not valid: expected True, False or None (configured)")
    use_cache = bool(s["cache_api_calls"]) if cache is None else cache
    endpoint = client.endpoint(s)
    needs_key = use_cache or bool(s["replay"]) or bool(s["record"])
    public = public_request(request, s.secrets)
    key = cache_key({"kind": kind, "api_type": client.api_type, "endpoint": endpoint,
                     **public}) if needs_key else None
    policy = RetryPolicy(
        max_attempts=options.get("max_attempts") or s["max_attempts"],
        waiting_time=_given(options.get("waiting_time"), s["waiting_time"]),
        exponential_backoff_factor=options.get("exponential_backoff_factor")
        or s["exponential_backoff_factor"],
        max_waiting_time=s["max_waiting_time"], max_retry_after=s["max_retry_after"],
        retry_timeouts=getattr(client, "retry_timeouts", True))
    cache_dir = s["cache_dir"] or _default_cache_dir(os.environ.get("XDG_CACHE_HOME"),
                                                     os.environ.get("HOME"))
    return Prepared(kind, client.api_type, endpoint, request, public, key, use_cache, cache_dir,
                    s["replay"] or None, s["record"] or None, bool(stream),
                    options.get("timeout") or s["timeout"], policy, s["rpm"], s["tpm"],
                    _history_path(s["history"], s["history_path"], cache_dir), s,
                    priced_as=priced_as, source=source)


def history_path(s: Settings) -> str | None:
    """The run history's file: HISTORY_PATH, else ``history.sqlite3`` in the cache folder (None
    when HISTORY is off)."""
    cache_dir = s["cache_dir"] or _default_cache_dir(os.environ.get("XDG_CACHE_HOME"),
                                                     os.environ.get("HOME"))
    return _history_path(s["history"], s["history_path"], cache_dir)


@functools.lru_cache(maxsize=8)
def _history_path(on: bool, path: str | None, cache_dir: str) -> str | None:
    if not on:
        return None
    return str(Path(path).expanduser()) if path else str(Path(cache_dir) / "history.sqlite3")


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/llmkit``, else ``~/.cache/llmkit``."""
    return Path(_default_cache_dir(os.environ.get("XDG_CACHE_HOME"), os.environ.get("HOME")))


@functools.lru_cache(maxsize=8)
def _default_cache_dir(xdg: str | None, home: str | None) -> str:
    """Remembered per environment: every call with no CACHE_DIR asks (Path.home() costs ~5 µs)."""
    return str(Path(xdg or Path.home() / ".cache") / "llmkit")


def _given(value: Any, default: Any) -> Any:
    return default if value is None else value


def prepare_chat(client: Any, s: Settings, messages: Any, params: Mapping[str, Any], *,
                 stream: bool = False, cache: bool | None = None) -> Prepared:
    """Check the arguments and build the chat request, with configured values for the rest."""
    if not isinstance(stream, bool):
        raise ConfigError(f"stream={stream!r} is not valid: expected True or False")
    api, options = vocabulary.check("chat", params, vocabulary.CHAT)
    given = dict(api)
    model = api.pop("model", None) or s["model"]
    if not model:
        raise ConfigError("no model: pass model=... or set MODEL in config.ini")
    priced_as = client.priced_as(s, model)  # a deployment's model on Azure: its rules apply
    info = model_info(priced_as)
    request: dict[str, Any] = {"model": model, "messages": checked_messages(messages)}
    if not getattr(client, "vision", True):
        check_no_images(request["messages"], client.api_type, model)
    for key in SAMPLING:  # configured sampling values are not sent to reasoning models
        value = api.pop(key, None)
        if value is None and not info.reasoning:
            value = s[key]
        if value is not None:
            request[key] = float(value)  # 0 and 0.0 are one request (and one cache key)
    if "max_tokens" in api and "max_completion_tokens" in api:
        raise ConfigError("give max_tokens or max_completion_tokens, not both")
    limit = api.pop("max_tokens", None)
    if limit is None and "max_completion_tokens" not in api:
        # The package default would starve a reasoning model (its reasoning counts against it).
        if not (info.reasoning and "max_tokens" in s.defaults):
            limit = s["max_tokens"]
    if limit is not None:
        request["max_completion_tokens" if info.reasoning else "max_tokens"] = limit
    if api.get("n") == 1:
        del api["n"]
    check_stop(api.get("stop"), getattr(client, "max_stop", None), client.api_type)
    request.update(api)
    check_limits(request, priced_as)
    if responses.wanted(options.get("responses_api") or s["responses_api"] or "auto",
                        client.api_type, info, given):
        body = responses.translate(request, given, reasoning=info.reasoning)
        return _common(client, s, "responses", body, options, stream=stream, cache=cache,
                       priced_as=priced_as, source=request)
    if any("reasoning_items" in m for m in request["messages"]):  # Responses' own: chat refuses it
        request["messages"] = [{k: v for k, v in m.items() if k != "reasoning_items"}
                               for m in request["messages"]]
    if "reasoning_summary" in request:
        raise ConfigError("reasoning_summary is a parameter of the Responses API, which this call "
                          "does not use (responses_api='never', or a compatible or local server): "
                          "leave it out, or pass responses_api='always'")
    return _common(client, s, "chat", request, options, stream=stream, cache=cache,
                   priced_as=priced_as)


def prepare_embeddings(client: Any, s: Settings, texts: Sequence[str], params: Mapping[str, Any],
                       *, cache: bool | None = None) -> Prepared:
    """One `Prepared` for the texts, sent together, with one part per text (each is cached on its
    own: a text embedded before is not sent again)."""
    api, options = vocabulary.check("embedding", params, vocabulary.EMBEDDING)
    model = api.pop("model", None) or s["embedding_model"]
    if not model:
        raise ConfigError("no embedding model: pass model=... or set EMBEDDING_MODEL in config.ini")
    for i, text in enumerate(texts):
        check_text(text, f"get_embedding text {i}")
    priced_as = client.priced_as(s, model)
    parts = tuple(_common(client, s, "embedding", {"model": model, "input": text, **api}, options,
                          stream=False, cache=cache, priced_as=priced_as) for text in texts)
    request = {"model": model, "input": list(texts), **api}
    return replace(parts[0], request=request, public=public_request(request, s.secrets), key=None,
                   parts=parts)


def narrowed(p: Prepared, indices: Sequence[int]) -> Prepared:
    """An embeddings call limited to the texts at ``indices`` (those not found in the cache)."""
    texts = [p.request["input"][i] for i in indices]
    return replace(p, request={**p.request, "input": texts}, public={**p.public, "input": texts},
                   parts=tuple(p.parts[i] for i in indices))


def checked_messages(messages: Any) -> list[dict[str, Any]]:
    """The messages as a new list of dicts, each with a role: a clear error otherwise."""
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence) or not messages:
        raise InvalidRequestError(
            "messages must be a non-empty list of dicts like {'role': 'user', 'content': '...'}")
    out = []
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping) or not isinstance(message.get("role"), str):
            raise InvalidRequestError(
                f"messages[{i}] must be a dict with a 'role' and a 'content', got {message!r:.80}")
        content = message.get("content")
        if not (content is None or isinstance(content, str) or (
                isinstance(content, list) and all(isinstance(p, Mapping) for p in content))):
            raise InvalidRequestError(
                f"messages[{i}]['content'] must be text, a list of content parts (dicts) or None, "
                f"got a {type(content).__name__}")
        for name, value in message.items():
            check_text(value, f"messages[{i}][{name!r}]")
        out.append(dict(message))
    return out


def check_text(value: Any, where: str) -> None:
    """Raise `InvalidRequestError` if ``value`` (or text inside it) cannot be sent as UTF-8: a lone
    surrogate such as ``"\ud800"``, from a bad decode or a sliced emoji."""
    if isinstance(value, str):
        if value.isascii():
            return
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidRequestError(
                f"{where} holds a lone surrogate ({value[exc.start]!r} at position {exc.start}), "
                f"which cannot be sent as UTF-8; remove it, or clean the text with "
                f"text.encode('utf-8', 'replace').decode()") from None
    elif isinstance(value, Mapping):
        for key, item in value.items():
            check_text(item, f"{where}[{key!r}]")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            check_text(item, f"{where}[{index}]")


def check_no_images(messages: Sequence[Mapping[str, Any]], api_type: str, model: str) -> None:
    """Raise `ConfigError` for an image part sent to a model without vision (llama.cpp without a
    vision projector answers it with HTTP 500, which would be retried in vain)."""
    for i, message in enumerate(messages):
        content = message.get("content")
        if isinstance(content, list) and any(part.get("type") in ("image_url", "input_image")
                                             for part in content):
            raise ConfigError(
                f"messages[{i}] holds an image, but the {api_type} api type's model {model!r} cannot "
                f"see images, so nothing was sent. Describe the image in words, or send it to a "
                f"vision model: %llm_api openai (in code, llmkit.force_api_type('openai')) with a "
                f"vision model such as gpt-4o-mini")


def check_stop(stop: Any, most: int | None, api_type: str) -> None:
    """Raise `ConfigError` for a list of ``stop`` sequences the API refuses: OpenAI's spec takes a
    string or 1 to ``most`` (4) strings. ``most`` is None for servers whose limit is not known."""
    if most is None or not isinstance(stop, (list, tuple)) or 1 <= len(stop) <= most:
        return
    if not stop:
        raise ConfigError("chat parameter stop=[] is not valid: give a string or 1 to "
                          f"{most} strings, or None for no stop sequence")
    raise ConfigError(f"chat parameter stop has {len(stop)} sequences; the {api_type} api type takes "
                      f"a string or 1 to {most} strings (the OpenAI API's limit): keep the {most} "
                      f"that matter most")


def check_limits(request: Mapping[str, Any], model: str | None = None) -> None:
    """Raise `ContextLengthError` before sending what the model cannot take: a prompt over its
    input limit, or an output limit over its output limit (`llmkit.base.tokens.check_context`).
    ``model``: the model whose limits apply (`Prepared.priced_as`), else the request's."""
    asked = request.get("max_tokens") or request.get("max_completion_tokens")
    tokens.check_context(request["messages"], model or str(request["model"]), asked,
                         tools=request.get("tools"))
