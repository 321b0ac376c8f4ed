"""`Playground`: an ipywidget to iterate on an `LLMCall`: edit the templates, run, compare runs.

Made of stock widgets (no front-end code to install). Every HTML value is built by
`llmkit.display` or escaped here, and error messages are stripped of API keys. `Playground.run` is
what the Run button calls, so code and tests can run it without a front end. CSS classes:
``llmkit-playground``, ``llmkit-variables``, ``llmkit-run``, ``llmkit-error``, ``llmkit-call`` (a
streaming answer), ``llmkit-compare``, ``llmkit-history``, ``llmkit-history-entry``, ``llmkit-pin``.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, replace
from typing import Any

import ipywidgets as widgets

from ..base.errors import LLMKitError, MissingVariableError, TemplateError
from ..base.models import chat_models, model_info
from ..base.result import Result
from ..base.templates import Template
from ..calls.llmcall import LLMCall
from ..clients import registry
from . import display
from .widgets import CallView

__all__ = ["Playground", "PlaygroundRun", "playground"]

_SHOWN_PARAMS = ("temperature", "max_tokens", "max_completion_tokens")
_LABEL = {"description_width": "90px"}


@dataclass
class PlaygroundRun:
    """One run: its number, the call as it was sent, the variables given and the answer."""

    number: int
    call: LLMCall
    variables: dict[str, str]
    result: Result
    html: str
    pin: widgets.ToggleButton


class Playground(widgets.VBox):
    """Text areas for the system and user templates, one field per template variable, a model
    dropdown, temperature and max-tokens sliders, a Run button and the history of runs (output,
    tokens, cost, latency, cache hit). Pin two or more runs to see them side by side.

    Each run builds a new `LLMCall` from the text areas (the call's client and other parameters
    are kept); ``runs[-1].call`` is the latest. An empty variable field counts as not given.
    Errors (a missing variable, a failed request) show in the widget, which keeps working.
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
        max_tokens = int(self._params.pop("max_tokens", None) or self._params.pop(
            "max_completion_tokens", None) or settings.get("max_tokens") or 1024)
        temperature = self._params.pop("temperature", settings.get("temperature"))

        area = {"layout": widgets.Layout(width="100%"), "style": _LABEL}
        user = call.user_template.source if call.user_template else ""
        self.system = widgets.Textarea(call.system_template.source, description="system",
                                       rows=3, **area)
        self.user = widgets.Textarea(user, description="user", rows=4, **area)
        self.variables_box = widgets.VBox().add_class("llmkit-variables")
        options = list(dict.fromkeys(m for m in (model, self._default_model, *chat_models()) if m))
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
        self.error = widgets.HTML().add_class("llmkit-error")
        self.view = CallView()
        self.compare = widgets.HBox(layout=widgets.Layout(width="100%")).add_class("llmkit-compare")
        self.history = widgets.VBox().add_class("llmkit-history")
        super().__init__([self.system, self.user, self.variables_box,
                          widgets.HBox([self.model, self.temperature, self.max_tokens]),
                          widgets.HBox([self.run_button, self.stream]), self.error, self.view,
                          self.compare, self.history])
        self.add_class("llmkit-playground")
        self.view.layout.display = self.compare.layout.display = "none"
        self._show_error(None)

        self.system.observe(self._refresh_variables, "value")
        self.user.observe(self._refresh_variables, "value")
        self.model.observe(self._model_changed, "value")
        self.run_button.on_click(lambda _: self.run())
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
        reasoning = model_info(self._model()).reasoning
        self.temperature.disabled = reasoning
        self.temperature.tooltip = "reasoning models take no temperature" if reasoning else ""

    def _request_params(self) -> dict[str, Any]:
        params = {**self._params, "max_tokens": self.max_tokens.value}
        if self.model.value.strip():
            params["model"] = self.model.value.strip()
        if not self.temperature.disabled:
            params["temperature"] = self.temperature.value
        return params

    def run(self) -> PlaygroundRun | None:
        """Run the templates as edited with the fields' variables, the model and the sliders.

        Returns the new run (also added to the history), or None after showing the error.
        """
        self.run_button.disabled = True
        self._show_error(None)
        try:
            call = LLMCall(self.system.value, self.user.value if self.user.value.strip() else None,
                           client=self.call.client, **self._request_params())
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
        s = display.summarize(result)
        s = replace(s, title=f"run {number}",
                    params={k: v for k, v in s.params.items() if k in _SHOWN_PARAMS})
        pin = widgets.ToggleButton(description="pin", icon="thumb-tack",
                                   tooltip="pin two or more runs to compare them side by side",
                                   layout=widgets.Layout(width="70px")).add_class("llmkit-pin")
        run = PlaygroundRun(number, call, given, result, _run_html(s, given), pin)
        entry = widgets.HBox([pin, widgets.HTML(run.html + _prompt_html(s),
                                                layout=widgets.Layout(flex="1 1 auto"))],
                             layout=widgets.Layout(border_top="1px solid #ddd", padding="4px 0"))
        pin.observe(lambda _: self._refresh_compare(), "value")
        self.runs.append(run)
        self.history.children = (entry.add_class("llmkit-history-entry"), *self.history.children)
        return run

    def _refresh_compare(self) -> None:
        """The pinned runs side by side (a hint while only one is pinned)."""
        pinned = [run for run in self.runs if run.pin.value]
        for old in self.compare.children:
            old.close()
        column = {"flex": "1 1 0", "min_width": "0", "border": "1px solid #ccc", "padding": "4px"}
        self.compare.children = (
            [widgets.HTML(r.html, layout=widgets.Layout(**column)) for r in pinned] if len(pinned) > 1
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
        text = display._scrubber(self.call)(text)
        self.error.value = f'<div style="color:#b00020;white-space:pre-wrap">{html.escape(text)}</div>'

    def __repr__(self) -> str:
        return f"Playground({self.call!r}, runs={len(self.runs)})"


def _run_html(s: display.CallSummary, given: dict[str, str]) -> str:
    """A run as HTML: header (model, parameters, latency, cost, cache hit), variables, answer, tokens."""
    variables = "; ".join(f"{name} = {value!r}" for name, value in given.items())
    return (f'<div class="llmkit-header">{display.header_html(s)}</div>'
            + (f"<div>{html.escape(variables)}</div>" if variables else "")
            + f'<div class="llmkit-output">{display.markdown_html(s.output or "")}</div>'
            + f'<div class="llmkit-tokens">{html.escape(display.usage_text(s))}</div>')


def _prompt_html(s: display.CallSummary) -> str:
    return ("<details><summary>prompt</summary>"
            + "".join(display.message_html(m) for m in s.messages) + "</details>")


def playground(call: LLMCall, **variables: Any) -> Playground:
    """The prompt-iteration widget for ``call`` (as ``call.playground()``), fields pre-filled with
    ``variables``."""
    return Playground(call, **variables)
