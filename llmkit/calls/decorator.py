"""``@llm``: a Python function whose body is a prompt (TinyTroupe's decorator).

The docstring is the system prompt, the string the function returns is the user prompt, and
the return annotation is the output type::

    @llmkit.llm(temperature=0)
    def sentiment(review: str) -> Literal["positive", "negative"]:
        "You classify restaurant reviews."
        return f"Review: {review}"
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from ..base.errors import ConfigError
from .chat import LLMChat
from .send import check_params

__all__ = ["llm"]

F = TypeVar("F", bound=Callable[..., Any])


def llm(**model_params: Any) -> Callable[[F], F]:
    """Turn a prompt-building function into a call; ``model_params`` go to every call (checked
    here, when the function is decorated)."""
    check_params("@llm", model_params)

    def decorate(function: F) -> F:
        system = inspect.getdoc(function)
        returns = inspect.signature(function).return_annotation
        hints = _hints(function)
        output = hints.get("return", returns)
        if output is inspect.Signature.empty or output is None:
            output = None

        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            prompt = function(*args, **kwargs)
            if not isinstance(prompt, str) or not prompt.strip():
                raise ConfigError(f"@llm function {function.__name__} must return the user prompt "
                                  f"(a non-empty str), got {type(prompt).__name__}")
            chat = LLMChat(system_prompt=_literal(system) if system else None,
                           output_type=output, **model_params)
            return chat.continue_conversation(prompt)
        return wrapper  # type: ignore[return-value]
    return decorate


def _hints(function: Callable[..., Any]) -> dict[str, Any]:
    import typing
    try:
        return typing.get_type_hints(function, include_extras=True)
    except Exception:  # a forward reference that does not resolve: use the raw annotation
        return {}


def _literal(text: str) -> str:
    """Text for a Template that renders to itself (a docstring is a prompt, not a template)."""
    return "{% raw %}" + text.replace("{% endraw %}", "") + "{% endraw %}"
