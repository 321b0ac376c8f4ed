"""The one parameter vocabulary: which call arguments exist, for chat and embeddings alike.

A call's arguments are checked here before anything is built or sent: an unknown name raises
`ConfigError` listing the known ones, a value of the wrong type raises `ConfigError` naming the
parameter and what it expects. ``None`` means the same for every parameter: *not given*; the
configured value applies (config.ini, environment, `force_default_value`), and where the
configuration has none, nothing is sent and the server's default applies.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Mapping
from typing import Any

from ..base import config
from ..base.errors import ConfigError

__all__ = ["CALL_OPTIONS", "CHAT", "EMBEDDING", "check"]

Check = Callable[[Any], bool]


def _int(lo: int, hi: int | None = None) -> tuple[Check, str]:
    def ok(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool) and v >= lo and (hi is None or v <= hi)
    return ok, f"an integer of at least {lo}" + (f" and at most {hi}" if hi is not None else "")


def _is(*types: type, what: str) -> tuple[Check, str]:
    def ok(v: Any) -> bool:
        return isinstance(v, types) and not (isinstance(v, bool) and bool not in types)
    return ok, what


def _text_list(v: Any) -> bool:
    return isinstance(v, str) or (isinstance(v, (list, tuple)) and all(isinstance(s, str) for s in v))


_TEXT = _is(str, what="a string")
_BOOL = _is(bool, what="True or False")
_MAP = _is(Mapping, what="a dict")
_LIST = _is(list, tuple, what="a list")


def _range(lo: float, hi: float) -> tuple[Check, str]:
    def ok(v: Any) -> bool:
        return (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                and lo <= v <= hi)
    return ok, f"a number from {lo:g} to {hi:g}"


_COMMON: dict[str, tuple[Check, str]] = {
    "model": (lambda v: isinstance(v, str) and bool(v.strip()), "a model name (a non-empty string)"),
    "user": _TEXT,
    "extra_body": _MAP,
    "extra_headers": (lambda v: isinstance(v, Mapping) and all(
        isinstance(k, str) and isinstance(x, str) for k, x in v.items()), "a dict of str to str"),
}

CHAT: dict[str, tuple[Check, str]] = {
    **_COMMON,
    "max_tokens": _int(1),
    "max_completion_tokens": _int(1),
    "temperature": _range(0, 2),
    "top_p": _range(0, 1),
    "frequency_penalty": _range(-2, 2),
    "presence_penalty": _range(-2, 2),
    "stop": (_text_list, "a string or a list of strings"),
    "n": _int(1, 128),
    "seed": _int(-(2**63)),
    "response_format": _MAP,
    "tools": _LIST,
    "tool_choice": _is(str, Mapping, what="'auto', 'none', 'required' or a dict"),
    "parallel_tool_calls": _BOOL,
    "logprobs": _BOOL,
    "top_logprobs": _int(0, 20),
    "logit_bias": _MAP,
    "reasoning_effort": _TEXT,
    "reasoning_summary": (lambda v: v in ("auto", "concise", "detailed"),
                          "'auto', 'concise' or 'detailed' (the Responses API)"),
    "verbosity": _TEXT,
    "metadata": _MAP,
    "store": _BOOL,
    "previous_response_id": _TEXT,  # the Responses API only (`llmkit.clients.responses.wanted`)
    "modalities": _LIST,
    "audio": _MAP,
    "prediction": _MAP,
    "service_tier": _TEXT,
}
"""Chat completion parameters, each with its check and what it expects."""

EMBEDDING: dict[str, tuple[Check, str]] = {
    **_COMMON,
    "dimensions": _int(1),
    "encoding_format": (lambda v: v in ("float", "base64"), "'float' or 'base64'"),
}
"""Embedding parameters."""

CALL_OPTIONS = ("timeout", "max_attempts", "waiting_time", "exponential_backoff_factor",
                "responses_api")
"""How a call is made, not what is asked: checked like configuration, never sent."""


def check(kind: str, params: Mapping[str, Any], vocabulary: Mapping[str, tuple[Check, str]]
          ) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split ``params`` into (API parameters, call options), dropping ``None`` (not given).

    Raises `ConfigError` for an unknown name (suggesting the closest known one: a typo such
    as ``temprature`` is the usual cause) or a value of the wrong type.
    """
    api: dict[str, Any] = {}
    options: dict[str, Any] = {}
    for name, value in params.items():
        if value is None:
            continue
        if name in CALL_OPTIONS:
            options[name] = config.parse_value(name, value, f"argument {name}")
            continue
        rule = vocabulary.get(name)
        if rule is None:
            names = sorted([*vocabulary, *CALL_OPTIONS])
            close = difflib.get_close_matches(str(name), names, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"unknown {kind} parameter {name!r}{hint}; known: {', '.join(names)}. "
                              "Pass options a server adds beyond the OpenAI API as extra_body={...}")
        if not rule[0](value):
            raise ConfigError(f"{kind} parameter {name}={_short(value)} is not valid: expected "
                              f"{rule[1]}")
        api[name] = value
    return api, options


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:59] + "…"
