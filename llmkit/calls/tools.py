"""Tool calling: Python functions the model may call, and the loop that runs its calls.

`as_tool` describes a function for the model: its name, the first paragraph of its docstring,
and a JSON schema of its parameters built by pydantic from the signature and type hints (with
each parameter's text from an ``Args:`` / ``:param x:`` / numpy ``Parameters`` section).
`run_tools` sends a conversation, runs the calls the model asks for (those of one answer
concurrently), feeds their results back as ``role: "tool"`` messages and repeats until an
answer without calls, or raises `ToolLoopError` after ``max_steps`` answers that still ask for
tools. Whatever goes wrong with one call (an unknown tool, arguments that are not JSON or do
not validate, a refused approval, an exception in the tool) is sent to the model as a result
starting ``"error: "``, never raised. What the user's own ``approve`` raises comes out as itself.

With ``tool_cache="pure"`` a result is memoised in the response cache under
``cache_key({"kind": "tool", "name": ..., "arguments": <canonical JSON>})`` as
``{"tool_result": <text>}``: a run whose answers come from the cache replays its steps without
calling the tools. By default tools always run, cache hit or not.
"""

from __future__ import annotations

import contextlib
import contextvars
import inspect
import json
import re
import threading
import typing
import warnings
import weakref
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from ..base.cache_entries import cache_key
from ..base.errors import CacheError, ConfigError, ToolLoopError

__all__ = ["Tool", "ToolStep", "as_tool", "run_tools"]

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # what the API accepts as a function name
_MAX_WORKERS = 8  # concurrent calls of one answer; more wait for a free thread

# Functions already described, to (name, description, schema, validator): building the pydantic
# model takes 1.6 ms a function, and every call (every row of a map) describes its tools. Weak
# keys, and values that do not hold the function: a function redefined or dropped is let go.
_described: weakref.WeakKeyDictionary[Any, tuple[str, str, dict[str, Any], Any]] = \
    weakref.WeakKeyDictionary()
_described_lock = threading.Lock()


class _CallProblem(ValueError):
    """A tool call that cannot run; the text is what the model is told."""


@dataclass(frozen=True)
class Tool:
    """A function the model may call: ``parameters`` is the JSON schema (an object) of its
    keyword arguments. ``strict=True`` asks the API to hold the model to the schema, which then
    must follow the API's strict subset (every property required, no additional ones)."""

    name: str
    description: str
    parameters: dict[str, Any]
    function: Callable[..., Any] = field(repr=False)
    strict: bool = False
    validator: Any = field(default=None, repr=False, compare=False)  # pydantic model, or None

    def spec(self) -> dict[str, Any]:
        """The entry of the request's ``tools`` list for this tool."""
        function: dict[str, Any] = {"name": self.name, "description": self.description,
                                    "parameters": self.parameters, "strict": self.strict}
        if not self.description:
            del function["description"]
        return {"type": "function", "function": function}

    def arguments(self, arguments_json: str) -> tuple[dict[str, Any], list[Any], dict[str, Any]]:
        """``(parsed JSON, positional args, keyword args)`` for a call; `_CallProblem` if the
        text is not a JSON object or does not validate."""
        try:
            parsed = json.loads(arguments_json or "{}")
        except (ValueError, RecursionError) as exc:
            raise _CallProblem(f"the arguments of {self.name} are not valid JSON ({exc})") from None
        if not isinstance(parsed, dict):
            raise _CallProblem(f"the arguments of {self.name} must be a JSON object, "
                               f"not {type(parsed).__name__}")
        if self.validator is None:
            return parsed, [], parsed
        from pydantic import ValidationError
        try:
            model = self.validator.model_validate(parsed)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'arguments'}: {e['msg']}" for e in exc.errors())
            raise _CallProblem(f"invalid arguments for {self.name}: {problems}") from None
        args, kwargs = [], {}
        for key, spec in type(model).model_fields.items():  # "a<i>": positional-only, "p<i>": not
            if key.startswith("a"):
                args.append(getattr(model, key))
            else:
                kwargs[str(spec.alias)] = getattr(model, key)
        return parsed, args, kwargs

    def call(self, arguments_json: str) -> Any:
        """Parse and validate ``arguments_json``, then call the function and return its value."""
        _, args, kwargs = self.arguments(arguments_json)
        return self.function(*args, **kwargs)


def as_tool(fn: Callable[..., Any] | Tool, *, name: str | None = None,
            description: str | None = None) -> Tool:
    """``fn`` described as a `Tool` (a `Tool` is returned as it is).

    The name is the function's ``__name__`` (or ``name``), the description the first paragraph
    of its docstring (or ``description``); every parameter with no default is required.
    ``*args`` and ``**kwargs`` are not offered to the model.
    """
    if isinstance(fn, Tool):
        return fn
    plain = name is None and description is None
    found = None
    if plain:
        try:
            with _described_lock:
                found = _described.get(fn)
        except TypeError:  # not hashable, or no weak reference to it
            plain = False
    if found is None:
        found = _describe(fn, name, description)
        if plain:
            with _described_lock, contextlib.suppress(TypeError):
                _described[fn] = found
    name, summary, schema, validator = found
    return Tool(name, summary, schema, fn, validator=validator)


def _describe(fn: Callable[..., Any], name: str | None,
              description: str | None) -> tuple[str, str, dict[str, Any], Any]:
    if not callable(fn):
        raise TypeError(f"a tool must be a function or a llmkit Tool, not {type(fn).__name__}")
    if inspect.iscoroutinefunction(fn):
        raise TypeError(f"{fn!r} is async: tools run in threads; pass a function that calls "
                        "asyncio.run(...) instead")
    name = str(name or getattr(fn, "__name__", None)
               or getattr(getattr(fn, "func", None), "__name__", ""))  # a functools.partial
    if not _NAME.match(name):
        raise ConfigError(f"tool name {name!r} is not accepted by the API (letters, digits, _ "
                          "and -, at most 64); pass as_tool(fn, name=...)")
    summary, docs = _parse_docstring(inspect.getdoc(fn) or "")
    validator = _validator(fn, name, docs)
    with warnings.catch_warnings():  # a default that is not JSON is left out of the schema
        from pydantic.json_schema import PydanticJsonSchemaWarning
        warnings.simplefilter("ignore", PydanticJsonSchemaWarning)
        schema = _tidy(validator.model_json_schema())
    schema.setdefault("properties", {})
    return name, summary if description is None else description, schema, validator


def _validator(fn: Callable[..., Any], name: str, docs: Mapping[str, str]) -> Any:
    """A pydantic model of ``fn``'s parameters: fields ``p0, p1...`` (``a<i>`` if positional-only)
    aliased to their names, so that no parameter name can clash with pydantic's own attributes."""
    from pydantic import ConfigDict, Field, create_model
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"cannot read the signature of tool {name}: {exc}") from None
    try:
        hints = typing.get_type_hints(fn, include_extras=True)
    except Exception as exc:  # NameError for a hint naming something out of scope, and others
        raise TypeError(f"cannot resolve the type hints of tool {name}: {exc}") from None
    fields: dict[str, Any] = {}
    for index, (pname, p) in enumerate(signature.parameters.items()):
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        default = ... if p.default is p.empty else p.default
        key = f"a{index}" if p.kind is p.POSITIONAL_ONLY else f"p{index}"
        fields[key] = (hints.get(pname, Any), Field(default, alias=pname, description=docs.get(pname)))
    try:
        return create_model(f"{name}_arguments", __config__=ConfigDict(
            extra="forbid", arbitrary_types_allowed=False), **fields)
    except Exception as exc:  # pydantic cannot describe a type
        raise TypeError(f"cannot describe the parameters of tool {name} as JSON: {exc}") from None


def _tidy(schema: Any, names: bool = False) -> Any:
    """The schema without pydantic's ``title`` keywords (noise to the model); ``names``: the keys
    of this mapping are property or definition names, kept whatever they are."""
    if isinstance(schema, dict):
        return {k: _tidy(v, k in ("properties", "$defs") and not names)
                for k, v in schema.items() if names or k != "title"}
    if isinstance(schema, list):
        return [_tidy(v) for v in schema]
    return schema


_SECTION = re.compile(r"^(\s*)(Args|Arguments|Parameters|Params)\s*:\s*$")  # Google
_ITEM = re.compile(r"^\s*\**(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")  # Google: "x (int): text"
_SPHINX = re.compile(r"^\s*:param\s+(?:[^:]*\s)?(\w+)\s*:\s*(.*)$")  # ":param int x: text"
_NUMPY = re.compile(r"^\s*(\w+)\s*(?::.*)?$")  # numpy: "x : int", its text indented below


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _parse_docstring(doc: str) -> tuple[str, dict[str, str]]:
    """``(first paragraph as one line, {parameter: its text})``, from a Google ``Args:``
    section, Sphinx ``:param x:`` fields or a numpy ``Parameters`` section."""
    lines = doc.splitlines()
    summary: list[str] = []
    for line in lines:
        if not line.strip() or _SECTION.match(line) or line.lstrip().startswith(":") or (
                len(summary) < len(lines) - 1 and line.strip() == "Parameters"):
            break
        summary.append(line.strip())
    docs: dict[str, str] = {}
    current: str | None = None
    for line in lines:  # Sphinx: a field, then lines indented under it
        if (m := _SPHINX.match(line)) is not None:
            current, docs[m.group(1)] = m.group(1), m.group(2).strip()
        elif current is not None and line.strip() and _indent(line) > 0 \
                and not line.lstrip().startswith(":"):
            docs[current] += " " + line.strip()
        else:
            current = None
    for i, line in enumerate(lines):
        numpy = line.strip() == "Parameters" and i + 1 < len(lines) \
            and set(lines[i + 1].strip()) == {"-"}
        if (m := _SECTION.match(line)) is None and not numpy:
            continue
        base, items, current = _indent(line), None, None
        body = lines[i + 2:] if numpy else lines[i + 1:]
        for j, entry in enumerate(body):
            if not entry.strip():
                continue
            depth = _indent(entry)
            if depth < base or (depth == base and not numpy):
                break  # the section ended
            if numpy and depth == base and j + 1 < len(body) and set(body[j + 1].strip()) == {"-"}:
                break  # the next numpy section ("Returns" underlined)
            items = depth if items is None else items
            found = (_NUMPY if numpy else _ITEM).match(entry) if depth == items else None
            if found is not None:
                current = found.group(1)
                docs[current] = "" if numpy else found.group(2).strip()
            elif current is not None and depth > items:
                docs[current] = f"{docs[current]} {entry.strip()}".strip()
    return " ".join(summary), {k: v for k, v in docs.items() if v}


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
    except _CallProblem as exc:
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
