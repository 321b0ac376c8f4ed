"""What a call produced: the `Completion` record and the `Result` text an LLMCall returns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import hooks

__all__ = ["Completion", "Result"]


@dataclass(frozen=True)
class Completion:
    """One chat completion: what was sent, what came back, how long it took, cache hit or not.

    ``request`` holds the model, messages and sampling parameters (never credentials);
    ``response`` is the API's JSON answer.
    """

    request: dict[str, Any]
    response: dict[str, Any]
    latency: float
    cached: bool
    api_type: str = "openai"

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
        """USD for this answer's usage at the prices of the model asked for (not the one the
        server names: a server could name a cheaper one), cached prompt tokens at the cached
        price, whether or not it was paid now; None when the price or the usage is unknown."""
        from . import models  # the model table's code loads with the first priced answer
        return models.cost(str(self.request.get("model") or self.model),
                           self.response.get("usage"))

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
