"""Rich displays of an `LLMCall`, a `Result` or a `Completion`: text/plain, text/html, text/markdown.

Pure Python and static (no widget), so a saved notebook shows the same output after it is closed
and reopened, in nbconvert and on GitHub.

Safety: every piece of user or model text placed into HTML is escaped. The answer is rendered as
Markdown by markdown-it-py in CommonMark mode with raw HTML off (it shows as text) and images off
(a model told to by a prompt injection cannot make the page fetch a URL). Parameters whose name
suggests a credential are hidden, and the configured API keys are replaced by ``<hidden>`` wherever
they would appear.
"""

from __future__ import annotations

import html
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any

from ..base import config, hooks
from ..base.errors import LLMKitError
from ..base.models import cost as model_cost
from ..base.result import Completion
from ..base.runs import Run, Runs, Spend
from ..calls.chat import LLMChat
from ..calls.llmcall import LLMCall
from ..clients import boundary, registry

__all__ = [
    "COLLAPSE_AT",
    "CallSummary",
    "MessageView",
    "answer_html",
    "format_cost",
    "header_html",
    "in_kernel",
    "markdown_html",
    "message_html",
    "mimebundle",
    "safe_markdown",
    "summarize",
    "to_html",
    "to_markdown",
    "to_text",
    "usage_text",
]

COLLAPSE_AT = 400
"""Messages longer than this many characters are collapsed (``<details>``)."""
_HIDDEN = "<hidden>"
_SECRET_NAME = config.SECRET_NAME
_MIN_SECRET = 8  # shorter "keys" (e.g. "none" for a local server) are not worth hiding everywhere


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
    cost: float | None = None
    finish_reason: str | None = None


# -- summarizing ----------------------------------------------------------------------------------

def summarize(obj: Any) -> CallSummary:
    """The `CallSummary` of an `LLMCall`, a `Result` or a `Completion`."""
    from ..base.result import Result
    scrub = _scrubber(obj)
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
        raise LLMKitError(f"llmkit.display: cannot display a {type(obj).__name__}; "
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


Scrub = Callable[[str], str]


def _from_completion(title: str, completion: Completion, scrub: Scrub) -> CallSummary:
    model = completion.model
    messages = [MessageView(str(m.get("role", "?")), scrub(_message_text(m)), _tokens(m, model),
                            _thumbnails(m)) for m in completion.messages]
    params = {k: v for k, v in completion.request.items() if k not in ("messages", "model")}
    # None: the server sent no usage; {}: it sent something that is not token counts (unknown)
    usage = completion.usage if completion.response.get("usage") is not None else None
    cost = model_cost(model, completion.response.get("usage")) if usage else None
    return CallSummary(title, scrub(model), _shown_params(params, scrub), messages, [],
                       scrub(_message_text(completion.message)), usage, completion.latency,
                       completion.cached, cost, completion.finish_reason)


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
        text = _HIDDEN if _SECRET_NAME.search(key) else scrub(repr(value))
        shown[key] = text if len(text) <= 80 else text[:79] + "…"
    return shown


def _default_model(call: Any) -> str:
    try:
        settings = (call.client or registry.client()).settings()
        return f"{settings['model']} (default)"
    except (LLMKitError, AttributeError, KeyError):
        return "(default model)"


def _scrubber(obj: Any) -> Scrub:
    """A function that replaces every configured API key (and the object's client's) by <hidden>."""
    secrets: set[str] = set()
    sources: list[Any] = [config.resolve]
    if getattr(obj, "client", None) is not None and hasattr(obj.client, "settings"):
        sources.append(obj.client.settings)
    for source in sources:
        try:
            secrets.update(source().secrets())
        except LLMKitError:  # a broken configuration made no call; its keys were never used
            continue
    found = sorted((s for s in secrets if len(s) >= _MIN_SECRET), key=len, reverse=True)
    return lambda text: boundary.scrub(text, found)


def format_cost(cost: float | None) -> str:
    """``"$0.000150"``-style text, or ``"n/a"`` for an unknown price."""
    if cost is None:
        return "n/a"
    return f"${cost:.2f}" if cost >= 1 else f"${cost:.6f}"


# -- Markdown -------------------------------------------------------------------------------------

@lru_cache(maxsize=2)
def _markdown(raw_html: bool) -> Any:
    from markdown_it import MarkdownIt
    md = MarkdownIt("commonmark", {"html": raw_html})
    return md if raw_html else md.disable("image")


def markdown_html(text: str) -> str:
    """The answer rendered as HTML: Markdown rendered, raw HTML and images shown as text."""
    return str(_markdown(False).render(text))


_SCRIPT_URL = re.compile(r"(?:javascript|vbscript|data):", re.IGNORECASE)


def safe_markdown(text: str) -> str:
    """``text`` for a text/markdown output: unchanged, unless a Markdown renderer would find raw
    HTML or an image in it (outside code) or it holds a script URL; then every
    ``\\``, ``&``, ``<`` and ``[`` is escaped, so no tag, image or link is left (code shows the
    escapes)."""
    def unsafe(tokens: list[Any]) -> bool:
        return any(t.type in ("html_block", "html_inline", "image") or unsafe(t.children or [])
                   for t in tokens)
    if not _SCRIPT_URL.search(text) and not unsafe(_markdown(True).parse(text)):
        return text
    for char, escaped in (("\\", "\\\\"), ("&", "&amp;"), ("<", "&lt;"), ("[", "\\[")):
        text = text.replace(char, escaped)
    return text


def _code(text: str) -> str:
    """``text`` as an inline code span that nothing inside it can close: no backtick run, and no
    blank line (line breaks become spaces; a server's ``model`` field is not trusted)."""
    text = " ".join(text.split())
    ticks = "`" * (max((len(r) for r in re.findall(r"`+", text)), default=0) + 1)
    return f"{ticks} {text} {ticks}"


def _fence(text: str) -> str:
    """``text`` as a fenced code block that no backtick run inside it can close."""
    run = max((len(r) for r in re.findall(r"`+", text)), default=0)
    ticks = "`" * max(3, run + 1)
    return f"{ticks}text\n{text}\n{ticks}"


# -- text/plain -----------------------------------------------------------------------------------

def _header_parts(s: CallSummary) -> list[str]:
    """Parameters, finish reason, latency and cost (the title, model and cache hit come apart)."""
    parts = [f"{k}={v}" for k, v in s.params.items()]
    if s.finish_reason not in (None, "stop", *CUT_OFF):  # cut-off ones are flagged above the answer
        parts.append(f"finish_reason={s.finish_reason}")
    if s.latency is not None:
        parts.append(f"{s.latency:.2f} s")
    if s.usage is not None:
        cost = f"cost ≈ {format_cost(s.cost)}"
        parts.append(cost + (" (not charged)" if s.cached and s.cost is not None else ""))
    return parts


def usage_text(s: CallSummary) -> str:
    """``"tokens: prompt 20 · completion 5 · total 25"`` (empty before a call)."""
    if s.usage is None:
        return ""
    if not s.usage:
        return "tokens: unknown"
    u = s.usage
    return (f"tokens: prompt {u['prompt_tokens']} · completion {u['completion_tokens']} · "
            f"total {u['total_tokens']}")


def _label(m: MessageView) -> str:
    return " ".join(m.role.split()) + (f" · {m.tokens} tokens" if m.tokens is not None else "")


def to_text(s: CallSummary) -> str:
    """Plain text for terminals; long messages are shortened."""
    lines = [" · ".join([s.title, s.model, *_header_parts(s), *(["cache hit"] if s.cached else [])])]
    if s.variables:
        lines.append("variables: " + ", ".join(s.variables))
    for m in s.messages:
        content = m.content if len(m.content) <= COLLAPSE_AT else (
            m.content[:COLLAPSE_AT] + f"… ({len(m.content) - COLLAPSE_AT} more characters)")
        lines.append(f"[{_label(m)}] {content}")
    if s.output is not None:
        lines.append(f"[output] {s.output}")
    if s.usage is not None:
        lines.append(usage_text(s))
    return "\n".join(lines)


# -- text/html ------------------------------------------------------------------------------------
# JupyterLab's CSS variables (with fallbacks for nbconvert and GitHub), so both themes read well.

BOX_STYLE = ("border:1px solid var(--jp-border-color2,#d0d0d0);border-radius:6px;padding:8px 12px;"
        "margin:2px 0;line-height:1.45;max-width:110ch;color:var(--jp-content-font-color1,inherit);"
        "background:var(--jp-layout-color0,transparent)")
_LABEL = ("font-size:0.75em;text-transform:uppercase;letter-spacing:0.05em;"
          "color:var(--jp-ui-font-color2,#777)")
_MESSAGE = ("border:1px solid var(--jp-border-color3,#e6e6e6);border-radius:4px;padding:4px 8px;"
            "margin:4px 0;background:var(--jp-layout-color1,transparent)")
_PRE = 'style="white-space:pre-wrap;margin:0.2em 0"'
_FOOTER = ("margin-top:6px;font-size:0.85em;color:var(--jp-ui-font-color2,#666);"
           "border-top:1px solid var(--jp-border-color3,#eee);padding-top:4px")
_WARN = ("margin:0 0 6px 0;padding:3px 8px;border-radius:4px;font-weight:600;"
         "background:var(--jp-warn-color3,#fff3cd);color:var(--jp-warn-color0,#7a4d00);"
         "border:1px solid var(--jp-warn-color1,#e0a800)")
_BADGE = ('class="llmkit-cache-hit" style="background:var(--jp-success-color1,#2e7d32);color:white;'
          'border-radius:3px;padding:0 5px;white-space:nowrap"')
CUT_OFF = {"length": "cut off: the answer reached its max_tokens limit (finish_reason='length')",
           "content_filter": "filtered: the provider's content filter stopped the answer "
                             "(finish_reason='content_filter')"}


def header_html(s: CallSummary) -> str:
    """The footer line: model, parameters that differ from the defaults, tokens, cost, latency,
    the cache-hit badge (each item kept whole: no wrap inside one)."""
    items = [f"<b>{html.escape(s.title)}</b>", f"<code>{html.escape(s.model)}</code>",
             *map(html.escape, _header_parts(s))]
    if s.usage is not None:
        items.append(f'<span class="llmkit-tokens">{html.escape(usage_text(s))}</span>')
    shown = " · ".join(f'<span style="white-space:nowrap">{item}</span>' for item in items)
    return shown + (f" <span {_BADGE}>cache hit</span>" if s.cached else "")


def message_html(m: MessageView) -> str:
    """One message in a box labelled with its role and token count (collapsed when long)."""
    label = (f'<span style="{_LABEL}">{html.escape(m.role)}</span>'
             + (f' <span class="llmkit-tokens" style="{_LABEL}">{m.tokens} tokens</span>'
                if m.tokens is not None else ""))
    body = f'<div {_PRE}>{html.escape(m.content)}</div>' + "".join(
        f'<img src="{html.escape(url)}" alt="image" style="max-width:128px;max-height:128px;'
        f'margin:2px 4px 2px 0;border-radius:3px">' for url in m.images)
    if len(m.content) > COLLAPSE_AT:
        return (f'<details class="llmkit-message" style="{_MESSAGE}"><summary>{label} · '
                f'{len(m.content)} characters</summary>{body}</details>')
    return f'<div class="llmkit-message" style="{_MESSAGE}">{label}{body}</div>'


def answer_html(text: str, finish_reason: str | None = None) -> str:
    """The answer box alone: what a streaming display shows, and the top of the full view, so
    the answer does not move when the final view replaces the stream."""
    warning = CUT_OFF.get(finish_reason or "")
    flag = f'<div class="llmkit-warning" style="{_WARN}">⚠ {html.escape(warning)}</div>' if warning else ""
    return (f'{flag}<div style="{_LABEL}">answer</div>'
            f'<div class="llmkit-output">{markdown_html(text)}</div>')


def to_html(s: CallSummary) -> str:
    """The answer first, the prompt below it (collapsed once there is an answer), then one footer
    line. Every user, model and server text is escaped."""
    parts = []
    if s.output is not None:
        parts.append(answer_html(s.output, s.finish_reason))
        # Copying the answer: rendered Markdown loses its markup, and notebook front ends strip
        # the script a copy button needs, so the raw text sits one click away, ready to select.
        parts.append(f'<details class="llmkit-copy"><summary style="{_LABEL};cursor:pointer">'
                     f'answer as text, to copy</summary><pre style="white-space:pre-wrap;'
                     f'user-select:all;margin:0.2em 0">{html.escape(s.output)}</pre></details>')
    prompt = [message_html(m) for m in s.messages]
    if s.variables:
        prompt.insert(0, f"<div style=\"{_LABEL}\">variables: {html.escape(', '.join(s.variables))}</div>")
    summary = f"prompt · {len(s.messages)} message{'' if len(s.messages) == 1 else 's'}"
    opened = "" if s.output is not None else " open"
    parts.append(f'<details class="llmkit-prompt"{opened}><summary style="{_LABEL};cursor:pointer">'
                 f'{summary}</summary>{"".join(prompt)}</details>')
    parts.append(f'<div class="llmkit-header" style="{_FOOTER}">{header_html(s)}</div>')
    return f'<div class="llmkit-call" style="{BOX_STYLE}">' + "\n".join(parts) + "</div>"


# -- text/markdown --------------------------------------------------------------------------------

def to_markdown(s: CallSummary) -> str:
    """Markdown: messages as code blocks (long ones in ``<details>``), the answer as Markdown."""
    header = [_code(p) for p in [s.model, *_header_parts(s)]]
    parts = [" · ".join([f"**{html.escape(s.title)}**", *header, *(["**cache hit**"] if s.cached else [])])]
    if s.variables:
        parts.append("variables: " + _code(", ".join(s.variables)))
    for m in s.messages:
        label = html.escape(_label(m))
        if len(m.content) > COLLAPSE_AT:
            parts.append(f"<details><summary>{label}</summary>\n\n{_fence(m.content)}\n\n</details>")
        else:
            parts.append(f"**{label}**\n\n{_fence(m.content)}")
    if s.output is not None:
        parts.append("**output**\n\n" + safe_markdown(s.output))
    if s.usage is not None:
        parts.append(usage_text(s))
    return "\n\n".join(parts)


# -- the bundle -----------------------------------------------------------------------------------

def in_kernel() -> bool:
    """True inside a live Jupyter kernel (the IPython shell is ipykernel's ``ZMQInteractiveShell``).

    Looks only at modules already imported, so plain Python never imports IPython here.
    """
    zmqshell, ipython = sys.modules.get("ipykernel.zmqshell"), sys.modules.get("IPython")
    if zmqshell is None or ipython is None:
        return False
    return isinstance(ipython.get_ipython(), zmqshell.ZMQInteractiveShell)


def mimebundle(obj: Any) -> dict[str, Any]:
    """text/plain, text/html and text/markdown of ``obj``.

    Static on purpose, never a widget: a widget view whose kernel is gone (a saved notebook
    reopened, nbconvert, GitHub) shows "Error displaying widget" instead of falling back to the
    HTML beside it, so a result must read the same live and tomorrow.
    """
    if isinstance(obj, (Run, Runs, Spend)):  # the run history's tables: runs_display.py, by name
        return hooks.notebook("runs_display").mimebundle(obj)  # type: ignore[no-any-return]
    summary = summarize(obj)
    return {"text/plain": to_text(summary), "text/html": to_html(summary),
            "text/markdown": to_markdown(summary)}
