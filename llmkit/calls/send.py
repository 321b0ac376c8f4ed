"""How the calls layer sends a conversation: typed answers and tools, on the clients' call path.

`LLMCall`, `LLMChat` and ``@llm`` all end here, and here everything goes through
`OpenAIClient.prepare` and `OpenAIClient.execute`: one configuration read, the cache, retries,
rate limits. A typed answer asks for a strict JSON schema where the api type honours one
(``response_format``), else adds the schema to the system prompt; either way the answer is parsed
before it is returned or cached, so nothing that does not validate is ever stored.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from ..base import config
from ..base.errors import ConfigError, LLMKitWarning
from ..base.result import Completion, Result

if TYPE_CHECKING:
    from ..clients.protocol import Client

__all__ = ["BUILD_OPTIONS", "Answer", "check_params", "check_variables", "send"]

BUILD_OPTIONS = frozenset({"output_type", "tools", "max_steps", "approve", "tool_cache", "client"})
"""What an `LLMCall` or `LLMChat` is built with besides model parameters: given to ``call()``
as if it were a template variable, it would be ignored."""

_warned_lock = threading.Lock()


class Answer(NamedTuple):
    """What a conversation turn produced: the last `Completion`, the value to return (the typed
    value, or the `Result` text), and the tool steps that led to it. (A named tuple: it is made
    on every call, cache hits included, and costs a third of a frozen dataclass.)"""

    completion: Completion
    value: Any
    steps: Sequence[Any] = ()


def check_params(where: str, params: Mapping[str, Any]) -> None:
    """Check model parameters given when a call is built (``LLMCall(...)``, ``LLMChat(...)``,
    ``@llm(...)``) with the call path's own vocabulary, so that a misspelt name fails where it was
    written, not at the first call; `ConfigError` names ``where`` and the parameter."""
    try:
        from ..clients import params as vocabulary  # light, but not needed by `import llmkit`
        vocabulary.check("chat", params, vocabulary.CHAT)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def check_variables(where: str, used: Collection[str], variables: Mapping[str, Any],
                    warned: set[str]) -> None:
    """Refuse or warn about the ``variables`` of ``where`` (``"LLMCall"``, ``"LLMChat"``) that
    its templates do not use (``used``): they would be silently ignored. A model parameter
    (``model=...``) or a build option (`BUILD_OPTIONS`) raises `ConfigError` saying where it
    belongs; any other name warns (`LLMKitWarning`) once per object and name, kept in ``warned``.
    """
    unused = [name for name in variables if name not in used]
    if not unused:
        return
    from ..clients import params as vocabulary
    where_else = "run(..., {0}=...) or " if where == "LLMCall" else ""
    for name in unused:
        if name in vocabulary.CHAT or name in vocabulary.CALL_OPTIONS or name in BUILD_OPTIONS:
            run = where_else.format(name) if name not in BUILD_OPTIONS - {"output_type"} else ""
            raise ConfigError(
                f"{where}.call({name}=...): {name} is not a variable of the templates (they use: "
                f"{', '.join(used) or 'none'}); it is a parameter of the call: pass it as "
                f"{run}{where}(..., {name}=...)")
    with _warned_lock:
        new = [name for name in unused if name not in warned]
        warned.update(new)
    for name in new:
        warnings.warn(f"{where}.call({name}=...): {name} is not a variable of the templates (they "
                      f"use: {', '.join(used) or 'none'}), so it was ignored", LLMKitWarning,
                      stacklevel=3)


def send(messages: Sequence[Mapping[str, Any]], *, client: Client | None = None, output: Any = None,
         tools: Sequence[Any] | None = None, max_steps: int = 8,
         approve: Callable[[str, dict[str, Any]], bool | str] | None = None,
         tool_cache: str | None = None, stream: bool = False,
         on_delta: Callable[[str], None] | None = None, cache: bool | None = None,
         **params: Any) -> Answer:
    """Send ``messages`` (with ``output`` type and ``tools`` if given) and return the `Answer`."""
    from ..clients.registry import client_for  # the client chain loads with the first call
    settings = config.resolve()
    chosen: Client = client or client_for(settings)
    if output is str:  # plain text needs no schema
        output = None
    if output is None and not tools:  # the common case, kept short: it is most of a cache hit
        prepared = chosen.prepare(messages, stream=stream, cache=cache, settings=settings, **params)
        completion = chosen.execute(prepared, on_delta)
        return Answer(completion, Result(completion))
    typed = None
    if output is not None:
        from ..base.output_types import output_type  # pydantic loads with the first typed answer
        typed = output_type(output)
    conversation: list[dict[str, Any]] = [dict(m) for m in messages]
    if typed is not None:
        if getattr(chosen, "structured_outputs", False):
            params = {**params, "response_format": typed.response_format()}
        else:
            conversation = _with_instructions(conversation, typed.instructions())

    parsed: list[Any] = []  # the final answer's value, parsed once by `accept`

    def accept(completion: Completion) -> None:
        if typed is not None and not completion.message.get("tool_calls"):
            parsed[:] = [typed.parse(completion.text)]

    sent: list[Any] = []  # the last turn's Prepared: its secrets are scrubbed from tool output

    def one(turn: list[dict[str, Any]], **extra: Any) -> Completion:
        prepared = chosen.prepare(turn, stream=stream, cache=cache, settings=settings,
                                  **{**params, **extra})
        sent[:] = [prepared]
        return chosen.execute(prepared, on_delta, accept=accept)

    steps: list[Any] = []
    if tools:
        from ..base.secrets import scrub
        from .tool_loop import run_tools
        from .tool_spec import spec
        specs = [spec(t) for t in tools]  # hosted tools (dicts) as given; the server runs them
        store = None
        use_cache = settings["cache_api_calls"] if cache is None else cache
        if tool_cache == "pure" and use_cache:
            from ..clients.store import open_cache
            store = open_cache(settings["cache_dir"] or None)
        completion, steps = run_tools(lambda turn: one(turn, tools=specs), conversation, tools,
                                      max_steps=max_steps, approve=approve, tool_cache=tool_cache,
                                      cache=store, scrub=lambda text: scrub(text, sent[0].secrets))
    else:
        completion = one(conversation)
    value = parsed[0] if typed is not None else Result(completion)
    return Answer(completion, value, steps)


def _with_instructions(messages: list[dict[str, Any]], instructions: str) -> list[dict[str, Any]]:
    """The conversation with the answer's schema added to its system message (or a new one)."""
    if messages and messages[0].get("role") == "system" and isinstance(messages[0].get("content"), str):
        first = {**messages[0], "content": f"{messages[0]['content']}\n\n{instructions}"}
        return [first, *messages[1:]]
    return [{"role": "system", "content": instructions}, *messages]
