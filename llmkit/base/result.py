"""What a call produced: the `Completion` record and the `Result` text an LLMCall returns."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from . import hooks, models

__all__ = ["Completion", "Result"]


@dataclass(frozen=True)
class Completion:
    """One chat completion: what was sent, what came back, how long it took, cache hit or not.

    ``request`` holds the model, messages and sampling parameters (never credentials);
    ``response`` is the API's JSON answer; ``priced_as`` the model whose prices apply
    (`Prepared.priced_as`: on Azure the model a deployment serves; None: the request's model).
    """

    request: dict[str, Any]
    response: dict[str, Any]
    latency: float
    cached: bool
    api_type: str = "openai"
    priced_as: str | None = None

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.request.get("messages", []))

    @property
    def message(self) -> dict[str, Any]:
        """The first choice's assistant message as a dict (``role``, ``content``, ...)."""
        choices = self.response.get("choices") or [{}]
        message = choices[0].get("message") or {}
        return {k: v for k, v in message.items() if v is not None}

    @property
    def text(self) -> str:
        return self.message.get("content") or ""

    @property
    def model(self) -> str:
        return str(self.response.get("model") or self.request.get("model") or "")

    @property
    def usage(self) -> dict[str, int]:
        """Prompt, completion and total tokens; empty (unknown) when the server sent none or sent
        something that is not token counts (the answer itself is kept)."""
        usage = self.response.get("usage")
        if not isinstance(usage, dict):
            return {}
        counts = {k: usage.get(k, 0) for k in ("prompt_tokens", "completion_tokens", "total_tokens")}
        if all(type(v) is int and v >= 0 for v in counts.values()):
            return counts
        return {}

    @property
    def cost(self) -> float | None:
        """USD for this answer's usage at the prices of the model asked for (`priced_as`; the
        model the server names only when that one has no known price: a server could name a
        cheaper one), cached prompt tokens at the cached price, whether or not it was paid now;
        None when no price is known."""
        return self._priced[0]

    @functools.cached_property
    def _priced(self) -> tuple[float | None, bool]:
        """(`cost`, `cost_estimated`), worked out once."""
        asked = self.priced_as or str(self.request.get("model") or "")
        named = self.response.get("model")
        for model in (asked, named) if isinstance(named, str) and named != asked else (asked,):
            info = models.model_info(model)
            if info.input_price is None or info.output_price is None:
                continue
            return models.cost(model, self.response.get("usage")), False
        return None, False

    @property
    def paid(self) -> float | None:
        """USD this call cost: 0 for an answer from the cache or a recording, and for the local
        model (it runs here); else `cost`. What budgets, spend and the history count."""
        return 0.0 if self.cached or self.api_type == "local" else self.cost

    @property
    def finish_reason(self) -> str | None:
        choices = self.response.get("choices") or [{}]
        reason = choices[0].get("finish_reason")
        return reason if isinstance(reason, str) else None


class Result(str):
    """The output text of a call (a ``str``) that also carries its `Completion`."""

    completion: Completion

    def __new__(cls, completion: Completion) -> Result:
        obj = super().__new__(cls, completion.text)
        obj.completion = completion
        return obj

    @property
    def messages(self) -> list[dict[str, Any]]:
        return self.completion.messages

    @property
    def usage(self) -> dict[str, int]:
        return self.completion.usage

    @property
    def latency(self) -> float:
        return self.completion.latency

    @property
    def cached(self) -> bool:
        return self.completion.cached

    @property
    def model(self) -> str:
        return self.completion.model

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        return hooks.mimebundle(self)
