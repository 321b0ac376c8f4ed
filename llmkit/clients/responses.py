"""The Responses API (``POST /v1/responses``) in llmkit's one vocabulary: requests and answers.

A call is written in the chat vocabulary (messages, ``max_tokens``, ``response_format``,
``tools``...) and translated here, once, into a Responses body (`translate`); what comes back is
the API's own JSON, checked here (`answer`, `collect_events`) and read like a chat completion by
`llmkit.base.answer_shapes`. `wanted` decides which API serves a call (RESPONSES_API).
A tool given as a dict (``{"type": "web_search"}``) is a hosted tool: the server runs it, so it is
sent as it is, and only Responses takes it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ..base.errors import CallError, ConfigError, InvalidRequestError, RateLimitError, ServerError
from ..base.models import ModelInfo

__all__ = ["MODES", "answer", "collect_events", "hosted_tools", "translate", "wanted"]

MODES = ("auto", "always", "never")
SUMMARIES = ("auto", "concise", "detailed")
_SAME = ("model", "temperature", "top_p", "tool_choice", "parallel_tool_calls", "metadata", "store",
         "service_tier", "user", "top_logprobs", "extra_headers", "extra_body", "previous_response_id")
_REFUSED = ("frequency_penalty", "presence_penalty", "stop", "n", "seed", "logprobs", "logit_bias",
            "modalities", "audio", "prediction")
_AUTO_API_TYPES = ("openai", "azure")  # compatible and local servers: chat unless told otherwise


def hosted_tools(tools: Any) -> list[str]:
    """The types of the hosted tools among ``tools`` (entries that are not function tools:
    ``web_search``, ``code_interpreter``, ``mcp``, ``file_search``...)."""
    return [str(t.get("type")) for t in tools or () if isinstance(t, Mapping) and t.get("type") != "function"]


def wanted(mode: str, api_type: str, info: ModelInfo, given: Mapping[str, Any]) -> bool:
    """Whether a call goes to ``/v1/responses``: ``always``, or under ``auto`` on the openai and
    azure api types when Chat Completions cannot serve it: a model served only on Responses, function
    tools with a reasoning model at an effort other than ``none`` (GPT-5.4 on refuses them on chat),
    a reasoning summary, a hosted tool or a ``previous_response_id``. ``given``: the call's own
    parameters. A hosted tool or a ``previous_response_id`` on a call that goes to chat is a
    `ConfigError` (chat has neither), raised before anything is sent."""
    if mode not in MODES:
        raise ConfigError(f"responses_api={mode!r} is not valid: expected one of {', '.join(MODES)}")
    hosted = hosted_tools(given.get("tools"))
    only_here = [*(f"the hosted tool {kind!r}" for kind in hosted),
                 *(["previous_response_id"] if "previous_response_id" in given else [])]
    effort = given.get("reasoning_effort")
    chosen = mode == "always" or (mode == "auto" and api_type in _AUTO_API_TYPES and (
        info.mode == "responses" or "reasoning_summary" in given or bool(only_here)
        or (bool(given.get("tools")) and info.reasoning and effort is not None and effort != "none")))
    if only_here and not chosen:
        raise ConfigError(f"{', '.join(only_here)} needs the Responses API, which this call does not "
                          f"use (responses_api={mode!r} on the {api_type!r} api type; hosted tools run "
                          "on OpenAI and Azure OpenAI): leave it out, or pass responses_api='always' "
                          "if the server serves /v1/responses")
    return chosen


def translate(chat: Mapping[str, Any], given: Mapping[str, Any], *, reasoning: bool) -> dict[str, Any]:
    """The Responses body for a request in the chat vocabulary (``chat``, as `prepare_chat`
    built it). A parameter the call gave (``given``) that Responses does not take raises
    `ConfigError` before anything is sent; configured ones it does not take are left out.
    ``store`` is False unless asked for; a reasoning model then gets its reasoning back
    encrypted (``include``), to pass it on between tool steps."""
    refused = [name for name in _REFUSED if name in given and not (name == "n" and given[name] == 1)]
    if refused:
        raise ConfigError(f"the Responses API does not take {', '.join(refused)}: leave "
                          f"{'it' if len(refused) == 1 else 'them'} out, or pass responses_api='never' "
                          f"to use Chat Completions (not possible for Responses-only models)")
    body: dict[str, Any] = {k: chat[k] for k in _SAME if k in chat}
    body.setdefault("store", False)
    instructions, items = _input(chat["messages"])
    if instructions:
        body["instructions"] = instructions
    body["input"] = items
    limit = chat.get("max_completion_tokens") or chat.get("max_tokens")
    if limit is not None:
        body["max_output_tokens"] = limit
    effort, summary = chat.get("reasoning_effort"), chat.get("reasoning_summary")
    if effort is not None or summary is not None:
        body["reasoning"] = {k: v for k, v in (("effort", effort), ("summary", summary)) if v is not None}
    text: dict[str, Any] = {}
    if chat.get("response_format") is not None:
        text["format"] = _format(chat["response_format"])
    if chat.get("verbosity") is not None:
        text["verbosity"] = chat["verbosity"]
    if text:
        body["text"] = text
    if chat.get("tools"):
        body["tools"] = [_tool(t) for t in chat["tools"]]
    choice = chat.get("tool_choice")
    if isinstance(choice, Mapping) and isinstance(choice.get("function"), Mapping):
        body["tool_choice"] = {"type": "function", "name": choice["function"].get("name")}
    if reasoning and body["store"] is False:
        body["include"] = ["reasoning.encrypted_content"]
    return body


def _input(messages: Iterable[Mapping[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """Leading system messages as ``instructions``; the rest as input items."""
    system: list[str] = []
    items: list[dict[str, Any]] = []
    for message in messages:
        role, content = message.get("role"), message.get("content")
        if role in ("system", "developer") and not items and isinstance(content, str):
            system.append(content)
        elif role == "tool":
            items.append({"type": "function_call_output", "call_id": message.get("tool_call_id"),
                          "output": content if isinstance(content, str) else ""})
        elif role == "assistant":
            for item in message.get("reasoning_items") or ():
                items.append(dict(item))  # what the model reasoned, passed back between steps
            if content:
                items.append({"role": "assistant", "content": content})
            for call in message.get("tool_calls") or ():
                function = call.get("function") or {}
                items.append({"type": "function_call", "call_id": call.get("id"),
                              "name": function.get("name"), "arguments": function.get("arguments")})
        else:
            items.append({"role": role, "content": _parts(content)})
    return "\n\n".join(system), items


def _parts(content: Any) -> Any:
    if not isinstance(content, list):
        return content if content is not None else ""
    parts = []
    for part in content:
        if part.get("type") == "text":
            parts.append({"type": "input_text", "text": part.get("text")})
        elif part.get("type") == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, Mapping) else image
            detail = image.get("detail", "auto") if isinstance(image, Mapping) else "auto"
            parts.append({"type": "input_image", "image_url": url, "detail": detail})
        else:
            parts.append(dict(part))
    return parts


def _format(response_format: Mapping[str, Any]) -> dict[str, Any]:
    kind = response_format.get("type")
    if kind == "json_schema":
        spec = response_format.get("json_schema") or {}
        return {"type": "json_schema", "name": spec.get("name", "answer"), "schema": spec.get("schema"),
                "strict": True, **({"description": spec["description"]} if "description" in spec else {})}
    return dict(response_format)  # {"type": "json_object"} and {"type": "text"} read the same


def _tool(tool: Mapping[str, Any]) -> dict[str, Any]:
    if tool.get("type") != "function":
        return dict(tool)  # a hosted tool: sent as it was given
    function = tool.get("function")
    if not isinstance(function, Mapping):
        raise ConfigError(f"a function tool for the Responses API needs its 'function', got {tool!r:.80}")
    flat = {"type": "function", "name": function.get("name"),
            "parameters": function.get("parameters") or {"type": "object", "properties": {}}}
    if "description" in function:
        flat["description"] = function["description"]
    flat["strict"] = bool(function.get("strict", False))
    return flat


# -- answers -------------------------------------------------------------------------------------

def answer(data: Any) -> dict[str, Any]:
    """``data`` if it is a finished Responses body (``completed`` or ``incomplete``) whose output
    items have the expected shape; a ``failed`` one raises its error as llmkit's, anything else
    a retryable `ServerError`."""
    if not isinstance(data, dict) or not isinstance(data.get("output"), list):
        raise ServerError("the server's Responses answer has no output list (malformed answer)")
    status = data.get("status")
    if status == "failed":
        raise _error(data.get("error"))
    if status not in ("completed", "incomplete"):
        raise ServerError(f"the server's Responses answer is not finished (status {status!r})")
    for item in data["output"]:
        if not isinstance(item, dict) or not isinstance(item.get("type"), str):
            raise ServerError("the server's Responses answer has a malformed output item")
        if item["type"] == "message":
            for part in item.get("content") or ():
                if not isinstance(part, dict):
                    raise ServerError("the server's Responses answer has a malformed content part")
                if part.get("type") == "output_text":
                    part["text"] = _text(part.get("text"))
        elif item["type"] == "function_call":
            if not all(isinstance(item.get(k), str) for k in ("call_id", "name", "arguments")):
                raise ServerError("the server's Responses answer has a malformed function call")
        elif item["type"] == "reasoning":
            for part in item.get("summary") or ():
                if isinstance(part, dict):
                    part["text"] = _text(part.get("text"))
    return data


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise ServerError("the server's Responses answer has text that is not a string")
    # A lone surrogate ("\ud800") cannot be cached or shown: replaced as a decoder would.
    return value if value.isascii() else value.encode("utf-8", "surrogatepass").decode("utf-8", "replace")


def _error(error: Any) -> CallError:
    """A Responses ``error`` object (of a ``failed`` answer or an ``error`` event) as llmkit's."""
    body = error if isinstance(error, Mapping) else {}
    code = body.get("code") if isinstance(body.get("code"), str) else None
    message = f"the model failed to answer: {str(body.get('message') or 'no reason given')[:2000]}"
    if code == "rate_limit_exceeded":
        return RateLimitError(message, code=code)
    if code in (None, "server_error", "internal_error"):
        return ServerError(message, code=code)
    return InvalidRequestError(message, code=code)


def collect_events(events: Iterable[Mapping[str, Any]],
                   on_delta: Callable[[str], None] | None) -> dict[str, Any]:
    """The Responses body a streamed call ends with (its ``response.completed`` or
    ``response.incomplete`` event), giving ``on_delta`` the answer's text as it arrives.

    ``response.failed`` and ``error`` events raise llmkit's errors; a stream that ends without a
    final event is a retryable `ServerError` (a cut connection looks like a normal end), marked
    ``partial`` when text already reached ``on_delta`` (not retried: it would show twice).
    ``on_delta`` is the caller's code: its exceptions pass through unchanged."""
    emitted = False
    done: list[dict[str, Any]] = []  # output items as they finish (a server may leave the final
    try:                             # body's output empty)
        for event in events:
            kind = event.get("type")
            if kind == "response.output_text.delta":
                delta = event.get("delta")
                if not isinstance(delta, str):
                    raise ServerError("the server's streamed answer has text that is not a string")
                if delta and on_delta is not None:
                    emitted = True
                    on_delta(delta)
            elif kind == "response.output_item.done" and isinstance(event.get("item"), dict):
                done.append(event["item"])
            elif kind in ("response.completed", "response.incomplete", "response.failed"):
                final = event.get("response")
                if not isinstance(final, dict):
                    raise ServerError("the server's streamed answer ended with no response body")
                if not final.get("output") and done:
                    final = {**final, "output": done}
                return answer(final)
            elif kind == "error":
                raise _error(event.get("error") if isinstance(event.get("error"), Mapping) else event)
        raise ServerError("the stream ended before the answer was complete (no response.completed)")
    except CallError as exc:
        exc.partial = emitted
        raise
