"""`Client`: what the calls layer needs of a client, as a protocol (the seam between layers).

`LLMCall`, `LLMChat` and ``@llm`` reach the wire only through these members, so an IDE and mypy
follow a call from the calls layer to `OpenAIClient.execute`, and a test or plugin may supply any
object that has them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from ..base.config import Settings
    from ..base.result import Completion
    from .prepare import Prepared

__all__ = ["Client"]


@runtime_checkable
class Client(Protocol):
    """A client: it prepares a call (configuration read once) and executes it."""

    api_type: str
    structured_outputs: bool  # honours a strict JSON schema for typed answers

    def prepare(self, messages: Sequence[Mapping[str, Any]], *, stream: bool = False,
                cache: bool | None = None, settings: Settings | None = None,
                **params: Any) -> Prepared:
        """The call as it will be made."""
        ...

    def execute(self, p: Prepared, on_delta: Callable[[str], None] | None = None,
                accept: Callable[[Completion], object] | None = None) -> Completion:
        """Answer a prepared call (replay, cache or server), validated, kept and recorded."""
        ...
