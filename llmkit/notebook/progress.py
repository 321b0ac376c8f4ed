"""Progress of a batch run: an ipywidgets bar inside a Jupyter kernel, a text line on stderr elsewhere.

It shows rows done out of the total, errors, cached answers, tokens spent and their estimated cost
(`llmkit.pricing`; answers from the cache cost nothing), and rows per second.
"""

from __future__ import annotations

import html
import sys
import time
from typing import Any

from ..base.models import cost as model_cost
from .display import format_cost, in_kernel

__all__ = ["Progress"]

SHOW_EVERY = 0.2  # seconds between updates of the bar, or of the text line in place
LOG_EVERY = 10.0  # ... when stderr is a log file or a pipe: one line each time


class Progress:
    """Counts outcomes (`Result` or `FailedRow`) and shows them; ``enabled=False`` shows nothing."""

    def __init__(self, total: int, *, enabled: bool = True, label: str = "llmkit map") -> None:
        self.total, self.label = total, label
        self.done = self.errors = self.cached = self.tokens = 0
        self.cost: float | None = 0.0
        self.last_error = self.note = ""
        self.started = time.perf_counter()
        self._shown_at = float("-inf")
        self._width = 0  # of the last text line, to overwrite it fully
        self._closed = False
        self._widgets: tuple[Any, Any] | None = None
        self._enabled = enabled
        kernel = enabled and in_kernel()
        self._inline = kernel or sys.stderr.isatty()  # "\r" rewrites the line in place
        if kernel:
            try:
                self._widgets = _make_widgets(total, label)
            except ImportError:  # no ipywidgets: the text line, which notebooks show too
                pass

    def add(self, outcome: Any) -> None:
        """Count one finished row."""
        self.done += 1
        completion = getattr(outcome, "completion", None)
        if completion is None:
            self.errors += 1
            error = getattr(outcome, "error", None)
            self.last_error = f"{type(error).__name__}: {error}"
        elif completion.cached:
            self.cached += 1
        else:
            usage = completion.usage
            self.tokens += usage.get("total_tokens", 0)
            cost = model_cost(completion.model, completion.response.get("usage"))
            self.cost = None if cost is None or self.cost is None else self.cost + cost
        self.refresh()

    def counts(self) -> str:
        """Rows, errors, cached, tokens, cost, rate, elapsed time, and a note if stopped early."""
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        errors = f"{self.errors} error{'' if self.errors == 1 else 's'}"
        return (f"{self.done}/{self.total} rows, {errors}, {self.cached} cached, "
                f"{self.tokens:,} tokens, cost {format_cost(self.cost)}, "
                f"{self.done / elapsed:.1f} rows/s, {elapsed:.1f} s{self.note}")

    def refresh(self, *, force: bool = False) -> None:
        """Show the current counts, at most every `SHOW_EVERY` (`LOG_EVERY`) seconds unless forced."""
        if not self._enabled or self._closed:
            return
        now = time.perf_counter()
        inline = self._widgets is not None or self._inline
        if not force and now - self._shown_at < (SHOW_EVERY if inline else LOG_EVERY):
            return
        self._shown_at = now
        if self._widgets is not None:
            bar, text = self._widgets
            bar.value = self.done
            shown = html.escape(self.counts())
            if self.last_error:
                shown += f"<br>last error: {html.escape(self.last_error[:300])}"
            text.value = f"<span style='font-family: monospace'>{shown}</span>"
        else:
            line = f"{self.label}: {self.counts()}"
            sys.stderr.write(f"\r{line:<{self._width}}" if inline else line + "\n")
            self._width = len(line)
            sys.stderr.flush()

    def close(self, *, interrupted: bool = False) -> None:
        """Show the final counts once; ``interrupted`` marks a run stopped early."""
        if self._closed:
            return
        if interrupted:
            self.note = " - interrupted: finished answers are cached, run again to resume"
        self.refresh(force=True)
        if self._widgets is not None:
            self._widgets[0].bar_style = ("warning" if interrupted else
                                          "danger" if self.errors else "success")
        elif self._enabled and self._inline:
            sys.stderr.write("\n")
        self._closed = True


def _make_widgets(total: int, label: str) -> tuple[Any, Any]:
    import ipywidgets
    from IPython.display import display
    bar = ipywidgets.IntProgress(value=0, min=0, max=max(total, 1), description=label)
    text = ipywidgets.HTML()
    display(ipywidgets.HBox([bar, text]))
    return bar, text
