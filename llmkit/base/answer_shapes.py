"""Reading an answer of any API in one vocabulary: chat completions, Responses and embeddings.

What is cached, recorded and replayed is each API's own JSON; `Completion` reads it through
`shape` and the readers here, so that the message, usage, finish reason and reasoning of a
Responses body or an embeddings list read like a chat completion's. The body was validated when
it arrived (`llmkit.clients.answers`, `llmkit.clients.responses`); a cache row or history row may
still be odd, so every reader tolerates missing or mistyped fields.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["citations", "finish_reason", "hosted_steps", "message", "reasoning", "shape", "usage"]

# Why a Responses answer stopped early (``incomplete_details.reason``), as chat says it.
_INCOMPLETE = {"max_output_tokens": "length", "content_filter": "content_filter"}


def shape(response: Mapping[str, Any]) -> str:
    """``"responses"``, ``"embedding"`` or ``"chat"``: which API's JSON ``response`` is."""
    if "choices" in response:
        return "chat"
    if isinstance(response.get("output"), list) or response.get("object") == "response":
        return "responses"
    if response.get("object") == "list" or isinstance(response.get("data"), list):
        return "embedding"
    return "chat"


def message(response: Mapping[str, Any]) -> dict[str, Any]:
    """The assistant message as chat has it (``role``, ``content``, ``tool_calls``); a Responses
    answer with reasoning also has ``reasoning_items``, its reasoning to pass back on the next
    step or turn (only ``function_call`` items become ``tool_calls``: hosted tools ran on the
    server)."""
    kind = shape(response)
    if kind == "embedding":
        data: list[Any] = response["data"] if isinstance(response.get("data"), list) else []
        first = data[0].get("embedding") if data and isinstance(data[0], Mapping) else None
        size = len(first) if isinstance(first, list) else "?"
        return {"role": "assistant",
                "content": f"{len(data)} vector{'s' * (len(data) != 1)} of {size} numbers"}
    if kind == "chat":
        choices = response.get("choices") or [{}]
        found = choices[0].get("message") if isinstance(choices[0], Mapping) else None
        return {k: v for k, v in (found or {}).items() if v is not None}
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    reasoned = [dict(item) for item in _items(response) if item.get("type") == "reasoning"]
    for item in _items(response):
        if item.get("type") == "message":
            for part in item.get("content") or ():
                if isinstance(part, Mapping) and part.get("type") == "output_text" \
                        and isinstance(part.get("text"), str):
                    texts.append(part["text"])
        elif item.get("type") == "function_call":
            calls.append({"id": item.get("call_id"), "type": "function",
                          "function": {"name": item.get("name"), "arguments": item.get("arguments")}})
    out: dict[str, Any] = {"role": "assistant"}
    if texts or not calls:
        out["content"] = "".join(texts)
    if calls:
        out["tool_calls"] = calls
    if reasoned:  # passed back to the model with the tools' results or the next turn
        out["reasoning_items"] = reasoned
    return out


def usage(response: Mapping[str, Any]) -> Any:
    """The answer's usage in chat's words (``prompt_tokens``, ``completion_tokens``,
    ``total_tokens``, ``prompt_tokens_details.cached_tokens``,
    ``completion_tokens_details.reasoning_tokens``); whatever the server sent when it is not a
    Responses usage (None, or something odd, is for the caller to judge)."""
    raw = response.get("usage")
    if shape(response) != "responses" or not isinstance(raw, Mapping):
        return raw
    cached = (raw.get("input_tokens_details") or {}) if isinstance(
        raw.get("input_tokens_details"), Mapping) else {}
    reasoned = (raw.get("output_tokens_details") or {}) if isinstance(
        raw.get("output_tokens_details"), Mapping) else {}
    return {"prompt_tokens": raw.get("input_tokens"), "completion_tokens": raw.get("output_tokens"),
            "total_tokens": raw.get("total_tokens"),
            "prompt_tokens_details": {"cached_tokens": cached.get("cached_tokens", 0)},
            "completion_tokens_details": {"reasoning_tokens": reasoned.get("reasoning_tokens", 0)}}


def finish_reason(response: Mapping[str, Any]) -> str | None:
    """Why the answer ended, in chat's words: ``"stop"``, ``"tool_calls"``, ``"length"``
    (a Responses answer ``incomplete`` for ``max_output_tokens``), ``"content_filter"``."""
    kind = shape(response)
    if kind == "embedding":
        return "stop"
    if kind == "chat":
        choices = response.get("choices") or [{}]
        reason = choices[0].get("finish_reason") if isinstance(choices[0], Mapping) else None
        return reason if isinstance(reason, str) else None
    status = response.get("status")
    if status == "incomplete":
        details = response.get("incomplete_details")
        reason = details.get("reason") if isinstance(details, Mapping) else None
        return _INCOMPLETE.get(str(reason), str(reason) if reason else "length")
    if status == "completed":
        return "tool_calls" if any(i.get("type") == "function_call" for i in _items(response)) \
            else "stop"
    return status if isinstance(status, str) else None


def reasoning(response: Mapping[str, Any]) -> str | None:
    """The reasoning summary a Responses answer carries (its parts joined by blank lines), or
    None when there is none (chat answers, or no summary asked for)."""
    if shape(response) != "responses":
        return None
    texts = [part["text"] for item in _items(response) if item.get("type") == "reasoning"
             for part in item.get("summary") or () if isinstance(part, Mapping)
             and isinstance(part.get("text"), str)]
    return "\n\n".join(texts) if texts else None


def citations(response: Mapping[str, Any]) -> list[dict[str, str]]:
    """The ``url_citation`` annotations of a Responses answer's text as ``{"url", "title"}``, in
    order, each URL once. Untrusted: only string http(s) URLs are kept (a ``javascript:`` one is
    dropped), a title that is not a string becomes the URL."""
    found: list[dict[str, str]] = []
    seen: set[str] = set()
    for item in _items(response):
        for part in item.get("content") or () if item.get("type") == "message" \
                and isinstance(item.get("content"), list) else ():
            notes = part.get("annotations") if isinstance(part, Mapping) else None
            for note in notes if isinstance(notes, list) else ():
                if not isinstance(note, Mapping) or note.get("type") != "url_citation":
                    continue
                url, title = note.get("url"), note.get("title")
                if not isinstance(url, str) or not _WEB.match(url) or url in seen:
                    continue
                seen.add(url)
                found.append({"url": url, "title": title if isinstance(title, str) and title else url})
    return found


def hosted_steps(response: Mapping[str, Any]) -> list[dict[str, str]]:
    """What the hosted tools did, as ``{"type", "text"}`` (text in words: a search's query, an
    interpreter's code and logs, an MCP call's tool and output), in order."""
    steps = []
    for item in _items(response):
        kind = item.get("type")
        if not isinstance(kind, str) or kind in ("message", "function_call", "reasoning"):
            continue
        steps.append({"type": kind, "text": "\n".join(_step_lines(item))})
    return steps


def _step_lines(item: Mapping[str, Any]) -> list[str]:
    found = item.get("action")
    action: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
    pairs = (("query", action.get("query")), ("url", action.get("url")),
             ("server", item.get("server_label")), ("tool", item.get("name")),
             ("arguments", item.get("arguments")), ("status", item.get("status")))
    lines = [f"{label}: {value}" for label, value in pairs if isinstance(value, str) and value]
    if isinstance(item.get("queries"), list):
        lines += [f"query: {q}" for q in item["queries"] if isinstance(q, str)]
    if isinstance(item.get("code"), str):
        lines.append(f"code:\n{item['code']}")
    for output in item.get("outputs") or () if isinstance(item.get("outputs"), list) else ():
        if isinstance(output, Mapping) and isinstance(output.get("logs"), str):
            lines.append(f"logs:\n{output['logs']}")
        elif isinstance(output, Mapping) and isinstance(output.get("type"), str):
            lines.append(f"output: {output['type']}")
    if isinstance(item.get("output"), str):
        lines.append(f"output: {item['output']}")
    if isinstance(item.get("error"), str):
        lines.append(f"error: {item['error']}")
    return lines


_WEB = re.compile(r"^https?://[^\s<>\"'`]+$", re.IGNORECASE)


def _items(response: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    output = response.get("output")
    return [i for i in output if isinstance(i, Mapping)] if isinstance(output, list) else []
