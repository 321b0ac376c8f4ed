"""`CallView`: the ipywidget that shows an LLMCall or a call's result in JupyterLab.

Made of stock widgets only (no front-end code to install). Every HTML value is built by
`llmkit.notebook.display`, so user and model text is escaped exactly as in the text/html fallback.
CSS classes for tests and styling: ``llmkit-call`` (the view), ``llmkit-header``,
``llmkit-cache-hit`` (the badge in the header, only for an answer from the cache), ``llmkit-message``,
``llmkit-output`` and ``llmkit-tokens``.
"""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as widgets

from . import display
from .display import CallSummary

__all__ = ["CallView"]


def _html(css_class: str, value: str = "") -> widgets.HTML:
    return widgets.HTML(value).add_class(css_class)


class CallView(widgets.VBox):
    """A live view of a call: header (model, parameters, latency, cost, cache-hit badge), each
    message with its role and token count (long ones collapsed), the answer rendered as Markdown
    and the token usage.

    ``CallView(result)`` accepts an `LLMCall`, a `Result`, a `Completion` or a `CallSummary`;
    `update` shows another one in place and `append` adds streamed text to the answer.
    """

    def __init__(self, source: Any = None, **kwargs: Any) -> None:
        self.header = _html("llmkit-header")
        self.messages = widgets.VBox().add_class("llmkit-messages")
        self.output = _html("llmkit-output")
        self.tokens = _html("llmkit-tokens")
        self._streamed = ""
        super().__init__([self.header, self.messages, self.output, self.tokens], **kwargs)
        self.add_class("llmkit-call")
        if source is not None:
            self.update(source)

    def update(self, source: Any) -> None:
        """Show ``source`` (an `LLMCall`, `Result`, `Completion` or `CallSummary`) instead."""
        s = source if isinstance(source, CallSummary) else display.summarize(source)
        self.header.value = display.header_html(s)
        for old in self.messages.children:
            old.close()
        self.messages.children = [widgets.HTML(display.message_html(m)) for m in s.messages]
        self._streamed = s.output or ""
        self.output.value = display.markdown_html(s.output) if s.output is not None else ""
        usage = display.usage_text(s)
        self.tokens.value = html.escape(usage)
        self.tokens.layout.display = None if usage else "none"

    def append(self, delta: str) -> None:
        """Add a streamed piece of the answer (``on_delta=view.append``); `update` replaces it."""
        self._streamed += delta
        self.output.value = display.markdown_html(self._streamed)
