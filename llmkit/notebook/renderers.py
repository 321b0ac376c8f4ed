"""The three static views of a call (a `CallSummary`): text/plain, text/html and text/markdown,
and the pieces of them the widgets and the playground reuse (`header_html`, `message_html`,
`answer_html`, `usage_text`). The reasoning summary sits collapsed above the answer, the cited
pages (http(s) links only) and what hosted tools did below it.

Pure functions of plain, already scrubbed data: every user, model and server text placed into
HTML is escaped, the answer is rendered by `llmkit.notebook.kit.markdown_html` and Markdown output
goes through `llmkit.notebook.kit.safe_markdown`, code spans and fences.
"""

from __future__ import annotations

import html

from ..base.money import format_cost
from .kit import (
    BADGE_ATTRS,
    BOX_STYLE,
    FOOTER_STYLE,
    LABEL_STYLE,
    MESSAGE_STYLE,
    PRE_ATTRS,
    WARN_STYLE,
    code_span,
    fence,
    keep_line_breaks,
    markdown_html,
    safe_markdown,
)
from .summary import CallSummary, MessageView

__all__ = ["COLLAPSE_AT", "CUT_OFF", "answer_html", "citations_html", "header_html", "message_html",
           "reasoning_html", "to_html", "to_markdown", "to_text", "usage_text"]

COLLAPSE_AT = 400
"""Messages longer than this many characters are collapsed (``<details>``)."""
CUT_OFF = {"length": "cut off: the answer reached its max_tokens limit (finish_reason='length')",
           "content_filter": "filtered: the provider's content filter stopped the answer "
                             "(finish_reason='content_filter')"}
"""The warning shown above an answer that did not finish, by finish reason."""


def _header_parts(s: CallSummary) -> list[str]:
    """Parameters, finish reason, latency and cost (the title, model and cache hit come apart)."""
    parts = [f"{k}={v}" for k, v in s.params.items()]
    if s.finish_reason not in (None, "stop", *CUT_OFF):  # cut-off ones are flagged above the answer
        parts.append(f"finish_reason={s.finish_reason}")
    if s.latency is not None:
        parts.append(f"{s.latency:.2f} s")
    if s.usage is not None or s.cost is not None:  # what was paid: $0 for a cache hit or local model
        parts.append("price unknown" if s.cost is None
                     else f"cost {format_cost(s.cost, estimated=s.cost_estimated)}")
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


# -- text/plain -----------------------------------------------------------------------------------

def to_text(s: CallSummary) -> str:
    """Plain text for terminals; long messages are shortened."""
    lines = [" · ".join([s.title, s.model, *_header_parts(s), *(["cache hit"] if s.cached else [])])]
    if s.variables:
        lines.append("variables: " + ", ".join(s.variables))
    for m in s.messages:
        content = m.content if len(m.content) <= COLLAPSE_AT else (
            m.content[:COLLAPSE_AT] + f"… ({len(m.content) - COLLAPSE_AT} more characters)")
        lines.append(f"[{_label(m)}] {content}")
    if s.reasoning is not None:
        lines.append(f"[reasoning] {s.reasoning}")
    if s.output is not None:
        lines.append(f"[output] {s.output}")
    lines += [f"[source] {title} <{url}>" for url, title in s.citations]
    lines += [f"[{kind}] {text}" for kind, text in s.hosted_steps]
    if s.usage is not None:
        lines.append(usage_text(s))
    return "\n".join(lines)


# -- text/html ------------------------------------------------------------------------------------

def header_html(s: CallSummary) -> str:
    """The footer line: model, parameters that differ from the defaults, tokens, cost, latency,
    the cache-hit badge (each item kept whole: no wrap inside one)."""
    items = [f"<b>{html.escape(s.title)}</b>", f"<code>{html.escape(s.model)}</code>",
             *map(html.escape, _header_parts(s))]
    if s.usage is not None:
        items.append(f'<span class="llmkit-tokens">{html.escape(usage_text(s))}</span>')
    shown = " · ".join(f'<span style="white-space:nowrap">{item}</span>' for item in items)
    return shown + (f" <span {BADGE_ATTRS}>cache hit</span>" if s.cached else "")


def message_html(m: MessageView) -> str:
    """One message in a box labelled with its role and token count (collapsed when long)."""
    label = (f'<span style="{LABEL_STYLE}">{html.escape(m.role)}</span>'
             + (f' <span class="llmkit-tokens" style="{LABEL_STYLE}">{m.tokens} tokens</span>'
                if m.tokens is not None else ""))
    body = f'<div {PRE_ATTRS}>{html.escape(m.content)}</div>' + "".join(
        f'<img src="{html.escape(url)}" alt="image" style="max-width:128px;max-height:128px;'
        f'margin:2px 4px 2px 0;border-radius:3px">' for url in m.images)
    if len(m.content) > COLLAPSE_AT:
        return (f'<details class="llmkit-message" style="{MESSAGE_STYLE}"><summary>{label} · '
                f'{len(m.content)} characters</summary>{body}</details>')
    return f'<div class="llmkit-message" style="{MESSAGE_STYLE}">{label}{body}</div>'


def answer_html(text: str, finish_reason: str | None = None) -> str:
    """The answer box alone: what a streaming display shows, and the top of the full view, so
    the answer does not move when the final view replaces the stream."""
    warning = CUT_OFF.get(finish_reason or "")
    flag = (f'<div class="llmkit-warning" style="{WARN_STYLE}">⚠ {html.escape(warning)}</div>'
            if warning else "")
    return (f'{flag}<div style="{LABEL_STYLE}">answer</div>'
            f'<div class="llmkit-output">{markdown_html(text)}</div>')


def reasoning_html(text: str) -> str:
    """The reasoning summary, collapsed (a static ``<details>``: it stays as it is in a saved
    notebook reopened without the kernel)."""
    return (f'<details class="llmkit-reasoning"><summary style="{LABEL_STYLE};cursor:pointer">'
            f'reasoning summary</summary><div {PRE_ATTRS}>{html.escape(text)}</div></details>')


def citations_html(s: CallSummary) -> str:
    """The cited pages as links (their URLs were checked to be http(s); both are escaped) and,
    collapsed, what the hosted tools did."""
    parts = []
    if s.citations:
        links = "".join(f'<li><a href="{html.escape(url)}" target="_blank" rel="noopener noreferrer '
                        f'nofollow">{html.escape(title)}</a></li>' for url, title in s.citations
                        if url.lower().startswith(("http://", "https://")))
        parts.append(f'<div class="llmkit-citations"><div style="{LABEL_STYLE}">sources</div>'
                     f'<ol style="margin:0.2em 0">{links}</ol></div>')
    if s.hosted_steps:
        steps = "".join(f'<div style="{LABEL_STYLE}">{html.escape(kind)}</div>'
                        f'<div {PRE_ATTRS}>{html.escape(text)}</div>' for kind, text in s.hosted_steps)
        parts.append(f'<details class="llmkit-hosted"><summary style="{LABEL_STYLE};cursor:pointer">'
                     f'hosted tools · {len(s.hosted_steps)} step'
                     f'{"" if len(s.hosted_steps) == 1 else "s"}</summary>{steps}</details>')
    return "".join(parts)


def to_html(s: CallSummary) -> str:
    """The answer first, the prompt below it (collapsed once there is an answer), then one footer
    line. Every user, model and server text is escaped."""
    parts = []
    if s.reasoning is not None:
        parts.append(reasoning_html(s.reasoning))
    if s.output is not None:
        parts.append(answer_html(s.output, s.finish_reason))
        # Copying the answer: rendered Markdown loses its markup, and notebook front ends strip
        # the script a copy button needs, so the raw text sits one click away, ready to select.
        parts.append(f'<details class="llmkit-copy"><summary style="{LABEL_STYLE};cursor:pointer">'
                     f'answer as text, to copy</summary><pre style="white-space:pre-wrap;'
                     f'user-select:all;margin:0.2em 0">{html.escape(s.output)}</pre></details>')
    if s.citations or s.hosted_steps:
        parts.append(citations_html(s))
    prompt = [message_html(m) for m in s.messages]
    if s.variables:
        prompt.insert(0, f"<div style=\"{LABEL_STYLE}\">variables: "
                         f"{html.escape(', '.join(s.variables))}</div>")
    summary = f"prompt · {len(s.messages)} message{'' if len(s.messages) == 1 else 's'}"
    opened = "" if s.output is not None else " open"
    parts.append(f'<details class="llmkit-prompt"{opened}><summary style="{LABEL_STYLE};'
                 f'cursor:pointer">{summary}</summary>{"".join(prompt)}</details>')
    parts.append(f'<div class="llmkit-header" style="{FOOTER_STYLE}">{header_html(s)}</div>')
    return f'<div class="llmkit-call" style="{BOX_STYLE}">' + "\n".join(parts) + "</div>"


# -- text/markdown --------------------------------------------------------------------------------

def to_markdown(s: CallSummary) -> str:
    """Markdown: messages as code blocks (long ones in ``<details>``), the answer as Markdown."""
    header = [code_span(p) for p in [s.model, *_header_parts(s)]]
    parts = [" · ".join([f"**{html.escape(s.title)}**", *header,
                         *(["**cache hit**"] if s.cached else [])])]
    if s.variables:
        parts.append("variables: " + code_span(", ".join(s.variables)))
    for m in s.messages:
        label = html.escape(_label(m))
        if len(m.content) > COLLAPSE_AT:
            parts.append(f"<details><summary>{label}</summary>\n\n{fence(m.content)}\n\n</details>")
        else:
            parts.append(f"**{label}**\n\n{fence(m.content)}")
    if s.reasoning is not None:
        parts.append(f"<details><summary>reasoning summary</summary>\n\n{fence(s.reasoning)}\n\n</details>")
    if s.output is not None:
        parts.append("**output**\n\n" + keep_line_breaks(safe_markdown(s.output)))
    if s.citations:  # the link text escaped as Markdown, the URL (checked http(s)) percent-escaped
        parts.append("**sources**\n\n" + "\n".join(
            f"{i}. [{_md_text(title)}](<{_md_url(url)}>)" for i, (url, title) in enumerate(s.citations, 1)
            if url.lower().startswith(("http://", "https://"))))
    for kind, text in s.hosted_steps:
        parts.append(f"**{html.escape(kind)}**\n\n{fence(text)}")
    if s.usage is not None:
        parts.append(usage_text(s))
    return "\n\n".join(parts)


def _md_text(text: str) -> str:
    """Text that Markdown shows as it is: every punctuation mark backslash-escaped, ``&`` as an
    entity, line breaks as spaces (a link's text: no markup, no tag, no second link)."""
    flat = " ".join(text.split()).replace("&", "&amp;")
    return "".join(f"\\{c}" if c in _MD_PUNCTUATION else c for c in flat)


_MD_PUNCTUATION = frozenset("\\`*_{}[]()#+-.!|~<>\"'")


def _md_url(url: str) -> str:
    """A URL safe inside ``<...>`` of a Markdown link: characters that could end it or start
    markup percent-encoded."""
    return "".join(f"%{ord(c):02X}" if c in '<>()[]"\'` \\' or ord(c) < 32 else c for c in url)
