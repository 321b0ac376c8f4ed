"""The one model table: context limits, prices, reasoning flag and tiktoken encoding of a model.

The data, ``models.json`` next to this file, is generated from LiteLLM's model table by
``python -m llmkit.base.refresh_models`` (see there for when and how to refresh it); it is read
once, on the first lookup. Prices are USD per 1M tokens, as OpenAI lists them, without batch,
flex, priority, regional or long-context (over 272k tokens) rates.

Lookups are case-insensitive and forgiving: ``openai/gpt-4o`` and ``azure/gpt-4o`` are
``gpt-4o``, Azure's ``gpt-35-turbo`` is ``gpt-3.5-turbo``, a fine-tuned
``ft:gpt-4o-mini-2024-07-18:org::id`` is its base model, and a dated snapshot is its own entry
when the table has one (``gpt-4o-2024-05-13``), else the model it is a snapshot of.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from .errors import ConfigError

__all__ = ["ModelInfo", "chat_models", "cost", "model_info", "token_cost"]

_DATA = Path(__file__).with_name("models.json")
_ENCODINGS = frozenset(
    {"o200k_base", "o200k_harmony", "cl100k_base", "p50k_base", "p50k_edit", "r50k_base", "gpt2"}
)
# Models tokenized with cl100k_base; every other model (gpt-4o, gpt-4.1, gpt-4.5, gpt-5*, o1/o3/o4,
# unknown and local models) is counted with o200k_base.
_CL100K = re.compile(r"(?:gpt-4|gpt-3\.5)(?![0-9a-z.])|text-embedding-(?:3-|ada-002)|ada$")
_DATED = re.compile(r"-(?:\d{4}-\d{2}-\d{2}|\d{4})$")  # -2024-08-06 or -0125

_lock = threading.Lock()
_table: dict[str, dict[str, Any]] | None = None


@dataclass(frozen=True)
class ModelInfo:
    """What llmkit knows of a model; see `model_info`."""

    name: str  # the table entry matched (e.g. "gpt-4o-2024-05-13"), or the name asked for when unknown
    known: bool  # False when the model is not in the table
    encoding: str  # tiktoken encoding: "o200k_base" or "cl100k_base" (or the encoding asked for)
    max_input_tokens: int | None
    max_output_tokens: int | None
    input_price: float | None  # USD per 1M tokens, None when unknown
    cached_input_price: float | None  # USD per 1M cached input tokens (None when the table has none)
    output_price: float | None
    reasoning: bool
    mode: str | None  # "chat" | "responses" (Responses API only) | "embedding" | None


def _models() -> dict[str, dict[str, Any]]:
    global _table
    if _table is None:
        with _lock:
            if _table is None:
                import json

                _table = json.loads(_DATA.read_text(encoding="utf-8"))["models"]
    return _table


def _normalize(model: str) -> str:
    """``"Azure/GPT-35-Turbo"`` → ``"gpt-3.5-turbo"``; ``"ft:gpt-4o:org::id"`` → ``"gpt-4o"``."""
    name = model.strip().lower().rsplit("/", 1)[-1]
    if name.startswith("ft:"):
        name = name[3:].split(":", 1)[0]
    if name.startswith("gpt-35"):  # Azure's spelling
        name = "gpt-3.5" + name[6:]
    return name


def _unknown(name: str, encoding: str) -> ModelInfo:
    return ModelInfo(name, False, encoding, None, None, None, None, None, False, None)


@lru_cache(maxsize=4096)
def _lookup(model: str) -> ModelInfo:
    if model.strip().lower() in _ENCODINGS:
        return _unknown(model, model.strip().lower())
    name = _normalize(model)
    encoding = "cl100k_base" if _CL100K.match(name) else "o200k_base"
    table = _models()
    for candidate in (name, _DATED.sub("", name)):
        entry = table.get(candidate)
        if entry is not None:
            return ModelInfo(candidate, True, encoding, entry["max_input_tokens"],
                             entry["max_output_tokens"], entry["input_price"],
                             entry["cached_input_price"], entry["output_price"],
                             entry["reasoning"], entry["mode"])
    return _unknown(model, encoding)


def model_info(name: str) -> ModelInfo:
    """The `ModelInfo` of model ``name`` (memoised); ``known=False`` when it is not in the table.

    An encoding name (``"o200k_base"``, ``"cl100k_base"``, ...) gives that encoding, unknown.
    """
    if not isinstance(name, str):
        raise ConfigError(f"model must be a model name (str), got {type(name).__name__}")
    return _lookup(name)


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def cost(model: str, usage: Mapping[str, Any] | None) -> float | None:
    """USD cost of a call from the API's ``usage`` JSON, cached prompt tokens at the cached price.

    None when the model has no price, or ``usage`` is missing or malformed (never raises on a
    server's odd usage).
    """
    info = model_info(model)
    if info.input_price is None or info.output_price is None or not isinstance(usage, Mapping):
        return None
    prompt = _count(usage.get("prompt_tokens"))
    completion = _count(usage.get("completion_tokens", 0))
    details = usage.get("prompt_tokens_details")
    cached: int | None = 0
    if isinstance(details, Mapping) and details.get("cached_tokens") is not None:
        cached = _count(details.get("cached_tokens"))
    if prompt is None or completion is None or cached is None or cached > prompt:
        return None
    return token_cost(model, prompt, completion, cached)


def token_cost(model: str, prompt: int, completion: int, cached: int = 0) -> float | None:
    """USD for token counts at ``model``'s prices (``cached`` of the ``prompt`` tokens at the cached
    price); None when the model has no price, or the counts give no finite, non-negative cost (a
    count too large for a float), so that nothing absurd is ever added to a spend."""
    info = model_info(model)
    if info.input_price is None or info.output_price is None:
        return None
    cached_price = info.cached_input_price if info.cached_input_price is not None else info.input_price
    try:
        usd = ((prompt - cached) * info.input_price + cached * cached_price
               + completion * info.output_price) / 1_000_000
    except OverflowError:
        return None
    return usd if math.isfinite(usd) and usd >= 0 else None


def _order(name: str) -> tuple[Any, ...]:
    """Newest families first: gpt-6.1, gpt-6, gpt-5.5, ..., gpt-4o, gpt-4, gpt-3.5, o4, o3, o1, the rest."""
    match = re.match(r"(gpt-|o)(\d+(?:\.\d+)?)(o?)(.*)", name)
    if match is None:
        return (2, 0.0, name)
    family, version, omni, rest = match.groups()  # gpt-4o sorts between gpt-4.1 and gpt-4
    return (0 if family == "gpt-" else 1, -float(version) - (0.01 if omni else 0), rest)


def chat_models(*, responses: bool = False) -> list[str]:
    """Current chat-completions model names (no dated snapshots), newest families first.

    ``responses=True`` adds the models served only on the Responses API (``mode`` "responses":
    o3-pro, gpt-5-pro, ...): llmkit's call path sends them there, so a model picker can offer them.
    """
    modes = {"chat", "responses"} if responses else {"chat"}
    return sorted((name for name, entry in _models().items()
                   if entry["mode"] in modes and not _DATED.search(name)), key=_order)
