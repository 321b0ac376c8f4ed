"""Describing a Python function as a tool the model may call.

`as_tool` describes a function for the model: its name, the first paragraph of its docstring,
and a JSON schema of its parameters built by pydantic from the signature and type hints (with
each parameter's text from an ``Args:`` / ``:param x:`` / numpy ``Parameters`` section).
`Tool.spec` is the request's ``tools`` entry, which is also what `count_tokens` counts;
`Tool.arguments` validates what the model sends back. `identity` fingerprints what a function
computes, for the memo of pure tools. Running the model's calls is `llmkit.calls.tool_loop`.
A dict (``{"type": "web_search"}``) is a hosted tool (`hosted`): the server runs it, so it is
sent as it is and never described or run here.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import inspect
import json
import re
import threading
import types
import typing
import warnings
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..base.errors import ConfigError

__all__ = ["Tool", "ToolArgumentsError", "as_tool", "hosted", "identity", "spec"]

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # what the API accepts as a function name

# Functions already described, to (name, description, schema, validator): building the pydantic
# model takes 1.6 ms a function, and every call (every row of a map) describes its tools. Weak
# keys, and values that do not hold the function: a function redefined or dropped is let go.
_described: weakref.WeakKeyDictionary[Any, tuple[str, str, dict[str, Any], Any]] = \
    weakref.WeakKeyDictionary()
_described_lock = threading.Lock()


class ToolArgumentsError(ValueError):
    """Arguments the model sent that are not a JSON object or do not validate against the tool's
    parameters. The tool loop catches it and sends its text to the model as the call's error, so
    the message is written for the model to read and correct itself."""


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
        """``(parsed JSON, positional args, keyword args)`` for a call; `ToolArgumentsError` if the
        text is not a JSON object or does not validate."""
        try:
            parsed = json.loads(arguments_json or "{}")
        except (ValueError, RecursionError) as exc:
            raise ToolArgumentsError(f"the arguments of {self.name} are not valid JSON ({exc})") from None
        if not isinstance(parsed, dict):
            raise ToolArgumentsError(f"the arguments of {self.name} must be a JSON object, "
                               f"not {type(parsed).__name__}")
        if self.validator is None:
            return parsed, [], parsed
        from pydantic import ValidationError
        try:
            model = self.validator.model_validate(parsed)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'arguments'}: {e['msg']}" for e in exc.errors())
            raise ToolArgumentsError(f"invalid arguments for {self.name}: {problems}") from None
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


def hosted(tool: Any) -> bool:
    """True when ``tool`` is a hosted tool: a dict with a ``type`` other than ``"function"``
    (``{"type": "web_search"}``, ``{"type": "code_interpreter", "container": {"type": "auto"}}``,
    ``{"type": "mcp", ...}``, ``{"type": "file_search", ...}``). A dict that is not one raises
    `ConfigError`: a function tool is given as the Python function, which the loop can run."""
    if not isinstance(tool, Mapping):
        return False
    kind = tool.get("type")
    if not isinstance(kind, str) or not kind or kind == "function":
        raise ConfigError(f"tools=[{dict(tool)!r:.80}]: a dict in tools is a hosted tool with its "
                          "'type' (such as {'type': 'web_search'}); give a function tool as the "
                          "Python function itself (or as_tool(fn) of llmkit.calls.tool_spec)")
    return True


def spec(tool: Any) -> dict[str, Any]:
    """The request's ``tools`` entry for ``tool``: a hosted tool's dict unchanged (a copy), a
    function's `Tool.spec`."""
    return dict(tool) if hosted(tool) else as_tool(tool).spec()


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


def identity(fn: Callable[..., Any]) -> str | None:
    """A fingerprint (sha256 hex) of what ``fn`` computes, or None when it cannot be read.

    It covers the qualified name, the code (bytecode, constants, names, nested functions), the
    defaults, the values closed over, and the global functions and values the code names
    (functions of ``fn``'s own module followed in turn): a function redefined under the same
    name, a closure made with other values (``make_scale(2)``, ``make_scale(3)``) or a helper
    redefined since gets another fingerprint. Immutable values count by value; a mutable one (a
    list, a dict, any other object) by its type only: it is state, which a tool may change as it
    runs (a list of its calls, a counter), and a pure tool's result must not depend on it.
    Computed on every run, as a closure's cells may be rebound.
    """
    parts: list[Any] = []
    try:
        _fingerprint(fn, parts, set())
    except Exception:  # a value whose repr raises, nested too deep, ...
        return None
    return hashlib.sha256(repr(parts).encode("utf-8", "backslashreplace")).hexdigest()


_PLAIN = (type(None), bool, int, float, complex, str, bytes)
_MISSING = object()


def _fingerprint(value: Any, out: list[Any], seen: set[int]) -> None:
    """Append to ``out`` what ``value`` is and, for a function, what it computes."""
    if isinstance(value, _PLAIN):
        out.append(value)
    elif isinstance(value, (tuple, frozenset)):
        out.append((type(value).__name__, len(value)))
        for item in sorted(value, key=repr) if isinstance(value, frozenset) else value:
            _fingerprint(item, out, seen)
    elif isinstance(value, (type, types.ModuleType, types.BuiltinFunctionType)):
        out.append((type(value).__name__, getattr(value, "__module__", None),
                    getattr(value, "__qualname__", getattr(value, "__name__", None))))
    elif isinstance(value, types.CodeType):
        out.append((value.co_name, value.co_code, value.co_names, value.co_varnames,
                    value.co_freevars))
        for const in value.co_consts:
            _fingerprint(const, out, seen)
    elif id(value) in seen:  # a function met again: recursion, or mutual recursion
        out.append(("again", getattr(value, "__qualname__", None)))
    elif isinstance(value, types.FunctionType):
        seen.add(id(value))
        out.append(("function", value.__module__, value.__qualname__))
        keywords = tuple(sorted((value.__kwdefaults__ or {}).items()))
        for part in (value.__code__, value.__defaults__, keywords):
            _fingerprint(part, out, seen)
        for cell in value.__closure__ or ():
            try:
                contents = cell.cell_contents
            except ValueError:  # a cell not filled yet
                contents = "<empty cell>"
            _fingerprint(contents, out, seen)
        for name in value.__code__.co_names:  # the globals it may read (attribute names aside)
            found = value.__globals__.get(name, _MISSING)
            if found is _MISSING:
                continue
            out.append(name)
            if isinstance(found, types.FunctionType) and found.__module__ != value.__module__:
                out.append(("function", found.__module__, found.__qualname__))  # a library's
            else:
                _fingerprint(found, out, seen)
    elif isinstance(value, types.MethodType):
        _fingerprint(value.__func__, out, seen)
        _fingerprint(value.__self__, out, seen)
    elif isinstance(value, functools.partial):
        out.append("partial")
        for piece in (value.func, value.args, tuple(sorted(value.keywords.items()))):
            _fingerprint(piece, out, seen)
    else:  # state, counted by its type only (see `identity`)
        out.append(("object", type(value).__module__, type(value).__qualname__))


def _describe(fn: Callable[..., Any], name: str | None,
              description: str | None) -> tuple[str, str, dict[str, Any], Any]:
    if isinstance(fn, Mapping):
        hosted(fn)  # a dict that is no tool at all raises its ConfigError
        raise ConfigError(f"{dict(fn)!r:.80} is a hosted tool: the server runs it, so it has no "
                          "Python description; pass it in tools=[...]")
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
