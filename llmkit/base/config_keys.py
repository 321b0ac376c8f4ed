"""Every configuration key: the parser that checks its value, its well-known environment
variables, and which keys name a destination (a file, folder or host).

`llmkit.base.config` layers the values and resolves them; this module only says what a valid
value is, so that a new key is one line here.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

from .errors import ConfigError
from .secrets import HIDDEN, SECRET_KEYS

__all__ = ["DESTINATION_KEYS", "ENV_VARS", "HOST_KEYS", "SCHEMA", "parse_value"]


def _number(lo: float, hi: float, kind: type = float) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        value = kind(text)
        if not (lo <= value <= hi) or (isinstance(value, float) and math.isnan(value)):
            raise ValueError
        return value
    parse.expected = f"{'an integer' if kind is int else 'a number'} from {lo:g} to {hi:g}"  # type: ignore[attr-defined]
    return parse


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError


_bool.expected = "true or false"  # type: ignore[attr-defined]


def _text(text: str) -> str | None:
    return text.strip() or None


_text.expected = "text"  # type: ignore[attr-defined]

def _optional(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    def optional(text: str) -> Any:
        return parse(text) if text.strip() else None
    optional.expected = parse.expected + " (or empty)"  # type: ignore[attr-defined]
    return optional


_DEPLOYMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def _deployments(text: str) -> dict[str, str]:
    """``prod-chat:gpt-4o, think:gpt-5`` → ``{"prod-chat": "gpt-4o", "think": "gpt-5"}``, names in
    lower case (Azure's are case-insensitive). A dict given in code arrives as its repr: its
    braces and quotes are dropped."""
    pairs: dict[str, str] = {}
    for item in text.strip().strip("{}").split(","):
        if not item.strip():
            continue
        name, colon, model = item.partition(":")
        name, model = name.strip().strip("'\""), model.strip().strip("'\"")
        if not colon or not _DEPLOYMENT.fullmatch(name) or not model or any(c.isspace() for c in model):
            raise ValueError
        pairs[name.lower()] = model
    if not pairs:
        raise ValueError
    return pairs


_deployments.expected = ("deployment:model pairs separated by commas, "  # type: ignore[attr-defined]
                         "e.g. prod-chat:gpt-4o, think:gpt-5")

def _responses_api(text: str) -> str:
    lowered = text.strip().lower() or "auto"
    if lowered not in ("auto", "always", "never"):
        raise ValueError
    return lowered


_responses_api.expected = "auto, always or never"  # type: ignore[attr-defined]

SCHEMA: dict[str, Callable[[str], Any]] = {
    "api_type": _text,
    "model": _text,
    "max_tokens": _optional(_number(1, 10_000_000, int)),
    "temperature": _optional(_number(0, 2)),
    "top_p": _optional(_number(0, 1)),
    "frequency_penalty": _optional(_number(-2, 2)),
    "presence_penalty": _optional(_number(-2, 2)),
    "timeout": _number(0.001, 86_400),
    "max_attempts": _number(1, 100, int),
    "waiting_time": _number(0, 3600),
    "exponential_backoff_factor": _number(1, 100),
    "max_waiting_time": _number(0, 86_400),
    "max_retry_after": _number(0, 86_400),
    "embedding_model": _text,
    "responses_api": _responses_api,
    "cache_api_calls": _bool,
    "cache_dir": _text,
    "base_url": _text,
    "api_key": _text,
    "compatible_api_key": _text,
    "azure_endpoint": _text,
    "azure_api_key": _text,
    "azure_api_version": _text,
    "azure_deployments": _optional(_deployments),
    "template_path": _text,
    "max_concurrency": _number(1, 1000, int),
    "rpm": _optional(_number(0.001, 1e9)),
    "tpm": _optional(_number(1, 1e12)),
    "local_model": _text,
    "local_n_ctx": _number(128, 1_048_576, int),
    "local_n_parallel": _number(1, 64, int),
    "local_threads": _number(0, 512, int),
    "replay": _text,
    "record": _text,
    "history": _bool,
    "history_path": _text,
    "budget_usd": _optional(_number(0, 1e9)),
    "daily_budget_usd": _optional(_number(0, 1e9)),
    "ledger_path": _text,
}
"""Every configuration key (lower case) and the parser that checks its value."""

ENV_VARS: dict[str, tuple[str, ...]] = {
    "api_key": ("OPENAI_API_KEY",),
    "base_url": ("OPENAI_BASE_URL",),
    "azure_endpoint": ("AZURE_OPENAI_ENDPOINT",),
    "azure_api_key": ("AZURE_OPENAI_KEY", "AZURE_OPENAI_API_KEY"),
    "azure_api_version": ("AZURE_API_VERSION", "OPENAI_API_VERSION"),
    "cache_dir": ("LLMKIT_CACHE_DIR",),
}
"""Well-known environment variables per key; ``LLMKIT_<KEY>`` works for every key too."""

HOST_KEYS = frozenset({"base_url", "azure_endpoint"})
"""Keys naming a host that calls go to."""

DESTINATION_KEYS = HOST_KEYS | {"cache_dir", "history_path", "ledger_path", "local_model", "record",
                                "replay", "template_path"}
"""Keys naming a file, folder or host: where prompts and answers are written, read or sent.

From ./config.ini they need the user's consent (`TRUST_WORKDIR_VAR`): RECORD there could append
the user's prompts to any file, REPLAY answer calls from its own recording, TEMPLATE_PATH read
any folder into prompts, LOCAL_MODEL load any file into llama.cpp."""


def parse_value(key: str, raw: Any, source: str) -> Any:
    """Check one value; raise `ConfigError` saying where it came from and what was expected."""
    parser = SCHEMA.get(key)
    if parser is None:
        raise ConfigError(f"{source}: unknown configuration key {key!r}; "
                          f"known keys: {', '.join(sorted(SCHEMA))}")
    if raw is None:
        return None
    if not isinstance(raw, str):
        if isinstance(raw, bool) or not isinstance(raw, (int, float)):
            raw = str(raw)
        else:
            raw = repr(raw)
    try:
        return parser(raw)
    except ValueError:
        shown = HIDDEN if key in SECRET_KEYS else repr(raw)
        raise ConfigError(f"{source}: {key.upper()} = {shown} is not valid; expected "
                          f"{parser.expected}") from None  # type: ignore[attr-defined]
