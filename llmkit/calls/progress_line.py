"""Progress of a batch run as a text line on stderr: what a script shows, with nothing loaded from
the notebook layer (in a kernel the batch shows `llmkit.notebook.progress.Progress`, a widget
built on this class).

It shows rows done out of the total, errors, cached answers, tokens spent and what they cost
(`Completion.paid`: answers from the cache and the local model are free), rows per second, and, when
``BUDGET_USD`` or ``DAILY_BUDGET_USD`` is set, spend against it (this process's, read from memory;
today's, read from the run history once at the start, plus the batch's own cost). On a terminal
the line is rewritten in place every `SHOW_EVERY` seconds; in a log file or a pipe one line is
written every `LOG_EVERY` seconds.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from ..base import config
from ..base.money import format_cost
from ..clients import budget
from ..clients.history import history_file, spent_today

__all__ = ["LOG_EVERY", "SHOW_EVERY", "ProgressLine"]

SHOW_EVERY = 0.2  # seconds between updates of the line in place (or of a widget)
LOG_EVERY = 10.0  # ... when stderr is a log file or a pipe: one line each time


class ProgressLine:
    """Counts outcomes (`Result` or `FailedRow`) and shows them; ``enabled=False`` shows nothing.

    ``inline``: rewrite the line in place with ``"\\r"`` (default: when stderr is a terminal).
    Subclasses show the counts elsewhere by overriding `show` and `finish`.
    """

    def __init__(self, total: int, *, enabled: bool = True, label: str = "llmkit map",
                 inline: bool | None = None) -> None:
        self.total, self.label = total, label
        self.done = self.errors = self.cached = self.tokens = 0
        self.cost: float | None = 0.0
        self.estimated = False  # some of the cost comes from llmkit's token counts
        self.last_error = self.note = ""
        self.started = time.perf_counter()
        self.ended: float | None = None  # set by close: the final rate and time stay as shown
        self.enabled = enabled
        self.inline = sys.stderr.isatty() if inline is None else inline
        self.budget, self.daily_budget, self.spent_before_today = _budgets() if enabled else (None,) * 3
        self._shown_at = float("-inf")
        self._width = 0  # of the last text line, to overwrite it fully
        self._closed = False

    def add(self, outcome: Any) -> None:
        """Count one finished row."""
        self.done += 1
        completion = getattr(outcome, "completion", None)
        if completion is None:
            self.errors += 1
            error = getattr(outcome, "error", None)
            self.last_error = f"{type(error).__name__}: {error}"
        else:
            if completion.cached:
                self.cached += 1
            else:
                self.tokens += completion.usage.get("total_tokens", 0)
            cost = completion.paid  # what `Completion.paid` says: $0 for the cache and the local model
            self.estimated = self.estimated or (bool(cost) and completion.cost_estimated)
            self.cost = None if cost is None or self.cost is None else self.cost + cost
        self.refresh()

    def items(self) -> list[str]:
        """Rows, errors, cached, tokens, cost, rate, elapsed time: the same text while running and
        at the end (cost always through `format_cost`, as every llmkit display shows it)."""
        elapsed = max((self.ended or time.perf_counter()) - self.started, 1e-9)
        return [f"{self.done}/{self.total} rows", f"{self.errors} error{'' if self.errors == 1 else 's'}",
                f"{self.cached} cached", f"{self.tokens:,} tokens",
                f"cost {format_cost(self.cost, estimated=self.estimated)}",
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

    def refresh(self, *, force: bool = False) -> None:
        """Show the current counts, at most every `SHOW_EVERY` (`LOG_EVERY`) seconds unless forced."""
        if not self.enabled or self._closed:
            return
        now = time.perf_counter()
        if not force and now - self._shown_at < (SHOW_EVERY if self.inline else LOG_EVERY):
            return
        self._shown_at = now
        self.show()

    def show(self) -> None:
        """Write the counts on stderr: over the last line when inline, else as a new line."""
        line = f"{self.label}: {self.counts()}"
        sys.stderr.write(f"\r{line:<{self._width}}" if self.inline else line + "\n")
        self._width = len(line)
        sys.stderr.flush()

    def waiting(self, in_flight: int) -> None:
        """After Ctrl-C: say that the run ends once the requests already sent have finished."""
        self.note = (f"interrupted: waiting for {in_flight} request{'' if in_flight == 1 else 's'} "
                     "in flight (Ctrl-C again not to wait)")
        self.refresh(force=True)

    def close(self, *, interrupted: bool = False) -> None:
        """Show the final counts once; ``interrupted`` marks a run stopped early."""
        if self._closed:
            return
        self.ended = time.perf_counter()
        if interrupted:
            self.note = ("interrupted: finished answers are cached, run again to resume; the rows "
                         "done so far: llmkit.calls.batch.last_batch()")
        self.refresh(force=True)
        if self.enabled:
            self.finish()
        self._closed = True

    def finish(self) -> None:
        """After the final counts: end the line rewritten in place."""
        if self.inline:
            sys.stderr.write("\n")


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
