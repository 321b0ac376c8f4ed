"""The displays' kit: styles, safe Markdown, code spans and fences, money as text.

Every view (a call, the run history, the progress bar, the playground) builds on these, so they
look alike and escape alike. Styles are inline and use JupyterLab's CSS variables with plain
fallbacks (nbconvert, GitHub), so both themes read well and the sanitizer keeps them.

Safety: `markdown_html` renders with markdown-it-py in CommonMark mode with raw HTML off (it shows
as text) and images off (a model told to by a prompt injection cannot make the page fetch a URL);
`safe_markdown` escapes text for a text/markdown output when a renderer would find HTML, an image
or a script URL in it; `code_span` and `fence` make code that nothing inside can close.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

__all__ = [
    "BADGE_ATTRS",
    "BOX_STYLE",
    "FOOTER_STYLE",
    "LABEL_STYLE",
    "MESSAGE_STYLE",
    "PRE_ATTRS",
    "WARN_STYLE",
    "code_span",
    "fence",
    "keep_line_breaks",
    "markdown_html",
    "safe_markdown",
]

BOX_STYLE = ("border:1px solid var(--jp-border-color2,#d0d0d0);border-radius:6px;padding:8px 12px;"
             "margin:2px 0;line-height:1.45;max-width:110ch;color:var(--jp-content-font-color1,inherit);"
             "background:var(--jp-layout-color0,transparent)")
"""The box around a whole view (a call, a run)."""
LABEL_STYLE = ("font-size:0.75em;text-transform:uppercase;letter-spacing:0.05em;"
               "color:var(--jp-ui-font-color2,#777)")
"""Small grey capitals: a role, "answer", a ``<summary>`` line."""
MESSAGE_STYLE = ("border:1px solid var(--jp-border-color3,#e6e6e6);border-radius:4px;padding:4px 8px;"
                 "margin:4px 0;background:var(--jp-layout-color1,transparent)")
"""The box around one message."""
PRE_ATTRS = 'style="white-space:pre-wrap;margin:0.2em 0"'
"""Attributes of a block of text whose line breaks count."""
FOOTER_STYLE = ("margin-top:6px;font-size:0.85em;color:var(--jp-ui-font-color2,#666);"
                "border-top:1px solid var(--jp-border-color3,#eee);padding-top:4px")
"""The footer line under a call (model, parameters, tokens, cost)."""
WARN_STYLE = ("margin:0 0 6px 0;padding:3px 8px;border-radius:4px;font-weight:600;"
              "background:var(--jp-warn-color3,#fff3cd);color:var(--jp-warn-color0,#7a4d00);"
              "border:1px solid var(--jp-warn-color1,#e0a800)")
"""A warning above an answer (cut off, filtered)."""
BADGE_ATTRS = ('class="llmkit-cache-hit" style="background:var(--jp-success-color1,#2e7d32);color:white;'
               'border-radius:3px;padding:0 5px;white-space:nowrap"')
"""Attributes of the "cache hit" badge."""


# -- Markdown -------------------------------------------------------------------------------------

@lru_cache(maxsize=2)
def _markdown(raw_html: bool) -> Any:
    from markdown_it import MarkdownIt
    # breaks: a single newline stays a line break (a poem, an address), as the model wrote it;
    # tables are parsed so that their rows are not taken for a paragraph's lines
    md = MarkdownIt("commonmark", {"html": raw_html, "breaks": True}).enable("table")
    return md if raw_html else md.disable("image")


def markdown_html(text: str) -> str:
    """The answer rendered as HTML: Markdown rendered, line breaks kept, raw HTML and images shown
    as text."""
    return str(_markdown(False).render(text))


def keep_line_breaks(text: str) -> str:
    """Markdown ``text`` whose single newlines inside a paragraph are hard breaks (two trailing
    spaces), so a notebook's Markdown renderer keeps them as `markdown_html` does; code, tables
    and blank lines are left as they are."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    for token in _markdown(True).parse("\n".join(lines)):
        if token.type == "paragraph_open" and token.map:
            for i in range(token.map[0], min(token.map[1], len(lines)) - 1):
                if not lines[i].endswith("  ") and not lines[i].endswith("\\"):
                    lines[i] += "  "
    return "\n".join(lines)


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


# -- code -----------------------------------------------------------------------------------------

def _longest_backtick_run(text: str) -> int:
    return max((len(r) for r in re.findall(r"`+", text)), default=0)


def code_span(text: str) -> str:
    """``text`` as an inline Markdown code span that nothing inside it can close: no backtick
    run, and no blank line (line breaks become spaces; a server's ``model`` field is not trusted)."""
    text = " ".join(text.split())
    ticks = "`" * (_longest_backtick_run(text) + 1)
    return f"{ticks} {text} {ticks}"


def fence(text: str) -> str:
    """``text`` as a fenced Markdown code block that no backtick run inside it can close."""
    ticks = "`" * max(3, _longest_backtick_run(text) + 1)
    return f"{ticks}text\n{text}\n{ticks}"
