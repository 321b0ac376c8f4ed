"""`Playground`: an ipywidget to iterate on an `LLMCall`: edit the templates, run, compare runs.

Made of stock widgets (no front-end code to install). Every HTML value is built by the call's
views (`llmkit.notebook.renderers`) or escaped here, and error messages are stripped of API keys.
`Playground.run` is what the Run button calls, `Playground.apply` what the Apply button calls, so
code and tests can use them without a front end. CSS classes: ``llmkit-playground``, ``llmkit-variables``,
``llmkit-run``, ``llmkit-apply``, ``llmkit-code-toggle``, ``llmkit-code``, ``llmkit-error``,
``llmkit-call`` (a streaming answer), ``llmkit-compare``, ``llmkit-history``,
``llmkit-history-entry``, ``llmkit-pin``.
"""

from __future__ import annotations

import difflib
import html
import re
from dataclasses import dataclass, replace
from typing import Any

import ipywidgets as widgets

from ..base.errors import LLMKitError, MissingVariableError, TemplateError
from ..base.models import chat_models, model_info
from ..base.result import Result
from ..base.secrets import HIDDEN, is_credential
from ..base.templates import Template
from ..calls.llmcall import LLMCall
from ..clients import registry
from .kit import markdown_html
from .renderers import header_html, message_html
from .summary import CallSummary, MessageView, Scrub, scrubber_for, summarize
from .widgets import CallView

__all__ = ["Playground", "PlaygroundRun", "diff_html", "playground"]

_SHOWN_PARAMS = ("temperature", "max_tokens", "max_completion_tokens")
_LABEL = {"description_width": "90px"}
_WORD = re.compile(r"\S+\s*")  # a word and the whitespace after it
# translucent green and red under the theme's own text colour: readable on light and dark themes
_INS = ('<ins style="background:rgba(46,160,67,0.3);color:var(--jp-content-font-color1,inherit);'
        'text-decoration:none">')
_DEL = ('<del style="background:rgba(248,81,73,0.25);color:var(--jp-content-font-color2,inherit)">')
_BORDER = "1px solid var(--jp-border-color2,#ccc)"
_CODE = ('<pre style="user-select:all;white-space:pre-wrap;margin:0;padding:6px;'
         f'border:{_BORDER};border-radius:4px">')


@dataclass
class PlaygroundRun:
    """One run: its number, the call as it was sent, the variables given and the answer."""

    number: int
    call: LLMCall
    variables: dict[str, str]
    result: Result
    html: str
    pin: widgets.ToggleButton
    summary: CallSummary


class Playground(widgets.VBox):
    """Text areas for the system and user templates, one field per template variable, a model
    dropdown, temperature and max-tokens sliders, a Run button and the history of runs (output,
    tokens, cost, latency, cache hit). Pin two or more runs to see them side by side.

    Each run builds a new `LLMCall` from the text areas (the call's client and other parameters
    are kept); ``runs[-1].call`` is the latest. Runs leave ``call`` alone, so trying a prompt
    never changes what code (``call.map``) sends; `apply` (the Apply button) is the one step that
    hands the edits back to ``call``, and `code` (the Code button) shows them as Python to paste.
    An empty variable field counts as not given. Errors (a missing variable, a failed request)
    show in the widget, which keeps working.
    """

    def __init__(self, call: LLMCall, **variables: Any) -> None:
        if not isinstance(call, LLMCall):
            raise LLMKitError(f"playground: expected an LLMCall, got {type(call).__name__}; "
                              f"build one with LLMCall(system, user, ...)")
        self.call = call
        self.runs: list[PlaygroundRun] = []
        self.last_error: BaseException | None = None
        self.fields: dict[str, widgets.Text] = {}
        self._params = dict(call.model_params)
        settings = self._settings()
        self._default_model = str(settings.get("model") or "")
        model = str(self._params.pop("model", None) or self._default_model)
        limits = self._params.pop("max_tokens", None), self._params.pop("max_completion_tokens", None)
        max_tokens = int(limits[0] or limits[1] or settings.get("max_tokens") or 1024)
        temperature = self._params.pop("temperature", settings.get("temperature"))

        area = {"layout": widgets.Layout(width="100%"), "style": _LABEL}
        user = call.user_template.source if call.user_template else ""
        self.system = widgets.Textarea(call.system_template.source, description="system",
                                       rows=3, **area)
        self.user = widgets.Textarea(user, description="user", rows=4, **area)
        self.variables_box = widgets.VBox().add_class("llmkit-variables")
        offered = (model, self._default_model, *chat_models(responses=True))  # call path routes them
        options = list(dict.fromkeys(m for m in offered if m))
        self.model = widgets.Combobox(value=model, options=options, description="model",
                                      ensure_option=False, placeholder="model name", style=_LABEL)
        self.temperature = widgets.FloatSlider(1.0 if temperature is None else float(temperature),
                                               min=0, max=2, step=0.05, description="temperature",
                                               style=_LABEL)
        self.max_tokens = widgets.IntSlider(max_tokens, min=1, max=max(8192, max_tokens),
                                            description="max tokens", style=_LABEL)
        self.stream = widgets.Checkbox(False, description="stream", indent=False)
        self.run_button = widgets.Button(description="Run", button_style="primary",
                                         icon="play").add_class("llmkit-run")
        self.apply_button = widgets.Button(
            description="Apply", icon="check", tooltip="make the LLMCall this playground was "
            "opened on (call.map, call.call) use these templates and parameters",
        ).add_class("llmkit-apply")
        self.code_button = widgets.ToggleButton(description="Code", icon="code",
                                                tooltip="show the LLMCall(...) source to copy"
                                                ).add_class("llmkit-code-toggle")
        self.code_view = widgets.HTML().add_class("llmkit-code")
        self.error = widgets.HTML().add_class("llmkit-error")
        self.view = CallView()
        self.compare = widgets.HBox(layout=widgets.Layout(width="100%")).add_class("llmkit-compare")
        self.history = widgets.VBox().add_class("llmkit-history")
        super().__init__([self.system, self.user, self.variables_box,
                          widgets.HBox([self.model, self.temperature, self.max_tokens]),
                          widgets.HBox([self.run_button, self.stream, self.apply_button,
                                        self.code_button]),
                          self.code_view, self.error, self.view, self.compare, self.history])
        self.add_class("llmkit-playground")
        self.view.layout.display = self.compare.layout.display = "none"
        self.code_view.layout.display = "none"
        self._show_error(None)

        self.system.observe(self._refresh_variables, "value")
        self.user.observe(self._refresh_variables, "value")
        self.model.observe(self._model_changed, "value")
        for edited in (self.system, self.user, self.model, self.temperature, self.max_tokens):
            edited.observe(self._edited, "value")
        self.code_button.observe(self._show_code, "value")
        self.run_button.on_click(lambda _: self.run())
        self.apply_button.on_click(lambda _: self.apply())
        self._refresh_variables()
        self._model_changed()
        for name, value in variables.items():
            if name not in self.fields:
                raise TemplateError(f"playground: the templates use no variable {name!r}; "
                                    f"they use: {', '.join(sorted(self.fields)) or 'none'}")
            self.fields[name].value = str(value)

    def _settings(self) -> dict[str, Any]:
        try:
            return dict((self.call.client or registry.client()).settings())
        except LLMKitError:  # a broken configuration: runs will say what is wrong
            return {}

    def _refresh_variables(self, change: Any = None) -> None:
        """One field per variable of the templates as they are now (values are kept)."""
        try:
            names = list(Template(self.system.value).variables)  # in the order they appear
            if self.user.value.strip():
                names += [n for n in Template(self.user.value).variables if n not in names]
        except LLMKitError as exc:  # mid-edit syntax error: keep the fields, say what is wrong
            self._show_error(exc)
            return
        self._show_error(None)
        for name in [n for n in names if n not in self.fields]:
            self.fields[name] = widgets.Text(description=name, placeholder=f"value of {name}",
                                             layout=widgets.Layout(width="100%"), style=_LABEL)
        self.variables_box.children = [self.fields[name] for name in names]

    def _model(self) -> str:
        return self.model.value.strip() or self._default_model

    def _model_changed(self, change: Any = None) -> None:
        info = model_info(self._model())
        self.temperature.disabled = info.reasoning
        self.temperature.tooltip = "reasoning models take no temperature" if info.reasoning else ""
        self.model.tooltip = ("served on the Responses API only: runs go to /v1/responses"
                              if info.mode == "responses" else "")

    def _request_params(self) -> dict[str, Any]:
        params = {**self._params, "max_tokens": self.max_tokens.value}
        if self.model.value.strip():
            params["model"] = self.model.value.strip()
        if not self.temperature.disabled:
            params["temperature"] = self.temperature.value
        return params

    def _edited(self, change: Any = None) -> None:
        """The Apply button says whether ``call`` has the edits; the code shown follows them."""
        self.apply_button.description, self.apply_button.button_style = "Apply", ""
        self._show_code()

    def _show_code(self, change: Any = None) -> None:
        """The code, selected whole by one click (``user-select:all``), while Code is pressed."""
        self.code_view.layout.display = None if self.code_button.value else "none"
        self.code_view.value = (f"{_CODE}{html.escape(self.code())}</pre>"
                                if self.code_button.value else "")

    def _build(self) -> LLMCall:
        return LLMCall(self.system.value, self.user.value if self.user.value.strip() else None,
                       client=self.call.client, **self._request_params())

    def apply(self) -> LLMCall | None:
        """Make ``call`` (the `LLMCall` this playground was opened on) use the templates and
        parameters as edited, so code that uses it (``call.map(rows)``) sends what was tried here.

        Returns ``call``, or None after showing the error (a template that does not compile), in
        which case nothing changed. Each attribute is replaced by a new object, never changed in
        place, so a thread running ``call`` meanwhile reads either the old value or the new one.
        """
        self._show_error(None)
        try:
            new = self._build()
        except Exception as exc:  # shown in the widget, like a failed run
            self._show_error(exc)
            return None
        self.call.system_template = new.system_template
        self.call.user_template = new.user_template
        self.call.model_params = dict(new.model_params)
        self.apply_button.description, self.apply_button.button_style = "Applied", "success"
        return self.call

    def code(self) -> str:
        """The Python source of an ``LLMCall(...)`` equal to the playground's templates and
        parameters, to paste into a notebook (strings as ``repr``, so they come back exactly).

        Credential-like parameters and the call's client object cannot be written as code and
        must not be shown: they appear as comments. Configured API keys read ``<hidden>``.
        """
        user = self.user.value if self.user.value.strip() else None
        lines = [f"    {self.system.value!r},", f"    {user!r},"]
        for name, value in self._request_params().items():
            if is_credential(name, value):
                lines.append(f"    # {name}={HIDDEN}: credential-like, add it yourself")
            else:
                lines.append(f"    {name}={value!r},")
        if self.call.client is not None:
            lines.append("    # client=...: the client object the playground's call was given")
        return scrubber_for(self.call)("LLMCall(\n" + "\n".join(lines) + "\n)")

    def run(self) -> PlaygroundRun | None:
        """Run the templates as edited with the fields' variables, the model and the sliders.

        Returns the new run (also added to the history), or None after showing the error.
        """
        self.run_button.disabled = True
        self._show_error(None)
        try:
            call = self._build()
            given = {name: self.fields[name].value for name in call.variables
                     if name in self.fields and self.fields[name].value}
            if self.stream.value:  # the answer fills in as it arrives, until it joins the history
                self.view.update(call)
                self.view.layout.display = None
            result = call.run(given, stream=self.stream.value,
                              on_delta=self.view.append if self.stream.value else None)
        except Exception as exc:  # shown in the widget, which keeps working; kept in last_error
            self._show_error(exc)
            return None
        finally:
            self.run_button.disabled = False
            self.view.layout.display = "none"
        return self._add_run(call, given, result)

    def _add_run(self, call: LLMCall, given: dict[str, str], result: Result) -> PlaygroundRun:
        number = len(self.runs) + 1
        s = summarize(result)
        s = replace(s, title=f"run {number}",
                    params={k: v for k, v in s.params.items() if k in _SHOWN_PARAMS})
        pin = widgets.ToggleButton(description="pin", icon="thumb-tack",
                                   tooltip="pin two or more runs to compare them side by side",
                                   layout=widgets.Layout(width="70px")).add_class("llmkit-pin")
        run = PlaygroundRun(number, call, given, result, _run_html(s, given), pin, s)
        entry = widgets.HBox([pin, widgets.HTML(run.html + _prompt_html(s),
                                                layout=widgets.Layout(flex="1 1 auto"))],
                             layout=widgets.Layout(border_top=_BORDER, padding="4px 0"))
        pin.observe(lambda _: self._refresh_compare(), "value")
        self.runs.append(run)
        self.history.children = (entry.add_class("llmkit-history-entry"), *self.history.children)
        return run

    def _refresh_compare(self) -> None:
        """The pinned runs side by side, each with its templates and parameters, and its answer's
        words that differ from the first pinned run's marked (a hint while only one is pinned)."""
        pinned = [run for run in self.runs if run.pin.value]
        for old in self.compare.children:
            old.close()
        column = {"flex": "1 1 0", "min_width": "0", "border": _BORDER, "padding": "4px"}
        scrub = scrubber_for(self.call)
        self.compare.children = (
            [widgets.HTML(_column_html(r, pinned[0], scrub), layout=widgets.Layout(**column))
             for r in pinned] if len(pinned) > 1
            else [widgets.HTML("<i>pin another run to compare</i>")] if pinned else [])
        self.compare.layout.display = None if pinned else "none"

    def _show_error(self, exc: BaseException | None) -> None:
        self.last_error = exc
        self.error.layout.display = "none" if exc is None else None
        if exc is None:
            self.error.value = ""
            return
        text = f"{type(exc).__name__}: {exc}"
        if isinstance(exc, MissingVariableError):
            text = (f"MissingVariableError: the templates use {{{{ {exc.variable} }}}}; fill in the "
                    f"field {exc.variable!r}")
        text = scrubber_for(self.call)(text)
        self.error.value = (f'<div style="color:var(--jp-error-color1,#b00020);white-space:pre-wrap">'
                            f'{html.escape(text)}</div>')

    def __repr__(self) -> str:
        return f"Playground({self.call!r}, runs={len(self.runs)})"


def _run_html(s: CallSummary, given: dict[str, str]) -> str:
    """A run as HTML: header (model, parameters, latency, cost, tokens, cache hit), variables, answer."""
    return (f'<div class="llmkit-header">{header_html(s)}</div>'
            + _variables_html(given)
            + f'<div class="llmkit-output">{markdown_html(s.output or "")}</div>')


def _column_html(run: PlaygroundRun, reference: PlaygroundRun, scrub: Scrub) -> str:
    """A run in the comparison: header, variables, the parameters the header does not show,
    templates, then its answer as plain text with the words that differ from ``reference``'s
    answer marked (each thing once: the header already has the model, tokens, changed parameters)."""
    s, call = run.summary, run.call
    params = ", ".join(f"{k}={HIDDEN}" if is_credential(k, v) else f"{k}={v!r}"
                       for k, v in call.model_params.items() if k != "model" and k not in s.params)
    templates = [("system template", call.system_template), ("user template", call.user_template)]
    answer = (html.escape(s.output or "") if run is reference
              else diff_html(reference.summary.output or "", s.output or ""))
    note = "answer" if run is reference else f"answer (changes from run {reference.number})"
    return (f'<div class="llmkit-header">{header_html(s)}</div>'
            + _variables_html(run.variables)
            + f'<div class="llmkit-params">{html.escape(scrub(params or "no parameters"))}</div>'
            + "".join(message_html(MessageView(role, scrub(t.source)))
                      for role, t in templates if t is not None)
            + f'<div class="llmkit-output"><i>{note}</i>'
            + f'<div style="white-space:pre-wrap">{answer}</div></div>')


def diff_html(before: str, after: str) -> str:
    """``after`` as escaped HTML with its words that are not in ``before`` in ``<ins>`` and the
    words of ``before`` it dropped in ``<del>``, in place: word level, since two answers to
    similar prompts share most words, and a character diff of prose is unreadable."""
    old, new = _WORD.findall(before), _WORD.findall(after)
    matcher = difflib.SequenceMatcher(None, [w.rstrip() for w in old], [w.rstrip() for w in new],
                                      autojunk=False)  # autojunk drops common words from long texts
    parts = []
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            parts.append(html.escape("".join(new[j1:j2])))
            continue
        for start, end, words in ((_DEL, "</del>", old[i1:i2]), (_INS, "</ins>", new[j1:j2])):
            if not words:
                continue
            if parts and not parts[-1][-1:].isspace():  # "a b" to "a", "x" to "y": words apart
                parts.append(" ")
            parts.append(_marked(start, end, words))
    return "".join(parts)


def _marked(start: str, end: str, words: list[str]) -> str:
    text = "".join(words)
    core = text.rstrip()  # the trailing space stays outside the mark
    return f"{start}{html.escape(core)}{end}{html.escape(text[len(core):])}"


def _variables_html(given: dict[str, str]) -> str:
    variables = "; ".join(f"{name} = {value!r}" for name, value in given.items())
    return f"<div>{html.escape(variables)}</div>" if variables else ""


def _prompt_html(s: CallSummary) -> str:
    return ("<details><summary>prompt</summary>"
            + "".join(message_html(m) for m in s.messages) + "</details>")


def playground(call: LLMCall, **variables: Any) -> Playground:
    """The prompt-iteration widget for ``call`` (as ``call.playground()``), fields pre-filled with
    ``variables``."""
    return Playground(call, **variables)
