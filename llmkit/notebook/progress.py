"""Progress of a batch run: in a Jupyter kernel an HTML bar in a stock ``ipywidgets.HTML``, a text
line on stderr elsewhere.

It shows rows done out of the total, errors, cached answers, tokens spent and their estimated cost
(`llmkit.base.models.cost`; answers from the cache cost nothing), rows per second, and, when ``BUDGET_USD``
or ``DAILY_BUDGET_USD`` is set, spend against it (this process's, read from memory; today's, read
from the run history once at the start, plus the batch's own cost). The bar is two segments,
successes and failures, so one failed row out of eight colours an eighth of it red
(``IntProgress`` has one ``bar_style`` for the whole bar). When the batch closes, the widget's output
is replaced by the same HTML as a static text/html + text/plain bundle and the widget is closed: in
a notebook reopened without its kernel a widget view shows "Error displaying widget" and JupyterLab
does not fall back to the HTML beside it.
"""

from __future__ import annotations

import html
import sys
import time
from typing import Any

from ..base import config
from ..base.models import cost as model_cost
from ..clients import budget
from ..clients.history import history_file, spent_today
from .display import format_cost, in_kernel

__all__ = ["Progress"]

SHOW_EVERY = 0.2  # seconds between updates of the bar, or of the text line in place
LOG_EVERY = 10.0  # ... when stderr is a log file or a pipe: one line each time
# Plain colours and inline styles: JupyterLab's sanitizer (a reopened, untrusted notebook) drops
# CSS variables. Each count is one nowrap item, so "12 rows" or "$0.000012" never wraps inside.
_ITEM = '<span style="white-space:nowrap">{}</span>'
_TRACK = ("display:inline-block;width:20em;max-width:100%;height:0.8em;vertical-align:middle;"
          "background-color:rgba(128,128,128,0.25);border-radius:3px;overflow:hidden;white-space:nowrap")
_SEGMENT = ('<span class="llmkit-{}" style="display:inline-block;height:100%;width:{:.2f}%;'
            'background-color:{}"></span>')
OK, FAILED = "#43a047", "#e53935"


class Progress:
    """Counts outcomes (`Result` or `FailedRow`) and shows them; ``enabled=False`` shows nothing."""

    def __init__(self, total: int, *, enabled: bool = True, label: str = "llmkit map") -> None:
        self.total, self.label = total, label
        self.done = self.errors = self.cached = self.tokens = 0
        self.cost: float | None = 0.0
        self.last_error = self.note = ""
        self.started = time.perf_counter()
        self.ended: float | None = None  # set by close: the final rate and time stay as shown
        self._shown_at = float("-inf")
        self._width = 0  # of the last text line, to overwrite it fully
        self._closed = False
        self._view: tuple[Any, Any] | None = None  # the HTML widget and its display handle
        self._enabled = enabled
        self.budget, self.daily_budget, self.spent_before_today = _budgets() if enabled else (None,) * 3
        kernel = enabled and in_kernel()
        self._inline = kernel or sys.stderr.isatty()  # "\r" rewrites the line in place
        if kernel:
            try:
                self._view = _show(self.html())
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

    def items(self) -> list[str]:
        """Rows, errors, cached, tokens, cost, rate, elapsed time: the same text while running and
        at the end (cost always through `format_cost`, as every llmkit display shows it)."""
        elapsed = max((self.ended or time.perf_counter()) - self.started, 1e-9)
        return [f"{self.done}/{self.total} rows", f"{self.errors} error{'' if self.errors == 1 else 's'}",
                f"{self.cached} cached", f"{self.tokens:,} tokens", f"cost {format_cost(self.cost)}",
                *self.budget_items(), f"{self.done / elapsed:.1f} rows/s", f"{elapsed:.1f} s"]

    def budget_items(self) -> list[str]:
        """``"$0.0123 of $1.00 budget"`` (this process's spend, BUDGET_USD) and ``"... of $5.00
        daily budget"`` (today's, DAILY_BUDGET_USD), for the budgets that are set."""
        items = []
        if self.budget is not None:
            items.append(f"{format_cost(budget.spent())} of {format_cost(self.budget)} budget")
        if self.daily_budget is not None:
            today = (None if self.spent_before_today is None or self.cost is None
                     else self.spent_before_today + self.cost)
            items.append(f"{format_cost(today)} of {format_cost(self.daily_budget)} daily budget")
        return items

    def counts(self) -> str:
        """The items on one line, and a note if stopped early."""
        return ", ".join(self.items()) + (f" - {self.note}" if self.note else "")

    def text(self) -> str:
        """text/plain: the counts, and the last error on a line of its own."""
        last = f"\nlast error: {self.last_error[:300]}" if self.last_error else ""
        return f"{self.label}: {self.counts()}{last}"

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

    def refresh(self, *, force: bool = False) -> None:
        """Show the current counts, at most every `SHOW_EVERY` (`LOG_EVERY`) seconds unless forced."""
        if not self._enabled or self._closed:
            return
        now = time.perf_counter()
        inline = self._view is not None or self._inline
        if not force and now - self._shown_at < (SHOW_EVERY if inline else LOG_EVERY):
            return
        self._shown_at = now
        if self._view is not None:
            self._view[0].value = self.html()
        else:
            line = f"{self.label}: {self.counts()}"
            sys.stderr.write(f"\r{line:<{self._width}}" if inline else line + "\n")
            self._width = len(line)
            sys.stderr.flush()

    def waiting(self, in_flight: int) -> None:
        """After Ctrl-C: say that the run ends once the requests already sent have finished."""
        self.note = (f"interrupted: waiting for {in_flight} request{'' if in_flight == 1 else 's'} "
                     "in flight (Ctrl-C again not to wait)")
        self.refresh(force=True)

    def close(self, *, interrupted: bool = False) -> None:
        """Show the final counts once; ``interrupted`` marks a run stopped early. In a kernel the
        widget gives way to a static bundle, which a saved notebook keeps."""
        if self._closed:
            return
        self.ended = time.perf_counter()
        if interrupted:
            self.note = ("interrupted: finished answers are cached, run again to resume; the rows "
                         "done so far: llmkit.calls.batch.last_batch()")
        self.refresh(force=True)
        if self._view is not None:
            widget, handle = self._view
            handle.update({"text/plain": self.text(), "text/html": self.html()}, raw=True)
            widget.close()
        elif self._enabled and self._inline:
            sys.stderr.write("\n")
        self._closed = True


def _budgets() -> tuple[float | None, float | None, float | None]:
    """(BUDGET_USD, DAILY_BUDGET_USD, USD spent today before the batch), read once per batch:
    the daily figure needs the run history's database, too slow to read at every refresh."""
    try:
        settings = config.resolve()
        per_process, daily = settings["budget_usd"], settings["daily_budget_usd"]
        path = history_file() if daily is not None and settings["history"] else None
        return per_process, daily, spent_today(path) if path else None
    except Exception:  # a broken configuration or history: no budget shown, the batch goes on
        return None, None, None


def _show(value: str) -> tuple[Any, Any]:
    import ipywidgets
    from IPython.display import display
    widget = ipywidgets.HTML(value)
    return widget, display(widget, display_id=True)
