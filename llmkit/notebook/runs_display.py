"""Static displays of the run history: a `Run` (the call's own view under a line saying when,
where and in what it ran), `Runs` (a table), `Spend` (a table with a total row), `CostSummary`
(what ``%llm_cost`` shows), and `run_code`, Python that makes a run's call again.

Like `llmkit.notebook.display`, static on purpose (a saved notebook reads the same without its
kernel) and every text that came from a user, a model or a server is escaped: in HTML by
``html.escape``, in Markdown tables by a backslash before every ASCII punctuation character.
Styles are inline with plain fallbacks, since JupyterLab's sanitizer drops what it does not know.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Any

from ..base import config
from ..base.money import format_cost
from ..base.runs import Run, Runs, Spend, prompt_text
from ..base.secrets import HIDDEN, is_credential
from ..clients import budget
from ..clients.history import spend
from ..clients.params import CHAT, EMBEDDING
from .kit import BOX_STYLE
from .renderers import to_html, to_markdown, to_text
from .summary import CallSummary, scrubber_for, summarize

__all__ = ["CODE_BLOCK", "COLUMNS", "NOTE_STYLE", "NUMERIC", "WIDTH", "CostSummary", "cells",
           "cost_summary", "mimebundle", "run_code", "run_html", "runs_html", "runs_text", "short",
           "user_text"]

WIDTH = 60  # characters of a prompt or an answer a table shows
NOTE_STYLE = "font-size:0.85em;color:var(--jp-ui-font-color2,#666)"
"""A small grey line: a count of runs, a ``<summary>``."""
_ERROR = "color:#c62828;white-space:pre-wrap;margin:2px 0 6px 0"
_TABLE = "border-collapse:collapse;font-size:0.9em;margin:2px 0"
_CELL = "padding:2px 8px;border-bottom:1px solid rgba(128,128,128,0.25);text-align:left;vertical-align:top"
_NUMBER = _CELL.replace("text-align:left", "text-align:right") + ";white-space:nowrap"
CODE_BLOCK = ('<pre class="llmkit-run-code" style="user-select:all;white-space:pre-wrap;margin:0.2em 0;'
              'padding:6px;border:1px solid rgba(128,128,128,0.4);border-radius:4px">')
"""The opening tag of a block of code that one click selects whole (closed by ``</pre>``)."""
_MD_PUNCT = re.compile(r"([!-/:-@\[-`{-~])")
COLUMNS = ("time", "model", "prompt", "answer", "tokens", "cost", "latency", "cache")
"""The columns of a table of runs, in order (the keys of `cells`)."""
NUMERIC = {"tokens", "cost", "latency"}
"""The columns aligned to the right."""


def short(text: str, width: int = WIDTH) -> str:
    """``text`` on one line (whitespace collapsed), cut to ``width`` characters with an ellipsis."""
    text = " ".join(text.split())
    return text if len(text) <= width else text[:width - 1] + "…"


def user_text(run: Run) -> str:
    """What the table shows as a run's prompt: its last user message (inputs for embeddings)."""
    asked = [m for m in run.messages if m.get("role") in ("user", "input")]
    if run.kind == "embedding":
        return prompt_text(asked)
    return prompt_text(asked[-1:]) if asked else run.prompt


def cells(run: Run) -> dict[str, str]:
    """A run's row in a table of runs: the text of each of `COLUMNS` (not yet scrubbed)."""
    answer = f"{run.error}: {run.error_message or ''}" if run.error else run.answer
    if not answer and run.tool_calls:
        answer = "[tool calls] " + ", ".join(str((c.get("function") or {}).get("name"))
                                             for c in run.tool_calls)
    if run.kind == "embedding" and not run.error:
        answer = "[embedding]"
    return {"time": f"{run.started:%Y-%m-%d %H:%M:%S}", "model": run.model,
            "prompt": short(user_text(run)), "answer": short(answer),
            "tokens": f"{run.tokens:,}" if run.usage else "", "cost": format_cost(run.cost),
            "latency": f"{run.latency:.2f} s", "cache": "hit" if run.cached else ""}


def _md(text: str) -> str:
    """Text for a Markdown table cell: one line, every ASCII punctuation character escaped (no
    tag, link, emphasis, code span or column break can come of it)."""
    return _MD_PUNCT.sub(r"\\\1", " ".join(text.split()))


def _table(head: list[str], rows: list[list[str]], numeric: set[int], css_class: str,
           last_bold: bool = False) -> str:
    heading = "".join(f'<th style="{_NUMBER if i in numeric else _CELL}">{html.escape(h)}</th>'
                      for i, h in enumerate(head))
    body = []
    for n, row in enumerate(rows):
        bold = ";font-weight:600" if last_bold and n == len(rows) - 1 else ""
        body.append("<tr>" + "".join(
            f'<td style="{_NUMBER if i in numeric else _CELL}{bold}">{html.escape(c)}</td>'
            for i, c in enumerate(row)) + "</tr>")
    return (f'<table class="{css_class}" style="{_TABLE}"><thead><tr>{heading}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table>')


def _text_table(head: list[str], rows: list[list[str]], numeric: set[int]) -> str:
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    return "\n".join("  ".join(c.rjust(w) if i in numeric else c.ljust(w)
                               for i, (c, w) in enumerate(zip(row, widths, strict=True))).rstrip()
                     for row in [head, *rows])


def _md_table(head: list[str], rows: list[list[str]], numeric: set[int]) -> str:
    lines = ["| " + " | ".join(_md(h) for h in head) + " |",
             "|" + "|".join("---:" if i in numeric else "---" for i in range(len(head))) + "|"]
    lines += ["| " + " | ".join(_md(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


# -- Runs -----------------------------------------------------------------------------------------

def _rows(runs: Runs) -> list[list[str]]:
    scrub = scrubber_for(None)
    return [[scrub(c) for c in cells(run).values()] for run in runs]


def runs_text(runs: Runs) -> str:
    if not runs:
        return "no runs"
    numeric = {COLUMNS.index(c) for c in NUMERIC}
    return _text_table(list(COLUMNS), _rows(runs), numeric)


def runs_html(runs: Runs) -> str:
    """The table of runs (class ``llmkit-runs``), or a line saying there are none."""
    if not runs:
        return '<div class="llmkit-runs"><i>no runs</i></div>'
    numeric = {COLUMNS.index(c) for c in NUMERIC}
    return _table(list(COLUMNS), _rows(runs), numeric, "llmkit-runs")


def _runs_bundle(runs: Runs) -> dict[str, Any]:
    numeric = {COLUMNS.index(c) for c in NUMERIC}
    count = f"{len(runs)} run{'' if len(runs) == 1 else 's'}, newest first"
    return {"text/plain": f"{count}\n{runs_text(runs)}",
            "text/html": f'<div style="{NOTE_STYLE}">{count}</div>{runs_html(runs)}',
            "text/markdown": f"{count}\n\n" + (_md_table(list(COLUMNS), _rows(runs), numeric)
                                               if runs else "no runs")}


# -- one Run --------------------------------------------------------------------------------------

def _where(run: Run) -> list[str]:
    """When, where and in what the run ran: time, host, notebook and cell, batch, chat, experiment."""
    items = [f"run {run.id}", f"{run.started:%Y-%m-%d %H:%M:%S}", run.host]
    if run.notebook:
        items.append(f"notebook {run.notebook}" + (f" · cell {run.cell_id}" if run.cell_id else ""))
    items += [f"{label} {value}" for label, value in (("batch", run.batch_id), ("chat", run.chat_id),
                                                      ("experiment", run.experiment)) if value]
    return items


def _summary(run: Run) -> CallSummary:
    s = replace(summarize(run.completion), title="Run")
    if run.kind == "embedding" or (run.error and not run.answer and not run.tool_calls):
        s = replace(s, output=None)  # no answer: the prompt shows, open
    if not run.usage:
        s = replace(s, usage=None, cost=None)
    return s


def _error(run: Run) -> str:
    return f"{run.error}: {run.error_message or ''}".rstrip(": ") if run.error else ""


def run_html(run: Run) -> str:
    """The run as the call's own view (answer, prompt, footer) with a line above it saying when
    and where it ran, its error if it failed, and below it the call as code to copy."""
    scrub = scrubber_for(None)
    call = to_html(_summary(run))
    opening = f'<div class="llmkit-call" style="{BOX_STYLE}">'
    body = call[len(opening):-len("</div>")] if call.startswith(opening) else call
    where = " · ".join(f'<span style="white-space:nowrap">{html.escape(scrub(i))}</span>'
                       for i in _where(run))
    error = (f'<div class="llmkit-run-error" style="{_ERROR}">{html.escape(scrub(_error(run)))}'
             f'</div>' if run.error else "")
    code = (f'<details class="llmkit-run-code-block"><summary style="{NOTE_STYLE};cursor:pointer">'
            f'as code, to copy</summary>{CODE_BLOCK}{html.escape(run_code(run))}</pre></details>')
    return (f'<div class="llmkit-call llmkit-run" style="{BOX_STYLE}">'
            f'<div class="llmkit-run-where" style="{NOTE_STYLE};margin-bottom:4px">{where}</div>'
            f'{error}{body}{code}</div>')


def _run_bundle(run: Run) -> dict[str, Any]:
    s = _summary(run)
    scrub = scrubber_for(None)
    where = scrub(" · ".join(_where(run)))
    error = scrub(_error(run))
    text = "\n".join([where, *([f"error: {error}"] if error else []), to_text(s)])
    markdown = "\n\n".join([_md(where), *([f"**error:** {_md(error)}"] if error else []),
                            to_markdown(s)])
    return {"text/plain": text, "text/html": run_html(run), "text/markdown": markdown}


# -- the call as code -----------------------------------------------------------------------------

def run_code(run: Run) -> str:
    """Python that sends the run's request again through the client of its api type: the
    messages and model as recorded, and the parameters the API knows (``stream`` and the like are
    left out). Credential-like parameters are left as comments; configured keys read <hidden>."""
    vocabulary = EMBEDDING if run.kind == "embedding" else CHAT
    lines = ["import llmkit", ""]
    if run.kind == "embedding":
        texts = [m.get("content") for m in run.messages]
        lines += [f"vectors = llmkit.client({run.api_type!r}).get_embedding(",
                  f"    {texts!r},"]
    else:
        lines += [f"message = llmkit.client({run.api_type!r}).send_message(", "    ["]
        lines += [f"        {m!r}," for m in run.messages]
        lines.append("    ],")
    lines.append(f"    model={run.model!r},")
    for name, value in run.params.items():
        if name not in vocabulary or name == "model":
            continue
        if is_credential(name, value):
            lines.append(f"    # {name}={HIDDEN}: credential-like, add it yourself")
        else:
            lines.append(f"    {name}={value!r},")
    lines.append(")")
    return scrubber_for(None)("\n".join(lines))


# -- Spend and %llm_cost --------------------------------------------------------------------------

def _spend_rows(spend: Spend) -> tuple[list[str], list[list[str]]]:
    head = [spend.by, "runs", "cached", "errors", "tokens", "cost"]
    def row(name: str, r: dict[str, Any]) -> list[str]:
        cost = format_cost(r.get("cost", 0.0))
        if r.get("unpriced"):
            cost += f" + {r['unpriced']} unpriced"
        return [name, f"{r.get('runs', 0):,}", f"{r.get('cached_runs', 0):,}",
                f"{r.get('errors', 0):,}", f"{int(r.get('total_tokens', 0)):,}", cost]
    rows = [row(str(r.get(spend.by) or "(none)"), r) for r in spend]
    return head, [*rows, row("total", spend.total)]


def _spend_bundle(spend: Spend) -> dict[str, Any]:
    head, rows = _spend_rows(spend)
    numeric = {1, 2, 3, 4, 5}
    return {"text/plain": _text_table(head, rows, numeric),
            "text/html": _table(head, rows, numeric, "llmkit-spend", last_bold=True),
            "text/markdown": _md_table(head, rows, numeric)}


@dataclass(frozen=True)
class CostSummary:
    """What ``%llm_cost`` shows: today's spend by every process (from the run history; None when
    the history is off), this kernel's, and the budgets with what is left of them."""

    today: Spend | None
    process: float
    budget: float | None = None
    daily_budget: float | None = None

    def lines(self) -> list[tuple[str, str]]:
        rows: list[tuple[str, str]] = []
        if self.today is None:
            rows.append(("today, all processes", "unknown: the run history is off (HISTORY=False)"))
        else:
            total = self.today.total
            rows.append(("today, all processes",
                         f"{format_cost(self.today.cost)} · {total.get('runs', 0):,} runs · "
                         f"{int(total.get('total_tokens', 0)):,} tokens"))
        rows.append(("this kernel", format_cost(self.process)))
        if self.budget is not None:
            rows.append(("BUDGET_USD", f"{format_cost(self.budget)} · "
                                       f"{format_cost(max(self.budget - self.process, 0.0))} left"))
        if self.daily_budget is not None:
            left = ("unknown" if self.today is None
                    else format_cost(max(self.daily_budget - self.today.cost, 0.0)))
            rows.append(("DAILY_BUDGET_USD", f"{format_cost(self.daily_budget)} · {left} left"))
        return rows

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        rows = self.lines()
        body = "".join(f'<tr><td style="{_CELL}">{html.escape(k)}</td>'
                       f'<td style="{_CELL}">{html.escape(v)}</td></tr>' for k, v in rows)
        return {"text/plain": "\n".join(f"{k}: {v}" for k, v in rows),
                "text/html": f'<table class="llmkit-cost" style="{_TABLE}"><tbody>{body}</tbody></table>',
                "text/markdown": "\n".join(f"- **{_md(k)}**: {_md(v)}" for k, v in rows)}


def cost_summary() -> CostSummary:
    """Today's spend by every process (since local midnight), this process's, and the budgets."""
    settings = config.resolve()
    midnight = datetime.combine(date.today(), datetime.min.time())
    today = spend(since=midnight) if settings["history"] else None
    return CostSummary(today, budget.spent(), settings["budget_usd"], settings["daily_budget_usd"])


def mimebundle(obj: Run | Runs | Spend) -> dict[str, Any]:
    """text/plain, text/html and text/markdown of a `Run`, `Runs` or `Spend`."""
    if isinstance(obj, Run):
        return _run_bundle(obj)
    if isinstance(obj, Spend):
        return _spend_bundle(obj)
    return _runs_bundle(obj)
