"""What a call produced: the `Completion` record and the `Result` text an LLMCall returns."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from . import answer_shapes, hooks

__all__ = ["Completion", "Result"]


@dataclass(frozen=True)
class Completion:
    """One answer: what was sent, what came back, how long it took, cache hit or not.

    ``request`` holds the model, messages and sampling parameters (never credentials);
    ``response`` is the API's own JSON answer: a chat completion, a Responses body or an
    embeddings list, read alike through `llmkit.base.answer_shapes`; ``priced_as`` the model
    whose prices apply (`Prepared.priced_as`: on Azure the model a deployment serves; None: the
    request's model).
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
        return answer_shapes.message(self.response)

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
        usage = answer_shapes.usage(self.response)
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
        cheaper one), cached prompt tokens at the cached price, whether or not it was paid now.
        When the server's usage is missing, null, negative or not token counts, the cost is
        estimated from llmkit's own counts (`cost_estimated`), never taken as $0. None when no
        price is known."""
        return self._priced[0]

    @property
    def cost_estimated(self) -> bool:
        """True when `cost` comes from llmkit's token counts (the prompt, and the answer's text),
        because the server's usage was missing or not valid token counts (a proxy without usage)."""
        return self._priced[1]

    @functools.cached_property
    def _priced(self) -> tuple[float | None, bool]:
        """(`cost`, `cost_estimated`), worked out once."""
        from . import models  # the model table's code loads with the first priced answer
        asked = self.priced_as or str(self.request.get("model") or "")
        named = self.response.get("model")
        for model in (asked, named) if isinstance(named, str) and named != asked else (asked,):
            info = models.model_info(model)
            if info.input_price is None or info.output_price is None:
                continue
            reported = models.cost(model, answer_shapes.usage(self.response))
            if reported is not None:
                return reported, False
            return models.token_cost(model, *self._own_counts(info.encoding)), True
        return None, False

    def _own_counts(self, encoding: str) -> tuple[int, int]:
        """Prompt and answer tokens as llmkit counts them: the request's messages (and tools) or
        embedding input, and every choice's text, refusal and tool calls."""
        from . import tokens
        if "messages" not in self.request:  # an embedding: only its input is paid for
            texts = self.request.get("input")
            texts = [texts] if isinstance(texts, str) else texts if isinstance(texts, list) else []
            return sum(tokens.count_text(t, encoding) for t in texts if isinstance(t, str)), 0
        tools = self.request.get("tools")
        prompt = tokens.count_tokens([m for m in self.messages if isinstance(m, dict)], encoding,
                                     tools=tools if isinstance(tools, list) else None)
        written = []
        choices = self.response.get("choices") if "choices" in self.response else [
            {"message": self.message}]
        for choice in choices or ():
            message = choice.get("message") if isinstance(choice, dict) else None
            if not isinstance(message, dict):
                continue
            written += [message.get("content"), message.get("refusal")]
            for call in message.get("tool_calls") or ():
                function = call.get("function") if isinstance(call, dict) else None
                if isinstance(function, dict):
                    written += [function.get("name"), function.get("arguments")]
        return prompt, sum(tokens.count_text(t, encoding) for t in written if isinstance(t, str))

    @property
    def paid(self) -> float | None:
        """USD this call cost: 0 for an answer from the cache or a recording, and for the local
        model (it runs here); else `cost`. What budgets, spend and the history count."""
        return 0.0 if self.cached or self.api_type == "local" else self.cost

    @property
    def finish_reason(self) -> str | None:
        """Why the answer ended, in chat's words (``"length"``: cut at the output limit)."""
        return answer_shapes.finish_reason(self.response)

    @property
    def reasoning(self) -> str | None:
        """The summary of the model's reasoning (Responses, with ``reasoning_summary=``), or None."""
        return answer_shapes.reasoning(self.response)

    @property
    def citations(self) -> list[dict[str, str]]:
        """The web pages the answer cites (a hosted ``web_search``): ``[{"url", "title"}]``,
        http(s) URLs only; empty when none."""
        return answer_shapes.citations(self.response)

    @property
    def hosted_steps(self) -> list[dict[str, str]]:
        """What hosted tools did on the server for this answer (searches, interpreter code and
        logs, MCP calls): ``[{"type", "text"}]``; empty when none."""
        return answer_shapes.hosted_steps(self.response)


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
    def reasoning(self) -> str | None:
        return self.completion.reasoning

    @property
    def citations(self) -> list[dict[str, str]]:
        return self.completion.citations

    @property
    def hosted_steps(self) -> list[dict[str, str]]:
        return self.completion.hosted_steps

    @property
    def cached(self) -> bool:
        return self.completion.cached

    @property
    def model(self) -> str:
        return self.completion.model

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        return hooks.mimebundle(self)
