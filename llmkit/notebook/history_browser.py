"""`HistoryBrowser`: the run history as an ipywidget (``%llm_history``): a search box, filters,
a table of runs; a selected run shows in full, opens in the playground or copies as code.

Made of stock widgets (no front-end code to install); the table is one ``Select`` whose options
are the rows, so a click or the arrow keys select a run. Every HTML value is built by
`llmkit.notebook.runs_display`, which escapes user, model and server text.

A widget view whose kernel is gone shows "Error displaying widget" and JupyterLab does not fall
back to the HTML beside it, so `show` displays two outputs: a static one (the table and the
selected run, as text/html, text/plain and text/markdown), kept up to date while the widget is
used, then the widget. A style rule hides the static output while the live widget sits right
after it (JupyterLab's output classes, CSS ``:has``), and hides the failed widget view when the
kernel is gone, so the live notebook shows the widget and a reopened one the static table; where
the rule does not apply (an untrusted notebook, another front end) both show.

CSS classes: ``llmkit-run-history`` (the widget), ``llmkit-run-search``, ``llmkit-run-model``,
``llmkit-run-errors``, ``llmkit-run-cached``, ``llmkit-run-columns``, ``llmkit-run-rows``,
``llmkit-run-detail``, ``llmkit-run-open``, ``llmkit-run-code-toggle``, ``llmkit-run-code-view``,
``llmkit-run-playground``; ``llmkit-run-history-static`` (the static output).
"""

from __future__ import annotations

import html
import re
from typing import Any

import ipywidgets as widgets

from ..base.errors import ConfigError
from ..base.runs import Run, Runs, prompt_text
from ..calls.llmcall import LLMCall
from ..clients.history import history, history_file, spend
from ..clients.params import CHAT
from . import runs_display
from .playground import Playground

__all__ = ["HistoryBrowser", "call_from_run", "show"]

ALL_MODELS = "all models"
_SPACE = "\u00a0"  # an option's text collapses runs of plain spaces; columns need them kept
_WIDTHS = {"time": 14, "model": 16, "prompt": 26, "answer": 26, "tokens": 6, "cost": 9,
           "latency": 7, "cache": 5}  # 120 characters: about 800 px at 11 px
_STYLE = ("<style>"
          # the live widget right after the static output: hide the static one
          ".jp-OutputArea-child:has(.llmkit-run-history-static):has(+ .jp-OutputArea-child "
          ".llmkit-run-history){display:none}"
          # the static output with no live widget after it (kernel gone): hide the failed view
          ".jp-OutputArea-child:has(.llmkit-run-history-static) + .jp-OutputArea-child:not(:has("
          ".llmkit-run-history)){display:none}"
          ".llmkit-run-rows select,.llmkit-run-columns{font-family:var(--jp-code-font-family,"
          "monospace);font-size:11px}"
          "</style>")
_TEMPLATE_SYNTAX = re.compile(r"\{[{%#]|^[\w./\\-]+\.[A-Za-z0-9]+$")


def _literal(text: str) -> str:
    """``text`` as a template that renders to itself: Jinja2 syntax, or a line that would be read
    as a template file name, goes inside ``{% raw %}``."""
    if not _TEMPLATE_SYNTAX.search(text.strip()) or "{% endraw %}" in text:
        return text
    return "{% raw %}" + text + "{% endraw %}"


def call_from_run(run: Run) -> LLMCall:
    """An `LLMCall` that sends what ``run`` sent: its first system message and its last user
    message as templates that render to themselves, its model and its chat parameters.

    Raises `ConfigError` for an embedding run (there is no chat to play with).
    """
    if run.kind != "chat":
        raise ConfigError(f"run {run.id} is an {run.kind} run: the playground edits chat prompts")
    system = [m for m in run.messages if m.get("role") in ("system", "developer")][:1]
    user = [m for m in run.messages if m.get("role") == "user"][-1:]
    params = {k: v for k, v in run.params.items() if k in CHAT and k != "model"}
    return LLMCall(_literal(prompt_text(system)), _literal(prompt_text(user)) or None,
                   model=run.model, **params)


def _row_label(run: Run) -> str:
    cells = runs_display.cells(run)
    cells["time"] = f"{run.started:%m-%d %H:%M:%S}"
    parts = []
    for name, width in _WIDTHS.items():
        text = runs_display.short(cells[name], width)
        parts.append(text.rjust(width) if name in runs_display.NUMERIC else text.ljust(width))
    return "  ".join(parts).rstrip().replace(" ", _SPACE)


def _columns() -> str:
    head = "  ".join(n.rjust(w) if n in runs_display.NUMERIC else n.ljust(w)
                     for n, w in _WIDTHS.items()).rstrip()
    return f'<div style="white-space:pre;padding-left:4px">{html.escape(head)}</div>'


class HistoryBrowser(widgets.VBox):
    """The run history, filtered as ``llmkit.history`` filters it: ``search`` (words in prompts
    and answers), ``model``, ``errors``, ``cached``; ``since`` and ``limit`` stay as given.

    ``runs`` are the runs shown, ``selected`` the one shown in full (None: none). `select`,
    `open_playground` and `code` are what a click does, for code and tests without a front end.
    """

    def __init__(self, search: str | None = None, *, model: str | None = None, since: Any = None,
                 errors: bool | None = None, cached: bool | None = None, limit: int | None = 100,
                 path: str | None = None) -> None:
        self.since, self.limit, self.path = since, limit, path
        self.runs = Runs()
        self.selected: Run | None = None
        self.playground: Playground | None = None
        self.static: Any = None  # the display handle of the static output (set by `show`)
        models = [str(r["model"]) for r in spend(since, "model", path=path) if r.get("model")]
        if model and model not in models:
            models.insert(0, model)
        self.search = widgets.Text(search or "", placeholder="search prompts and answers",
                                   continuous_update=False, description="search",
                                   layout=widgets.Layout(width="40%")).add_class("llmkit-run-search")
        self.model = widgets.Dropdown(options=[ALL_MODELS, *sorted(models)],
                                      value=model or ALL_MODELS,
                                      description="model").add_class("llmkit-run-model")
        self.errors = widgets.Checkbox(bool(errors), description="errors only",
                                       indent=False).add_class("llmkit-run-errors")
        self.cached = widgets.Checkbox(bool(cached), description="cached only",
                                       indent=False).add_class("llmkit-run-cached")
        self._successes_only, self._sent_only = errors is False, cached is False
        self.count = widgets.HTML()
        self.rows = widgets.Select(options=[], rows=12, layout=widgets.Layout(width="100%")
                                   ).add_class("llmkit-run-rows")
        auto = widgets.Layout(width="auto")
        self.open_button = widgets.Button(description="open in playground", icon="sliders",
                                          layout=auto,
                                          tooltip="an LLMCall of this run's system and user "
                                          "messages, model and parameters, in the playground"
                                          ).add_class("llmkit-run-open")
        self.code_button = widgets.ToggleButton(description="copy as code", icon="code",
                                                layout=auto,
                                                tooltip="Python that sends this run's request "
                                                "again (one click selects it all)"
                                                ).add_class("llmkit-run-code-toggle")
        self.code_view = widgets.HTML().add_class("llmkit-run-code-view")
        self.detail = widgets.HTML().add_class("llmkit-run-detail")
        self.playground_box = widgets.VBox().add_class("llmkit-run-playground")
        self.actions = widgets.HBox([self.open_button, self.code_button])
        super().__init__([widgets.HTML(_STYLE),
                          widgets.HBox([self.search, self.model, self.errors, self.cached]),
                          self.count, widgets.HTML(_columns()).add_class("llmkit-run-columns"),
                          self.rows, self.detail, self.actions, self.code_view,
                          self.playground_box])
        self.add_class("llmkit-run-history")
        for control in (self.search, self.model, self.errors, self.cached):
            control.observe(lambda _: self.refresh(), "value")
        self.rows.observe(self._selected, "value")
        self.open_button.on_click(lambda _: self.open_playground())
        self.code_button.observe(lambda _: self._show_code(), "value")
        self.refresh()

    def filters(self) -> dict[str, Any]:
        """The arguments of ``llmkit.history`` the controls stand for now."""
        return {"search": self.search.value.strip() or None,
                "model": None if self.model.value == ALL_MODELS else self.model.value,
                "since": self.since,
                "errors": True if self.errors.value else (False if self._successes_only else None),
                "cached": True if self.cached.value else (False if self._sent_only else None),
                "limit": self.limit, "path": self.path}

    def refresh(self) -> None:
        """Read the runs the filters select again, and show them (no run selected)."""
        self.runs = history(**self.filters())
        n = len(self.runs)
        more = " (the newest; raise --limit for more)" if self.limit is not None and n >= self.limit else ""
        if history_file(self.path) is None:
            more = " (the run history is off: HISTORY=False records nothing)"
        self.count.value = (f'<span style="{runs_display.NOTE_STYLE}">{n} run{"" if n == 1 else "s"}, '
                            f'newest first{html.escape(more)}; select one to see it in full</span>')
        self.rows.options = [(_row_label(run), i) for i, run in enumerate(self.runs)]
        self.rows.rows = max(2, min(12, n))
        self.rows.value = None
        self.select(None)

    def _selected(self, change: Any) -> None:
        index = change["new"]
        self.select(None if index is None else self.runs[index])

    def select(self, run: Run | None) -> None:
        """Show ``run`` in full below the table (None: nothing), with its buttons."""
        self.selected = run
        self.detail.value = runs_display.run_html(run) if run is not None else ""
        self.actions.layout.display = None if run is not None else "none"
        for old in self.playground_box.children:
            old.close()
        self.playground_box.children = []
        self.playground = None
        self._show_code()
        self.update_static()

    def code(self) -> str:
        """The selected run's request as Python (empty when none is selected)."""
        return runs_display.run_code(self.selected) if self.selected is not None else ""

    def _show_code(self) -> None:
        shown = self.code_button.value and self.selected is not None
        self.code_view.layout.display = None if shown else "none"
        self.code_view.value = f"{runs_display.CODE_BLOCK}{html.escape(self.code())}</pre>" if shown else ""

    def open_playground(self) -> Playground | None:
        """A playground on the selected run's `LLMCall` (see `call_from_run`), shown below the
        table; None when no run is selected, or after showing why it cannot open."""
        if self.selected is None:
            return None
        for old in self.playground_box.children:
            old.close()
        try:
            self.playground = Playground(call_from_run(self.selected))
        except Exception as exc:  # e.g. an embedding run: shown, the browser keeps working
            self.playground = None
            text = html.escape(f"cannot open this run in the playground: {type(exc).__name__}: {exc}")
            self.playground_box.children = [widgets.HTML(f'<div style="color:#c62828">{text}</div>')]
            return None
        self.playground_box.children = [self.playground]
        return self.playground

    def static_bundle(self) -> dict[str, Any]:
        """The table (and the selected run) as a static bundle: what a reopened notebook shows."""
        table = runs_display.mimebundle(self.runs)
        run = runs_display.mimebundle(self.selected) if self.selected is not None else None
        sep = {"text/plain": "\n\n", "text/html": "", "text/markdown": "\n\n"}
        bundle = {k: v + (sep[k] + run[k] if run else "") for k, v in table.items()}
        bundle["text/html"] = (f'<div class="llmkit-run-history-static">{_STYLE}'
                               f'{bundle["text/html"]}</div>')
        return bundle

    def update_static(self) -> None:
        if self.static is not None:
            self.static.update(self.static_bundle(), raw=True)

    def __repr__(self) -> str:
        return f"HistoryBrowser({len(self.runs)} runs, filters={self.filters()!r})"


def show(search: str | None = None, **filters: Any) -> HistoryBrowser:
    """Display the static table, then return the widget (IPython displays it right after)."""
    from IPython.display import display
    browser = HistoryBrowser(search, **filters)
    browser.static = display(browser.static_bundle(), raw=True, display_id=True)
    return browser
