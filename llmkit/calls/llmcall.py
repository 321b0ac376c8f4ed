"""`LLMCall`: templates rendered into chat messages and sent to the active client."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ..base.config import SECRET_NAME
from ..base.result import Completion, Result
from ..base.templates import Template

__all__ = ["LLMCall"]


class LLMCall:
    """A prompt made of a system template and an optional user template, plus model parameters.

    Each template is the name of a file on the template path or an inline Jinja2 string.
    ``model_params`` are `OpenAIClient.send_message` arguments (``model``, ``temperature``, ...);
    ``client`` picks a client other than the active one.

    >>> call = LLMCall("You are terse.", "Capital of {{ country }}?", temperature=0)
    >>> call.call(country="France")  # doctest: +SKIP
    'Paris.'
    """

    def __init__(self, system_template_name: str, user_template_name: str | None = None, *,
                 client: Any = None, **model_params: Any) -> None:
        self.system_template = Template(system_template_name)
        self.user_template = Template(user_template_name) if user_template_name else None
        self.client = client
        self.model_params = model_params
        self.messages: list[dict[str, Any]] = []
        self.model_output: dict[str, Any] | None = None
        self.completion: Completion | None = None

    @property
    def variables(self) -> list[str]:
        """Names of the variables the templates use, sorted."""
        found = set(self.system_template.variables)
        if self.user_template:
            found |= self.user_template.variables
        return sorted(found)

    def render(self, **variables: Any) -> list[dict[str, Any]]:
        """The chat messages for these variables."""
        messages = [{"role": "system", "content": self.system_template.render(**variables)}]
        if self.user_template:
            messages.append({"role": "user", "content": self.user_template.render(**variables)})
        return messages

    def call(self, *, stream: bool = False, on_delta: Callable[[str], None] | None = None,
             cache: bool | None = None, **variables: Any) -> Result:
        """Render, send, and return the output text (a `Result`: a str with usage and latency)."""
        from ..clients.registry import client as active_client
        self.messages = self.render(**variables)
        chosen = self.client or active_client()
        self.completion = chosen.complete(self.messages, stream=stream, on_delta=on_delta,
                                          cache=cache, **self.model_params)
        self.model_output = self.completion.message
        return Result(self.completion)

    def map(self, rows: Iterable[Mapping[str, Any]], *, max_concurrency: int | None = None,
            **options: Any) -> list[Any]:
        """Run the call once per row of template variables, concurrently, within rate limits.

        Results come back in input order; see `llmkit.batch.run_batch`.
        """
        from .batch import run_batch
        return run_batch(self, rows, max_concurrency=max_concurrency, **options)

    async def amap(self, rows: Iterable[Mapping[str, Any]], *, max_concurrency: int | None = None,
                   **options: Any) -> list[Any]:
        """`map` for asyncio code: ``await call.amap(rows)``."""
        from .batch import arun_batch
        return await arun_batch(self, rows, max_concurrency=max_concurrency, **options)

    def playground(self) -> Any:
        """An interactive widget to edit the templates, set variables and compare runs."""
        from ..notebook.playground import Playground
        return Playground(self)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        from ..notebook.display import mimebundle
        return mimebundle(self)

    # Read-only views of the last call.
    @property
    def usage(self) -> dict[str, int] | None:
        return self.completion.usage if self.completion else None

    @property
    def latency(self) -> float | None:
        return self.completion.latency if self.completion else None

    @property
    def cached(self) -> bool | None:
        return self.completion.cached if self.completion else None

    def __repr__(self) -> str:
        user = f", user={self.user_template.label}" if self.user_template else ""
        params = "".join(f", {k}={'<hidden>' if SECRET_NAME.search(k) else repr(v)}"
                         for k, v in self.model_params.items())
        return f"LLMCall(system={self.system_template.label}{user}{params})"
