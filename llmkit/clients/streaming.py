"""Streamed chat completions assembled into the JSON a plain (non-streamed) call returns."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ..base.errors import CallError, ServerError

__all__ = ["collect_stream"]


def collect_stream(chunks: Iterable[Mapping[str, Any]],
                   on_delta: Callable[[str], None] | None) -> dict[str, Any]:
    """Assemble streamed chunks (JSON dicts) into the same JSON a non-streamed call returns.

    A choice's ``finish_reason`` is read from the choice, or from its ``delta`` where Microsoft's
    Azure OpenAI API simulator sends it (with no usage chunk: the usage is then unknown, and the
    answer has no ``usage``). ``on_delta`` gets each piece of the first choice's text as it
    arrives. It is the caller's code: its exceptions pass through unchanged. A `CallError` raised
    by ``chunks`` after some text reached ``on_delta`` is marked ``partial`` (not retried: the
    text would show twice).
    """
    response: dict[str, Any] = {"object": "chat.completion"}
    choices: dict[int, dict[str, Any]] = {}
    emitted = False
    try:
        for data in chunks:
            for key in ("id", "created", "model", "system_fingerprint"):
                if data.get(key) is not None:
                    response.setdefault(key, data[key])
            if isinstance(data.get("usage"), Mapping):
                response["usage"] = data["usage"]
            for part in data.get("choices") or []:
                text = _add(choices, part)
                if text and on_delta is not None:
                    emitted = True
                    on_delta(text)
        if not choices:
            raise ServerError("the server's streamed answer has no choices (malformed answer)")
        if any(c["finish_reason"] is None for c in choices.values()):
            # A connection closed mid-answer looks like a normal end of stream: only a
            # finish_reason says the answer is whole. A cut answer is never returned or cached.
            raise ServerError("the stream ended before the answer was complete (no finish_reason)")
    except CallError as exc:
        exc.partial = emitted
        raise
    response["choices"] = [choices[i] for i in sorted(choices)]
    return response


def _add(choices: dict[int, dict[str, Any]], part: Any) -> str:
    """Add one chunk's delta to its choice; return the text to show (first choice only)."""
    if not isinstance(part, Mapping):
        raise ServerError("the server's streamed answer has a malformed choice")
    index = part.get("index", 0)
    if not isinstance(index, int) or not 0 <= index < 128:
        raise ServerError("the server's streamed answer has a choice with a bad index")
    choice = choices.setdefault(index, {
        "index": index, "message": {"role": "assistant", "content": ""}, "finish_reason": None})
    delta = part.get("delta") or {}
    text = delta.get("content") if isinstance(delta, Mapping) else None
    if text is not None and not isinstance(text, str):
        raise ServerError("the server's streamed answer has text that is not a string")
    if text:
        choice["message"]["content"] += text
    for call in (delta.get("tool_calls") if isinstance(delta, Mapping) else None) or []:
        calls = choice["message"].setdefault("tool_calls", [])
        slot_index = call.get("index", 0) if isinstance(call, Mapping) else -1
        if not isinstance(slot_index, int) or not 0 <= slot_index < 128:
            raise ServerError("the server's streamed answer has a malformed tool call")
        while len(calls) <= slot_index:
            calls.append({"id": None, "type": "function", "function": {"name": "", "arguments": ""}})
        slot = calls[slot_index]
        slot["id"] = call.get("id") or slot["id"]
        for name in ("name", "arguments"):
            piece = (call.get("function") or {}).get(name) or ""
            slot["function"][name] += piece if isinstance(piece, str) else ""
    finish = part.get("finish_reason")
    if finish is None and isinstance(delta, Mapping):
        finish = delta.get("finish_reason")  # Microsoft's Azure OpenAI simulator puts it there
    if finish is not None and not isinstance(finish, str):
        raise ServerError("the server's streamed answer has a finish_reason that is not a string")
    if finish:
        choice["finish_reason"] = finish
    return text if text and index == 0 else ""
