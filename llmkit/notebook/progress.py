"""Progress of a batch run in a Jupyter kernel: an HTML bar in a stock ``ipywidgets.HTML``.

The counts are `llmkit.calls.progress_line.ProgressLine`'s (what a script shows on stderr); this
class only shows them as a bar. The bar is two segments, successes and failures, so one failed row
out of eight colours an eighth of it red (``IntProgress`` has one ``bar_style`` for the whole bar).
When the batch closes, the widget's output is replaced by the same HTML as a static text/html +
text/plain bundle and the widget is closed: in a notebook reopened without its kernel a widget view
shows "Error displaying widget" and JupyterLab does not fall back to the HTML beside it. Without
ipywidgets (or outside a kernel) it shows the text line, which notebooks show too.
"""

from __future__ import annotations

import html
from typing import Any

from ..base.hooks import in_kernel
from ..calls.progress_line import ProgressLine

__all__ = ["Progress"]

# Plain colours and inline styles: JupyterLab's sanitizer (a reopened, untrusted notebook) drops
# CSS variables. Each count is one nowrap item, so "12 rows" or "$0.000012" never wraps inside.
_ITEM = '<span style="white-space:nowrap">{}</span>'
_TRACK = ("display:inline-block;width:20em;max-width:100%;height:0.8em;vertical-align:middle;"
          "background-color:rgba(128,128,128,0.25);border-radius:3px;overflow:hidden;white-space:nowrap")
_SEGMENT = ('<span class="llmkit-{}" style="display:inline-block;height:100%;width:{:.2f}%;'
            'background-color:{}"></span>')
OK, FAILED = "#43a047", "#e53935"


class Progress(ProgressLine):
    """`ProgressLine`'s counts shown as a widget in a kernel; ``enabled=False`` shows nothing."""

    def __init__(self, total: int, *, enabled: bool = True, label: str = "llmkit map") -> None:
        kernel = enabled and in_kernel()
        super().__init__(total, enabled=enabled, label=label, inline=True if kernel else None)
        self._view: tuple[Any, Any] | None = None  # the HTML widget and its display handle
        if kernel:
            try:
                self._view = _show(self.html())
            except ImportError:  # no ipywidgets: the text line
                pass

    def html(self) -> str:
        """The bar (successes, failures, the rest empty) and the counts; every text escaped."""
        share = 100 / max(self.total, 1)
        bar = (f'<span class="llmkit-bar" style="{_TRACK}">'
               f'{_SEGMENT.format("done", (self.done - self.errors) * share, OK)}'
               f'{_SEGMENT.format("failed", self.errors * share, FAILED)}</span>')
        counts = ", ".join(_ITEM.format(html.escape(item)) for item in self.items())
        lines = [f"{bar} {html.escape(self.label)}: {counts}"]
        lines += [html.escape(self.note)] if self.note else []
        lines += [f"last error: {html.escape(self.last_error[:300])}"] if self.last_error else []
        return f'<div class="llmkit-progress" style="font-family:monospace">{"<br>".join(lines)}</div>'

    def show(self) -> None:
        """Update the bar (or, with no widget, write the text line)."""
        if self._view is None:
            super().show()
        else:
            self._view[0].value = self.html()

    def finish(self) -> None:
        """The widget gives way to a static bundle, which a saved notebook keeps."""
        if self._view is None:
            super().finish()
            return
        widget, handle = self._view
        handle.update({"text/plain": self.text(), "text/html": self.html()}, raw=True)
        widget.close()


def _show(value: str) -> tuple[Any, Any]:
    import ipywidgets
    from IPython.display import display
    widget = ipywidgets.HTML(value)
    return widget, display(widget, display_id=True)
