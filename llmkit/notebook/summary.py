"""`CallSummary`: what a display shows of an `LLMCall`, a `Result`, a `Completion` or an `LLMChat`.

`summarize` turns those objects into plain, already scrubbed data, so the views that render it
(`llmkit.notebook.renderers`, the widgets, the playground, the run history) never see a secret
and never reach down into the clients layer. Parameters whose name suggests a credential are
hidden, and the configured API keys (and the object's client's) read ``<hidden>`` wherever they
would appear (`scrubber_for`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from ..base import config, secrets
from ..base.errors import LLMKitError
from ..base.result import Completion, Result
from ..calls.chat import LLMChat
from ..calls.llmcall import LLMCall
from ..clients import registry

__all__ = ["CallSummary", "MessageView", "Scrub", "scrubber_for", "summarize"]

Scrub = Callable[[str], str]
"""A function that returns its text with secrets replaced by ``<hidden>``."""


@dataclass(frozen=True)
class MessageView:
    """One message as displayed: role, text, and its prompt tokens (None when not counted)."""

    role: str
    content: str
    tokens: int | None = None
    images: tuple[str, ...] = ()  # data:image URLs of the message's image parts (thumbnails)


@dataclass(frozen=True)
class CallSummary:
    """Everything a display shows, already stripped of secrets."""

    title: str
    model: str
    params: dict[str, str] = field(default_factory=dict)
    messages: list[MessageView] = field(default_factory=list)
    variables: list[str] = field(default_factory=list)
    output: str | None = None
    usage: dict[str, int] | None = None
    latency: float | None = None
    cached: bool | None = None
    cost: float | None = None  # what was paid (`Completion.paid`): 0 for a cache hit or local model
    finish_reason: str | None = None
    cost_estimated: bool = False  # the cost comes from llmkit's token counts, not the server's usage
    reasoning: str | None = None  # the model's reasoning summary (Responses), shown collapsed
    citations: tuple[tuple[str, str], ...] = ()  # (http(s) url, title) the answer cites
    hosted_steps: tuple[tuple[str, str], ...] = ()  # (type, what it did) of hosted tools


def summarize(obj: Any) -> CallSummary:
    """The `CallSummary` of an `LLMCall`, a `Result`, a `Completion` or an `LLMChat`."""
    scrub = scrubber_for(obj)
    if isinstance(obj, Result):
        return _from_completion("Result", obj.completion, scrub)
    if isinstance(obj, Completion):
        return _from_completion("Completion", obj, scrub)
    if isinstance(obj, LLMChat):  # a transcript: the conversation, then the last answer
        if obj.completion is not None:
            return _from_completion("LLMChat", obj.completion, scrub)
        return CallSummary("LLMChat", "", {}, [MessageView(str(m.get("role", "?")),
                                                          scrub(_message_text(m)))
                                              for m in obj.messages])
    if not isinstance(obj, LLMCall):
        raise LLMKitError(f"llmkit.notebook.display: cannot display a {type(obj).__name__}; "
                          f"pass an LLMCall, a Result or a Completion")
    if obj.completion is not None:
        return replace(_from_completion("LLMCall", obj.completion, scrub), variables=obj.variables)
    templates = [("system template", obj.system_template)]
    if obj.user_template is not None:
        templates.append(("user template", obj.user_template))
    messages = [MessageView(f"{role} {t.name}", scrub(t.source)) for role, t in templates]
    params = {k: v for k, v in obj.model_params.items() if k != "model"}
    model = obj.model_params.get("model") or _default_model(obj)
    return CallSummary("LLMCall", scrub(str(model)), _shown_params(params, scrub), messages,
                       obj.variables)


def scrubber_for(obj: Any) -> Scrub:
    """A function that replaces every configured API key, and those of ``obj``'s client (when it
    has one), by ``<hidden>`` (keys of `llmkit.base.secrets.SHORTEST_SHOWN` characters or more)."""
    found: set[str] = set()
    sources: list[Any] = [config.resolve]
    if getattr(obj, "client", None) is not None and hasattr(obj.client, "settings"):
        sources.append(obj.client.settings)
    for source in sources:
        try:
            found.update(source().secrets())
        except LLMKitError:  # a broken configuration made no call; its keys were never used
            continue
    return secrets.scrubber(found, secrets.SHORTEST_SHOWN)


def _from_completion(title: str, completion: Completion, scrub: Scrub) -> CallSummary:
    model = completion.model
    messages = [MessageView(str(m.get("role", "?")), scrub(_message_text(m)), _tokens(m, model),
                            _thumbnails(m)) for m in completion.messages]
    params = {k: v for k, v in completion.request.items() if k not in ("messages", "model")}
    # None: the server sent no usage; {}: it sent something that is not token counts (unknown)
    usage = completion.usage if completion.response.get("usage") is not None else None
    paid = completion.paid
    reasoning = completion.reasoning
    return CallSummary(title, scrub(model), _shown_params(params, scrub), messages, [],
                       scrub(_message_text(completion.message)), usage, completion.latency,
                       completion.cached, paid, completion.finish_reason,
                       bool(paid) and completion.cost_estimated,
                       scrub(reasoning) if reasoning is not None else None,
                       tuple((scrub(c["url"]), scrub(c["title"])) for c in completion.citations),
                       tuple((scrub(s["type"]), scrub(s["text"])) for s in completion.hosted_steps))


def _message_text(message: Mapping[str, Any]) -> str:
    """A message's text: its content (text parts of a list, ``[image_url]`` for others), tool calls."""
    content = message.get("content")
    if isinstance(content, list):
        parts = [p.get("text", "") if p.get("type") == "text" else f"[{p.get('type')}]"
                 for p in content if isinstance(p, Mapping)]
        content = "\n".join(parts)
    text = content if isinstance(content, str) else ""
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        text += f"\n[tool call] {function.get('name')}({function.get('arguments', '')})"
    return text.strip("\n")


def _thumbnails(message: Mapping[str, Any]) -> tuple[str, ...]:
    """Inline images of a message (data URLs only: a display never fetches a remote host)."""
    content = message.get("content")
    if not isinstance(content, list):
        return ()
    urls = [(p.get("image_url") or {}).get("url") for p in content
            if isinstance(p, Mapping) and p.get("type") == "image_url"]
    return tuple(u for u in urls if isinstance(u, str) and u.startswith("data:image/"))


def _tokens(message: Mapping[str, Any], model: str) -> int:
    """Prompt tokens of one message (without the reply priming, so they add up to the prompt)."""
    from ..base.models import model_info
    from ..base.tokens import count_tokens
    encoding = model_info(model).encoding  # a local model's name is unknown: o200k, no warning
    return count_tokens([message], encoding) - count_tokens([], encoding)


def _shown_params(params: Mapping[str, Any], scrub: Scrub) -> dict[str, str]:
    """Parameters worth showing: those that differ from llmkit's defaults (credentials hidden)."""
    shown = {}
    defaults = config.package_defaults()
    for key, value in params.items():
        if key in defaults and defaults[key] == value:
            continue
        if key == "tools" and isinstance(value, list):  # the names: the specification is code's
            text = scrub(", ".join(map(_tool_name, value)))
        else:
            text = secrets.HIDDEN if secrets.is_secret_name(key) else scrub(repr(value))
        shown[key] = text if len(text) <= 80 else text[:79] + "…"
    return shown


def _tool_name(tool: Any) -> str:
    """A tool's name: a chat function's (``function.name``), a Responses function's (``name``), or
    a built-in tool's type (``web_search``)."""
    if not isinstance(tool, Mapping):
        return "?"
    function = tool.get("function")
    name = (function.get("name") if isinstance(function, Mapping) else None) or tool.get("name") \
        or tool.get("type")
    return str(name) if name else "?"


def _default_model(call: Any) -> str:
    try:
        settings = (call.client or registry.client()).settings()
        return f"{settings['model']} (default)"
    except (LLMKitError, AttributeError, KeyError):
        return "(default model)"
