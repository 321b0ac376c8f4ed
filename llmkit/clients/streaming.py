"""Streamed chat completions assembled into the JSON a plain (non-streamed) call returns."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..base.errors import ServerError

__all__ = ["collect_stream"]


def collect_stream(chunks: Any, on_delta: Callable[[str], None] | None,
                    emitted: list[str]) -> dict[str, Any]:
    """Assemble streamed chunks into the same JSON a non-streamed call returns."""
    response: dict[str, Any] = {"object": "chat.completion"}
    choices: dict[int, dict[str, Any]] = {}
    for chunk in chunks:
        data = chunk.model_dump(mode="json", exclude_unset=True)
        for key in ("id", "created", "model", "system_fingerprint"):
            if data.get(key) is not None:
                response.setdefault(key, data[key])
        if data.get("usage"):
            response["usage"] = data["usage"]
        for part in data.get("choices") or []:
            choice = choices.setdefault(part.get("index", 0), {
                "index": part.get("index", 0), "message": {"role": "assistant", "content": ""},
                "finish_reason": None})
            delta = part.get("delta") or {}
            if delta.get("content"):
                choice["message"]["content"] += delta["content"]
                if part.get("index", 0) == 0:
                    emitted.append(delta["content"])
                    if on_delta is not None:
                        on_delta(delta["content"])
            for call in delta.get("tool_calls") or []:
                calls = choice["message"].setdefault("tool_calls", [])
                while len(calls) <= call.get("index", 0):
                    calls.append({"id": None, "type": "function",
                                  "function": {"name": "", "arguments": ""}})
                slot = calls[call.get("index", 0)]
                slot["id"] = call.get("id") or slot["id"]
                for field in ("name", "arguments"):
                    slot["function"][field] += (call.get("function") or {}).get(field) or ""
            if part.get("finish_reason"):
                choice["finish_reason"] = part["finish_reason"]
    response["choices"] = [choices[i] for i in sorted(choices)]
    if not response["choices"]:
        raise ServerError("the server's streamed answer has no choices (malformed answer)")
    return response
