"""`LLMCall`: templates rendered into chat messages and sent to the active client."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from ..base import hooks
from ..base.errors import ConfigError
from ..base.result import Completion
from ..base.secrets import HIDDEN, is_secret_name
from ..base.templates import Template
from .send import Answer, check_params, check_variables, send

__all__ = ["LLMCall"]


_PLAIN = frozenset({str, int, float, bool, type(None)})  # values that cannot be images: skip the check


def _with_images(text: str, images: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Content parts: the rendered text split where image markers were, images in between."""
    parts: list[dict[str, Any]] = []
    for i, piece in enumerate(text.split("\x00")):
        if i % 2 and piece.startswith("image:") and piece[6:] in images:
            parts.append(images[piece[6:]].part())
        elif piece:
            parts.append({"type": "text", "text": piece})
    return parts


class LLMCall:
    """A prompt made of a system template and an optional user template, plus model parameters.

    Each template is the name of a file on the template path or an inline Jinja2 string.
    ``model_params`` are `OpenAIClient.send_message` arguments (``model``, ``temperature``, ...),
    checked here (an unknown name or a bad value raises `ConfigError` at once); ``client`` picks
    a client other than the active one.

    `run` renders and sends without touching the object, so one `LLMCall` serves many threads;
    `call` is `run` plus remembering the last `Answer` (``messages``, ``completion``,
    ``model_output``, ``steps`` always belong to the same call: one object, swapped in whole).

    >>> call = LLMCall("You are terse.", "Capital of {{ country }}?", temperature=0)
    >>> call.call(country="France")  # doctest: +SKIP
    'Paris.'
    """

    def __init__(self, system_template_name: str, user_template_name: str | None = None, *,
                 client: Any = None, output_type: Any = None, tools: Sequence[Any] | None = None,
                 max_steps: int = 8, approve: Callable[[str, dict[str, Any]], bool | str] | None = None,
                 tool_cache: str | None = None, **model_params: Any) -> None:
        if client is not None and not callable(getattr(client, "prepare", None)):
            raise ConfigError(f"LLMCall(client=...) takes a client object such as "
                              f"llmkit.client('openai') or llmkit.OpenAIClient(...), not a "
                              f"{type(client).__name__}; leave it out to use the active client")
        check_params("LLMCall", model_params)
        self.system_template = Template(system_template_name)
        self.user_template = Template(user_template_name) if user_template_name else None
        self.client = client
        self.output_type = output_type
        self.tools = list(tools) if tools else None
        self.tool_options: dict[str, Any] = {"max_steps": max_steps, "approve": approve,
                                             "tool_cache": tool_cache}
        self.model_params = model_params
        self._last: Answer | None = None  # the last `call`, swapped in whole
        self._warned: set[str] = set()  # call() keywords the templates ignore, warned about once

    @property
    def variables(self) -> list[str]:
        """Names of the variables the templates use, in the order they first appear."""
        found = list(self.system_template.variables)
        if self.user_template:
            found += [v for v in self.user_template.variables if v not in found]
        return found

    def render(self, **variables: Any) -> list[dict[str, Any]]:
        """The chat messages for these variables. An `llmkit.image(...)` variable in the user
        template becomes an image content part where it appears."""
        messages: list[dict[str, Any]] = [
            {"role": "system", "content": self.system_template.render(**variables)}]
        if self.user_template:
            images = {k: v for k, v in variables.items()
                      if type(v) not in _PLAIN and callable(getattr(v, "part", None))}
            if not images:
                messages.append({"role": "user", "content": self.user_template.render(**variables)})
            else:
                markers = {name: f"\x00image:{name}\x00" for name in images}
                text = self.user_template.render(**{**variables, **markers})
                messages.append({"role": "user", "content": _with_images(text, images)})
        return messages

    def run(self, variables: Mapping[str, Any] | None = None, /, *, stream: bool = False,
            on_delta: Callable[[str], None] | None = None, cache: bool | None = None,
            output_type: Any = None, **options: Any) -> Any:
        """Render with ``variables`` and send; the `LLMCall` is left as it was.

        Returns the answer as a `Result` (a str with usage and latency), or, with an
        ``output_type`` (here or on the LLMCall), the validated value. ``options`` are model
        parameters for this run only, over ``model_params``.
        """
        return self.ask(variables, stream=stream, on_delta=on_delta, cache=cache,
                        output_type=output_type, **options).value

    def ask(self, variables: Mapping[str, Any] | None = None, /, *, stream: bool = False,
            on_delta: Callable[[str], None] | None = None, cache: bool | None = None,
            output_type: Any = None, **options: Any) -> Answer:
        """`run`, returning the whole `Answer`: its completion, value and tool steps."""
        if variables is not None and not isinstance(variables, Mapping):
            raise ConfigError(f"run: variables must be a dict of template variables, got a "
                              f"{type(variables).__name__}")
        messages = self.render(**(variables or {}))
        params = {**self.model_params, **options} if options else self.model_params
        if self.tools:
            params = {**params, **self.tool_options}
        return send(messages, client=self.client, output=output_type or self.output_type,
                    tools=self.tools, stream=stream, on_delta=on_delta, cache=cache, **params)

    def call(self, *, stream: bool = False, on_delta: Callable[[str], None] | None = None,
             cache: bool | None = None, **variables: Any) -> Any:
        """Render, send, and return the answer: a `Result` (a str with usage and latency), or the
        validated value when the LLMCall has an ``output_type``.

        The exchange is remembered (``messages``, ``completion``, ``model_output``, ``steps``).
        A keyword the templates do not use is not sent: a model parameter (``model=...``) raises
        `ConfigError` (pass it to `run` or to the LLMCall), any other name warns once.
        """
        braced = [name for t in (self.system_template, self.user_template) if t is not None
                  for name in t.single_braced]  # their render warns with the {{ name }} fix
        check_variables("LLMCall", [*self.variables, *braced], variables, self._warned)
        answer = self.ask(variables, stream=stream, on_delta=on_delta, cache=cache)
        self._last = answer
        return answer.value

    def map(self, rows: Iterable[Mapping[str, Any]], *, max_concurrency: int | None = None,
            **options: Any) -> list[Any]:
        """Run the call once per row of template variables, concurrently, within rate limits.

        Results come back in input order; see `llmkit.calls.batch.run_batch`.
        """
        from .batch import run_batch
        return run_batch(self, rows, max_concurrency=max_concurrency, **options)

    async def amap(self, rows: Iterable[Mapping[str, Any]], *, max_concurrency: int | None = None,
                   **options: Any) -> list[Any]:
        """`map` for asyncio code: ``await call.amap(rows)``."""
        from .batch import arun_batch
        return await arun_batch(self, rows, max_concurrency=max_concurrency, **options)

    def playground(self, **variables: Any) -> Any:
        """An interactive widget to edit the templates, set variables and compare runs."""
        return hooks.notebook("playground").Playground(self, **variables)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        return hooks.mimebundle(self)

    # Read-only views of the last `call`.
    @property
    def messages(self) -> list[dict[str, Any]]:
        last = self._last
        return last.completion.messages if last else []

    @property
    def completion(self) -> Completion | None:
        last = self._last
        return last.completion if last else None

    @property
    def model_output(self) -> dict[str, Any] | None:
        last = self._last
        return last.completion.message if last else None

    @property
    def steps(self) -> list[Any]:
        """The tool calls the last `call` ran (empty without tools)."""
        last = self._last
        return list(last.steps) if last else []

    @property
    def usage(self) -> dict[str, int] | None:
        last = self._last
        return last.completion.usage if last else None

    @property
    def latency(self) -> float | None:
        last = self._last
        return last.completion.latency if last else None

    @property
    def cached(self) -> bool | None:
        last = self._last
        return last.completion.cached if last else None

    def __repr__(self) -> str:
        user = f", user={self.user_template.label}" if self.user_template else ""
        params = "".join(f", {k}={HIDDEN if is_secret_name(k) else repr(v)}"
                         for k, v in self.model_params.items())
        return f"LLMCall(system={self.system_template.label}{user}{params})"
