"""The tool-calling loop: running the calls the model asks for until it answers.

`run_tools` sends a conversation, runs the calls the model asks for (those of one answer
concurrently), feeds their results back as ``role: "tool"`` messages and repeats until an
answer without calls, or raises `ToolLoopError` after ``max_steps`` answers that still ask for
tools. Whatever goes wrong with one call (an unknown tool, arguments that are not JSON or do
not validate, a refused approval, an exception in the tool, ``SystemExit`` included, as argparse
raises it on bad arguments; a result that is not valid text) is sent to the model as a result
starting ``"error: "``, never raised. ``KeyboardInterrupt`` stops the loop, and what the user's
own ``approve`` raises comes out as itself. Tool results and errors are untrusted text: every
one passes ``scrub`` (the call's secrets replaced) before it is sent, stored or memoised.

With ``tool_cache="pure"`` a result is memoised in the response cache under
``cache_key({"kind": "tool", "name": ..., "function": <tool_spec.identity>, "arguments":
<canonical JSON>})`` as ``{"tool_result": <text>}``: a run whose answers come from the cache
replays its steps without calling the tools, and a function redefined under the same name (or
closing over other values) gets a key of its own. By default tools always run, cache hit or not.
How a function becomes a `Tool` is `llmkit.calls.tool_spec`. Hosted tools (dicts) run on the
server: only ``function_call`` items become ``tool_calls`` (`llmkit.base.answer_shapes`), so the
loop never sees their calls, and ``tools`` may hold them (they are skipped here).
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
from .tool_spec import Tool, ToolArgumentsError, as_tool, hosted

__all__ = ["YES", "ToolStep", "approved", "run_tools", "tool_messages"]

_MAX_WORKERS = 8  # concurrent calls of one answer; more wait for a free thread

YES = frozenset({"y", "yes"})
"""What ``approve`` may answer as text to approve a call (any case, spaces around ignored):
an ``input()`` prompt returns ``"n"`` as readily as ``"y"``, so only these words say yes."""


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
              tools: Sequence[Callable[..., Any] | Tool | Mapping[str, Any]], *, max_steps: int = 8,
              approve: Callable[[str, dict[str, Any]], bool | str] | None = None,
              tool_cache: str | None = None, cache: Any = None,
              scrub: Callable[[str], str] | None = None) -> tuple[Any, list[ToolStep]]:
    """Send ``messages``, run the tool calls of each answer, feed their results back, repeat.

    ``send(messages)`` returns a `Completion` (the request already carries the tools' specs).
    Returns ``(the first answer without tool calls, every step)``. ``messages`` is not changed:
    the returned Completion's ``messages`` hold the whole exchange. ``approve(name, arguments)``
    is asked before each call, in the calling thread and in call order; only ``True`` or a word
    of `YES` approves, anything else sends the model an error instead. ``tool_cache="pure"``
    memoises results in ``cache`` (a `ResponseCache`; None: no memo). ``scrub(text)`` is applied
    to every result and error before it goes anywhere (`llmkit.calls.send` passes one that hides
    the call's secrets). Raises `ToolLoopError` (with ``steps``) after ``max_steps`` answers that
    all asked for tools; the calls of the last one are recorded, not run.
    """
    if tool_cache not in (None, "pure"):
        raise ConfigError(f"tool_cache must be None or 'pure', not {tool_cache!r}")
    if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1:
        raise ConfigError(f"max_steps must be a whole number of at least 1, not {max_steps!r}")
    declared = [as_tool(t) for t in tools if not hosted(t)]  # type: ignore[arg-type]
    by_name = {t.name: t for t in declared}
    if len(by_name) < len(declared):
        raise ConfigError(f"two tools share a name: {[t.name for t in declared]}")
    memo = cache if tool_cache == "pure" else None
    identities: dict[str, str | None] = {}
    if memo is not None:
        from .tool_spec import identity
        identities = {t.name: identity(t.function) for t in declared}
    clean = scrub or _unchanged
    conversation = [dict(m) for m in messages]
    steps: list[ToolStep] = []
    for turn in range(1, max_steps + 1):
        completion = send(list(conversation))
        message = completion.message
        requested = message.get("tool_calls")
        if not requested:
            return completion, steps
        calls = [_checked(by_name, identities, raw, i) for i, raw in enumerate(_as_list(requested))]
        if turn == max_steps:
            for call in calls:
                call.error = call.error or f"not run: the loop stopped after max_steps={max_steps}"
            steps += [_step(c, completion, clean) for c in calls]
            break
        for call in calls:
            _prepare(call, approve, memo)
        _invoke([c for c in calls if c.error is None and c.result is None])
        made = [_step(c, completion, clean) for c in calls]
        for call in calls:
            _remember(call, memo)
        steps += made
        conversation += tool_messages(made)
    ran = len(steps) - len(calls)
    errors = [f"{s.name}: {s.error}" for s in steps if s.error and not s.error.startswith("not run:")]
    raise ToolLoopError(
        f"the model still asked for tools after max_steps={max_steps} answers ({ran} tool call(s) "
        f"ran{'; last errors: ' + '; '.join(errors[-3:]) if errors else ''}); pass a larger "
        "max_steps, or see .steps for what the model asked", steps=steps)


def tool_messages(steps: Sequence[ToolStep]) -> list[dict[str, Any]]:
    """The messages that carry ``steps`` in a conversation, in the form the API expects: for each
    answer that asked for tools, the assistant message with its ``tool_calls``, then one
    ``role: "tool"`` message per call with its ``tool_call_id``. Built from the steps, not copied
    from the server's answer, so that ids always match and nothing else it sent is echoed back."""
    messages: list[dict[str, Any]] = []
    answer: Any = None
    calls: list[dict[str, Any]] = []
    for step in steps:
        if step.completion is not answer or not messages:
            answer, calls = step.completion, []
            said = getattr(answer, "message", None) or {}
            text = said.get("content")
            messages.append({"role": "assistant", "content": text if isinstance(text, str) and text
                             else None, "tool_calls": calls})
            if said.get("reasoning_items"):  # the Responses API's reasoning, passed back to it
                messages[-1]["reasoning_items"] = said["reasoning_items"]
        calls.append({"id": step.call_id, "type": "function",
                      "function": {"name": step.name, "arguments": step.arguments}})
        messages.append({"role": "tool", "tool_call_id": step.call_id, "content": step.content})
    return messages


def approved(answer: Any) -> bool:
    """True when what ``approve`` returned says yes: ``True``, or a word of `YES`."""
    return answer is True or (isinstance(answer, str) and answer.strip().lower() in YES)


def _unchanged(text: str) -> str:
    return text


def _as_list(requested: Any) -> list[Any]:
    return list(requested) if isinstance(requested, list) else [requested]


def _checked(by_name: Mapping[str, Tool], identities: Mapping[str, str | None], raw: Any,
             index: int) -> _Call:
    """The call ``raw`` (an entry of ``tool_calls``) with its tool and arguments, or its error;
    with its memo key when its tool has an identity (``identities``: only for pure tools)."""
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
    function_id = identities.get(call.name)
    if function_id is None:
        return call
    canonical = json.dumps(call.parsed, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    try:
        call.key = cache_key({"kind": "tool", "name": call.name, "function": function_id,
                              "arguments": canonical})
    except CacheError:
        call.key = None
    return call


def _prepare(call: _Call, approve: Callable[[str, dict[str, Any]], Any] | None, memo: Any) -> None:
    """Ask ``approve``, then look in the memo: in the calling thread, one call after another."""
    if call.error is not None:
        return
    if approve is not None and not approved(approve(call.name, dict(call.parsed))):
        call.error = f"the user did not approve this call of {call.name}"
        return
    call.approved = True
    if memo is not None and call.key is not None:
        hit = memo.get(call.key)
        if isinstance(hit, Mapping) and isinstance(hit.get("tool_result"), str):  # a cache row
            call.result, call.cached = hit["tool_result"], True  # is untrusted: checked by _step


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
    """Call the tool and keep its result as text, or why there is none. Everything a tool raises
    but ``KeyboardInterrupt`` is the model's to read, ``SystemExit`` too (argparse raises it on
    arguments it refuses): a tool must not end the program."""
    assert call.tool is not None
    try:
        value = call.tool.function(*call.args, **call.kwargs)
    except (Exception, SystemExit) as exc:
        call.error = _error_text(exc)
        return
    try:  # str.__str__: the text itself, not a subclass's idea of it
        call.result = str.__str__(value) if isinstance(value, str) else json.dumps(
            value, default=_jsonable, ensure_ascii=False)
    except Exception as exc:  # a cycle, a __str__ or model_dump that raises, ...
        call.error = f"the result of {call.name} cannot be sent as JSON: {_error_text(exc)}"


def _error_text(exc: BaseException) -> str:
    """``"Type: message"``, even for an exception whose ``str()`` raises."""
    try:
        text = str(exc)
    except Exception:
        text = "(its message cannot be read: its __str__ raised)"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _settle(call: _Call, clean: Callable[[str], str]) -> None:
    """The call's result or error made fit to send, store and memoise: a result that is not valid
    text (a lone surrogate cannot be written as UTF-8) becomes an error, an error's own invalid
    characters are replaced, and both pass ``clean`` (secrets hidden)."""
    if call.error is None and call.result is not None and not _encodable(call.result):
        call.result, call.cached = None, False
        call.error = (f"the result of {call.name} is not valid text (it holds a lone surrogate, "
                      "which cannot be sent as UTF-8)")
    if call.error is not None:
        call.result = None
        call.error = clean(call.error.encode("utf-8", "replace").decode("utf-8"))
    elif call.result is not None:
        call.result = clean(call.result)


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


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


def _step(call: _Call, completion: Any, clean: Callable[[str], str]) -> ToolStep:
    _settle(call, clean)
    return ToolStep(call.call_id, call.name, call.arguments, call.result if call.error is None else None,
                    call.error, call.approved, call.cached, completion)
