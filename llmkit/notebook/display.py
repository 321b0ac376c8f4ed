"""Rich displays: text/plain, text/html and text/markdown of anything llmkit shows.

A dispatcher over the views, each imported here directly: an `LLMCall`, a `Result`, a
`Completion` or an `LLMChat` is summarized (`llmkit.notebook.summary`) and rendered
(`llmkit.notebook.renderers`); a `Run`, `Runs` or `Spend` is drawn by
`llmkit.notebook.runs_display`. Lower layers reach this module only through
`llmkit.base.hooks.mimebundle`.
"""

from __future__ import annotations

from typing import Any

from ..base.runs import Run, Runs, Spend
from . import runs_display
from .renderers import to_html, to_markdown, to_text
from .summary import summarize

__all__ = ["mimebundle"]


def mimebundle(obj: Any) -> dict[str, Any]:
    """text/plain, text/html and text/markdown of ``obj``.

    Static on purpose, never a widget: a widget view whose kernel is gone (a saved notebook
    reopened, nbconvert, GitHub) shows "Error displaying widget" instead of falling back to the
    HTML beside it, so a result must read the same live and tomorrow.
    """
    if isinstance(obj, (Run, Runs, Spend)):
        return runs_display.mimebundle(obj)
    summary = summarize(obj)
    return {"text/plain": to_text(summary), "text/html": to_html(summary),
            "text/markdown": to_markdown(summary)}
