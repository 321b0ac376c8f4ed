"""What a cache entry may be, in the cache and in JSON Lines files (exports, recordings).

A value is cached only if it is a chat answer (``{"choices": [...]}``), a Responses answer
(``{"output": [...]}``), an embedding entry
(``{"embedding": [numbers]}``) or a pure tool's result (``{"tool_result": <text>}``), nests at
most `_MAX_DEPTH` levels, fits in `_MAX_TEXT` and is valid Unicode. Import files are untrusted
input: every line is checked before anything is written.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from contextlib import suppress
from typing import Any

from .errors import CacheError

__all__ = ["ENTRY_KINDS", "cache_key", "entry_kind", "read_entries"]

# Real answers nest under 10 levels; 64 stays far below the recursion limit of json and of
# any reader.  16 MiB: the most one stored value, or one import line, may hold.
_MAX_DEPTH = 64
_MAX_TEXT = 16 * 2**20
_BAD_VECTOR = 'a malformed embedding entry (expected {"embedding": [numbers...]})'
_BAD_TOOL = 'a malformed tool result (expected exactly {"tool_result": <text>})'



# Every kind `entry_kind` can return, in the order stats and exports list them.
ENTRY_KINDS = ("chat", "responses", "embedding", "tool", "other")


def entry_kind(value: Mapping[str, Any]) -> str:
    """The kind of a stored value, from its shape: ``"chat"`` for a chat completion (it has a
    ``choices`` list), ``"responses"`` for a Responses API answer (an ``output`` list),
    ``"embedding"`` for ``{"embedding": [...]}``, ``"tool"`` for a pure tool's
    result memoised by a tool-calling loop (it has a ``"tool_result"``), else ``"other"``."""
    if isinstance(value.get("choices"), list):
        return "chat"
    if isinstance(value.get("output"), list):
        return "responses"
    if isinstance(value.get("embedding"), list):
        return "embedding"
    if "tool_result" in value:
        return "tool"
    return "other"


def _shape_problem(value: dict[str, Any]) -> str | None:
    """What `value` is if it is not a cacheable answer (None if it is one).

    Top levels only, plus a sum of an embedding's numbers, so that `get` can afford it on every
    hit: 1 µs for a chat answer, 5 µs for 1,536 numbers (a type check of each: 30 µs; parsing
    them: 130 µs).  The sum refuses strings, nulls, lists and objects, not JSON's true/false.
    """
    kind = entry_kind(value)
    if kind == "chat":
        if value["choices"] and all(isinstance(c, dict) and isinstance(c.get("message"), dict)
                                    for c in value["choices"]):
            return None
        return ('a malformed chat answer ("choices" must be a non-empty list of objects, each '
                'with a "message" object)')
    if kind == "responses":
        if value.get("status") in ("completed", "incomplete") and all(
                isinstance(item, dict) for item in value["output"]):
            return None
        return ('a malformed Responses answer ("output" must be a list of objects, "status" '
                'completed or incomplete)')
    if kind == "embedding":
        with suppress(TypeError):
            if len(value) == 1 and value["embedding"] and sum(value["embedding"]) is not None:
                return None
        return _BAD_VECTOR
    if kind == "tool":
        if len(value) == 1 and isinstance(value["tool_result"], str):
            return None
        return _BAD_TOOL
    return ('neither a chat answer ({"choices": [...]}), a Responses answer ({"output": [...]}), '
            'an embedding entry ({"embedding": [...]}) '
            'nor a tool result ({"tool_result": <text>}), the only kinds llmkit caches')


def _too_deep(value: Any) -> bool:
    """True if lists and objects nest more than `_MAX_DEPTH` levels (walked level by level,
    so a deep value cannot exhaust the stack)."""
    level = [value]
    for _ in range(_MAX_DEPTH):
        level = [child for v in level for child in (v.values() if isinstance(v, dict) else v)
                 if isinstance(child, (dict, list))]
        if not level:
            return False
    return True


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


# json.loads, refusing NaN and Infinity (Python writes them, JSON has no such numbers)
_DECODER = json.JSONDecoder(parse_constant=_no_constant)


def _row(key: str, value: Any) -> tuple[str, str]:
    """``(key, JSON text)`` as stored; `ValueError` saying why if llmkit will not cache them."""
    try:  # first: it refuses cycles, which would make `_too_deep` walk forever
        text = _dumps(value)
    except (TypeError, ValueError, RecursionError) as exc:
        raise ValueError(f"the value is not JSON-serialisable: {exc}") from None
    if _too_deep(value):
        raise ValueError(f"the value is nested more than {_MAX_DEPTH} levels deep")
    if (problem := _shape_problem(value)) is not None:
        raise ValueError(f"the value is {problem}")
    if entry_kind(value) == "embedding" and bool in set(map(type, value["embedding"])):
        raise ValueError(f"the value is {_BAD_VECTOR}")  # the type check `get` leaves out
    if len(text) > _MAX_TEXT:
        raise ValueError(f"the value takes more than {_MAX_TEXT >> 20} MiB as JSON")
    for what, string in (("key", key), ("value", text)):
        try:  # "\ud800" is a Python string but no UTF-8 text: SQLite would refuse it mid-write
            string.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(f"the {what} holds a lone surrogate (such as \\ud800), which is not "
                             "valid Unicode") from None
    return key, text


_ENTRY_FIELDS = ({"key", "value"}, {"key", "value", "kind", "request"})  # required, allowed


def _encodable(value: Any) -> bool:
    try:
        _dumps(value).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def read_entries(path: str | os.PathLike[str], *,
                 bad: list[str] | None = None) -> list[tuple[str, dict[str, Any]]]:
    """The ``(key, value)`` pairs of a JSON Lines export or recording, all checked first.

    Each line is ``{"key": <string>, "value": <object>}``, optionally with ``"kind"`` (as
    `export_jsonl` writes it; it must be the `entry_kind` of the value) and ``"request"`` (what
    was asked, kept for people reading a recording).  The value must be a chat answer, an
    embedding entry or a tool result, as `ResponseCache.set` requires, nest at most 64 levels
    and the line take at most 16 MiB.  A bad line raises `CacheError` naming the file and line;
    given a ``bad`` list, it is skipped and what was wrong (file, line, reason) is appended there
    instead (recordings: a merge conflict marker must not stop every call).
    """
    name = os.fspath(path)
    rows: list[tuple[str, dict[str, Any]]] = []
    try:
        with open(path, "rb") as src:
            lines = iter(lambda: src.readline(_MAX_TEXT + 1), b"")  # a line is read whole
            for number, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                try:
                    rows.append(_entry(line, f"{name}, line {number}"))
                except CacheError as exc:
                    if bad is None:
                        raise
                    bad.append(str(exc))
                    while len(line) > _MAX_TEXT and not line.endswith(b"\n"):
                        line = src.readline(_MAX_TEXT + 1)  # the rest of a too-long line
    except OSError as exc:
        raise CacheError(f"cannot read {name!r}: {exc}") from exc
    return rows


def _entry(line: bytes, where: str) -> tuple[str, dict[str, Any]]:
    """One checked line of `read_entries`."""
    if len(line) > _MAX_TEXT:
        raise CacheError(f"{where}: the line is longer than {_MAX_TEXT >> 20} MiB")
    try:
        item = _DECODER.decode(line.decode("utf-8"))
    except RecursionError:
        raise CacheError(f"{where}: the value is nested more than {_MAX_DEPTH} levels deep") from None
    except ValueError as exc:  # UnicodeDecodeError included
        raise CacheError(f"{where}: not JSON ({exc})") from exc
    if (not isinstance(item, dict) or not _ENTRY_FIELDS[0] <= set(item) <= _ENTRY_FIELDS[1]
            or not isinstance(item["key"], str) or not isinstance(item["value"], dict)):
        raise CacheError(f"{where}: expected an object "
                         '{"key": <string>, "kind": <string>, "value": <object>} '
                         '("kind" optional)')
    if "kind" in item and item["kind"] != (shape := entry_kind(item["value"])):
        raise CacheError(f"{where}: \"kind\" is {item['kind']!r} but the value is "
                         f"of kind {shape!r} (a chat answer has \"choices\", an "
                         'embedding is {"embedding": [...]}, a tool result {"tool_result": <text>})')
    try:
        _row(item["key"], item["value"])
    except ValueError as exc:
        raise CacheError(f"{where}: {exc}") from None
    return item["key"], item["value"]


def cache_key(payload: Mapping[str, Any]) -> str:
    """Return the sha256 hex digest of `payload` as canonical JSON.

    Key order does not matter.  The caller chooses what goes in `payload` (model,
    messages, parameters...) and must leave secrets such as API keys out of it: the
    payload is not stored, but anyone can test a guess against the key.
    """
    try:
        text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        data = text.encode("utf-8")  # UnicodeEncodeError (a ValueError): a lone surrogate
    except (TypeError, ValueError) as exc:
        raise CacheError(f"cache key payload is not JSON-serialisable: {exc}") from exc
    return hashlib.sha256(data).hexdigest()
