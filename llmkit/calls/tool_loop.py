"""The tool-calling loop: running the calls the model asks for until it answers.

`run_tools` sends a conversation, runs the calls the model asks for (those of one answer
concurrently), feeds their results back as ``role: "tool"`` messages and repeats until an
answer without calls, or raises `ToolLoopError` after ``max_steps`` answers that still ask for
tools. Whatever goes wrong with one call (an unknown tool, arguments that are not JSON or do
not validate, a refused approval, an exception in the tool) is sent to the model as a result
starting ``"error: "``, never raised. What the user's own ``approve`` raises comes out as itself.

With ``tool_cache="pure"`` a result is memoised in the response cache under
``cache_key({"kind": "tool", "name": ..., "arguments": <canonical JSON>})`` as
``{"tool_result": <text>}``: a run whose answers come from the cache replays its steps without
calling the tools. By default tools always run, cache hit or not. How a function becomes a
`Tool` is `llmkit.calls.tool_spec`.
"""

from __future__ import annotations

import contextvars
import json
import warnings
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from ..base.cache_entries import cache_key
from ..base.errors import CacheError, ConfigError, ToolLoopError
from .tool_spec import Tool, ToolArgumentsError, as_tool

__all__ = ["ToolStep", "run_tools"]

_MAX_WORKERS = 8  # concurrent calls of one answer; more wait for a free thread


@dataclass(frozen=True)
class ToolStep:
    """One tool call the model asked for, and what came of it.

    ``arguments`` is the JSON text the model sent; ``result`` the text sent back (None when the
    call failed), ``error`` why it failed (None when it ran). ``cached``: the result came from the
    tool-result cache (pure tools). ``completion`` is the model answer that asked for the call
    (shared by the calls of one answer: count its tokens once).
    """

    call_id: str
    name: str
    arguments: str
    result: str | None
    error: str | None
    approved: bool
    cached: bool
    completion: Any = field(repr=False)

    @property
    def content(self) -> str:
        """What the model was sent for this call."""
        return self.result if self.error is None else f"error: {self.error}"  # type: ignore[return-value]

    @property
    def usage(self) -> dict[str, int]:
        """Tokens of the answer that asked for this call."""
        return dict(getattr(self.completion, "usage", {}) or {})


@dataclass
class _Call:
    """A call being handled: what the model asked, and what became of it so far."""

    call_id: str
    name: str
    arguments: str
    tool: Tool | None = None
    parsed: dict[str, Any] = field(default_factory=dict)  # the arguments as the model sent them
    args: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)  # validated, ready for the call
    key: str | None = None
    result: str | None = None
    error: str | None = None
    approved: bool = False
    cached: bool = False


def run_tools(send: Callable[[list[dict[str, Any]]], Any], messages: Sequence[Mapping[str, Any]],
              tools: Sequence[Callable[..., Any] | Tool], *, max_steps: int = 8,
              approve: Callable[[str, dict[str, Any]], bool] | None = None,
              tool_cache: str | None = None, cache: Any = None) -> tuple[Any, list[ToolStep]]:
    """Send ``messages``, run the tool calls of each answer, feed their results back, repeat.

    ``send(messages)`` returns a `Completion` (the request already carries the tools' specs).
    Returns ``(the first answer without tool calls, every step)``. ``messages`` is not changed:
    the returned Completion's ``messages`` hold the whole exchange. ``approve(name, arguments)``
    is asked before each call, in the calling thread and in call order; a false answer sends the
    model an error instead. ``tool_cache="pure"`` memoises results in ``cache`` (a
    `ResponseCache`; None: no memo). Raises `ToolLoopError` (with ``steps``) after ``max_steps``
    answers that all asked for tools; the calls of the last one are recorded, not run.
    """
    if tool_cache not in (None, "pure"):
        raise ConfigError(f"tool_cache must be None or 'pure', not {tool_cache!r}")
    if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1:
        raise ConfigError(f"max_steps must be a whole number of at least 1, not {max_steps!r}")
    declared = [as_tool(t) for t in tools]
    by_name = {t.name: t for t in declared}
    if len(by_name) < len(declared):
        raise ConfigError(f"two tools share a name: {[t.name for t in declared]}")
    memo = cache if tool_cache == "pure" else None
    conversation = [dict(m) for m in messages]
    steps: list[ToolStep] = []
    for turn in range(1, max_steps + 1):
        completion = send(list(conversation))
        message = completion.message
        requested = message.get("tool_calls")
        if not requested:
            return completion, steps
        calls = [_checked(by_name, raw, i) for i, raw in enumerate(_as_list(requested))]
        if turn == max_steps:
            for call in calls:
                call.error = call.error or f"not run: the loop stopped after max_steps={max_steps}"
            steps += [_step(c, completion) for c in calls]
            break
        for call in calls:
            _prepare(call, approve, memo)
        _invoke([c for c in calls if c.error is None and c.result is None])
        for call in calls:
            _remember(call, memo)
        steps += [_step(c, completion) for c in calls]
        conversation.append({"content": None, **message, "role": "assistant"})
        conversation += [{"role": "tool", "tool_call_id": s.call_id, "content": s.content}
                         for s in steps[-len(calls):]]
    ran = len(steps) - len(calls)
    errors = [f"{s.name}: {s.error}" for s in steps if s.error and not s.error.startswith("not run:")]
    raise ToolLoopError(
        f"the model still asked for tools after max_steps={max_steps} answers ({ran} tool call(s) "
        f"ran{'; last errors: ' + '; '.join(errors[-3:]) if errors else ''}); pass a larger "
        "max_steps, or see .steps for what the model asked", steps=steps)


def _as_list(requested: Any) -> list[Any]:
    return list(requested) if isinstance(requested, list) else [requested]


def _checked(by_name: Mapping[str, Tool], raw: Any, index: int) -> _Call:
    """The call ``raw`` (an entry of ``tool_calls``) with its tool and arguments, or its error."""
    raw = raw if isinstance(raw, Mapping) else {}
    function = raw.get("function") if isinstance(raw.get("function"), Mapping) else {}
    arguments = function.get("arguments")
    call = _Call(str(raw.get("id") or f"call_{index}"), str(function.get("name") or ""),
                 arguments if isinstance(arguments, str) else "")
    if raw.get("type", "function") != "function" or not call.name:
        call.error = f"a tool call of an unknown shape (type {raw.get('type')!r}); call a function"
        return call
    call.tool = by_name.get(call.name)
    if call.tool is None:
        call.error = f"there is no tool named {call.name!r}; the tools are: {', '.join(by_name)}"
        return call
    try:
        call.parsed, call.args, call.kwargs = call.tool.arguments(call.arguments)
    except ToolArgumentsError as exc:
        call.error = str(exc)
        return call
    canonical = json.dumps(call.parsed, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    try:
        call.key = cache_key({"kind": "tool", "name": call.name, "arguments": canonical})
    except CacheError:
        call.key = None
    return call


def _prepare(call: _Call, approve: Callable[[str, dict[str, Any]], bool] | None, memo: Any) -> None:
    """Ask ``approve``, then look in the memo: in the calling thread, one call after another."""
    if call.error is not None:
        return
    if approve is not None and not approve(call.name, dict(call.parsed)):
        call.error = f"the user did not approve this call of {call.name}"
        return
    call.approved = True
    if memo is not None and call.key is not None:
        hit = memo.get(call.key)
        if hit is not None:
            call.result, call.cached = hit["tool_result"], True


def _invoke(calls: list[_Call]) -> None:
    """Run ``calls`` (concurrently if more than one), each in a copy of this context."""
    if len(calls) <= 1:
        for call in calls:
            _run_one(call)
        return
    pool = ThreadPoolExecutor(min(len(calls), _MAX_WORKERS), thread_name_prefix="llmkit-tool")
    try:
        futures = [pool.submit(contextvars.copy_context().run, _run_one, c) for c in calls]
        for future in futures:
            future.result()
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def _run_one(call: _Call) -> None:
    assert call.tool is not None
    try:
        value = call.tool.function(*call.args, **call.kwargs)
    except Exception as exc:
        call.error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        return
    try:
        call.result = value if isinstance(value, str) else json.dumps(
            value, default=_jsonable, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError) as exc:
        call.error = f"the result of {call.name} cannot be sent as JSON: {exc}"


def _jsonable(value: Any) -> Any:
    """JSON for what ``json`` cannot write: pydantic models and dataclasses as objects, else str."""
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if hasattr(value, "__dataclass_fields__") and not isinstance(value, type):
        import dataclasses
        return dataclasses.asdict(value)
    return str(value)


def _remember(call: _Call, memo: Any) -> None:
    """Keep a pure tool's new result in the memo (a result that cannot be kept: a warning)."""
    if memo is None or call.key is None or call.result is None or call.cached:
        return
    try:
        memo.set(call.key, {"tool_result": call.result})
    except CacheError as exc:
        from ..base.cache import CacheWarning
        warnings.warn(f"the result of {call.name} was not cached: {exc}", CacheWarning, stacklevel=4)


def _step(call: _Call, completion: Any) -> ToolStep:
    return ToolStep(call.call_id, call.name, call.arguments, call.result if call.error is None else None,
                    call.error, call.approved, call.cached, completion)
