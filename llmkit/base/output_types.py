"""Typed answers: an ``output_type`` turned into a strict JSON schema, and the answer parsed back.

``output_type(spec)`` accepts ``bool``, ``int``, ``float``, ``list``, ``dict``, a
``typing.Literal[...]`` or a list/tuple of options, a pydantic (v2) model, ``list[Model]`` and
generally any type pydantic's ``TypeAdapter`` handles, and returns an `OutputType`: the schema to
send as ``response_format`` where the server honours Structured Outputs, the instructions to add to
the prompt where it does not, and `OutputType.parse`, which validates the answer either way.

The schema follows OpenAI's Structured Outputs rules (guide, "Supported schemas"):

- the root is an object, never ``anyOf``: any other type is wrapped as ``{"value": ...}``;
- every object has ``additionalProperties: false`` and lists all its properties in ``required``;
  a field with a default becomes ``anyOf [T, null]`` (the guide's way to emulate an optional
  field), and a null answer for it is dropped before validation, so the default applies;
- only the listed keywords are kept: ``type``, ``properties``, ``required``, ``items``, ``anyOf``,
  ``enum``, ``const``, ``$ref``/``$defs`` (recursion included), ``description``, ``pattern``,
  ``format`` (date-time, time, date, duration, email, hostname, ipv4, ipv6, uuid), ``multipleOf``,
  ``minimum``/``maximum`` (and exclusive), ``minItems``/``maxItems``. The rest (``default``,
  ``title``, ``minLength``/``maxLength``, other formats) is dropped: pydantic still checks it when
  the answer is parsed. ``oneOf`` (discriminated unions) becomes ``anyOf``; a ``$ref`` with a
  ``description`` beside it is inlined, as the ``openai`` SDK's own converter does.
- Strict mode cannot express a free-form object (``dict``, ``dict[str, X]``): such a type gets a
  schema with ``strict: false``, which the server takes as guidance only.
- ``Any``/``object`` fields, sets (``uniqueItems``), tuples (``prefixItems``) and types with no
  JSON schema at all (a callable) raise `OutputTypeError` naming the field. Plain ``list`` asks
  for strings, numbers, booleans or nulls (strict mode has no "any value").
- OpenAI's size limits (properties, nesting depth, enum values) are left to the server to report.

An answer nested more than `MAX_DEPTH` levels deep is refused before it is decoded (Python's JSON
decoder, the cleaning below and pydantic all recurse, and would raise a bare `RecursionError`):
OpenAI's Structured Outputs allow 10 levels of nesting, so a real answer is far from it.

Parsing is lenient where a non-strict server may stray: a ```json fence, prose around the object,
a bare value instead of ``{"value": ...}``, ``"30"`` for an int (pydantic's lax mode). It is not
lenient where the answer would be wrong: ``true`` for a number is refused.

pydantic is imported inside functions: ``import llmkit`` never loads it.
"""

from __future__ import annotations

import collections.abc
import copy
import functools
import inspect
import json
import re
import threading
import types
import typing
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from .errors import OutputTypeError
from .strict_schema import _OMIT, _json_type, _public, _refs, _Strict

__all__ = ["MAX_DEPTH", "OutputType", "output_type"]

_CACHE_SIZE = 256
MAX_DEPTH = 100
"""The deepest nesting of arrays and objects an answer may have."""
_KINDS = "use int, float, bool, list, dict, a list of options, Literal[...] or a pydantic model"


@dataclass(frozen=True, eq=False)
class OutputType:
    """An answer's type: what the user gave (``spec``), a short ``name``, the strict JSON
    ``schema`` of the answer (always an object; other types sit under ``"value"`` when
    ``wrapped``), and whether the server can be held to it (``strict``: False only for
    free-form objects). Shared between calls: do not mutate ``schema``."""

    spec: Any
    name: str
    schema: dict[str, Any]
    wrapped: bool
    strict: bool = True
    _walk: dict[str, Any] = field(default_factory=dict, repr=False)  # schema with _OMIT markers
    _adapter: Any = field(default=None, repr=False)

    def response_format(self) -> dict[str, Any]:
        """The ``response_format`` for servers with Structured Outputs (a copy: safe to change)."""
        return {"type": "json_schema", "json_schema": {
            "name": self.name, "schema": copy.deepcopy(self.schema), "strict": self.strict}}

    def instructions(self) -> str:
        """For servers without Structured Outputs: one paragraph asking for the JSON object."""
        schema = json.dumps(self.schema, separators=(",", ":"), ensure_ascii=False)
        where = ' Put the answer under "value", as in {"value": ...}.' if self.wrapped else ""
        return ("Answer with only a JSON object that matches this JSON schema, with no other text "
                f"before or after it and no code fence.{where} Schema: {schema}")

    def parse(self, text: str) -> Any:
        """The validated Python value of the answer ``text`` (a model instance for a model), or
        `OutputTypeError` carrying the raw ``text`` and what failed in ``detail``."""
        try:
            return self._parse(text)
        except RecursionError:  # a backstop: `_load` refuses deep answers, but the stack may be deep
            raise self._error(text, "it is nested too deeply to read", "RecursionError") from None

    def _parse(self, text: str) -> Any:
        from pydantic import ValidationError

        data = _load(text, self)
        inner = self._walk["properties"]["value"] if self.wrapped else self._walk
        if self.wrapped and isinstance(data, dict) and "value" in data and (
                len(data) == 1 or not _fits(data, inner, self._walk.get("$defs", {}))):
            data = data["value"]
        try:
            data = _clean(data, inner, self._walk.get("$defs", {}), ())
            return self._adapter.validate_python(data)
        except _Mismatch as exc:
            raise self._error(text, f"{exc.where}: {exc.problem}", exc.full) from None
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
            raise self._error(text, f"{where + ': ' if where else ''}{first['msg']}{more}",
                              str(exc)) from None

    def _error(self, text: str, problem: str, detail: str) -> OutputTypeError:
        start = (text or "").strip()
        start = start if len(start) <= 120 else start[:120] + "…"
        return OutputTypeError(f"the answer is not {_expected(self.spec, self.name)}: {problem}; "
                               f"the answer starts {start!r}", text=text, detail=detail)


_memo: OrderedDict[Any, OutputType] = OrderedDict()
_memo_lock = threading.Lock()


def output_type(spec: Any) -> OutputType | None:
    """The `OutputType` of ``spec``; None for None and ``str`` (plain text needs no schema).
    Raises `OutputTypeError` for a type that cannot be turned into a schema, naming the field."""
    if spec is None or spec is str:
        return None
    if isinstance(spec, OutputType):
        return spec
    key = _memo_key(spec)
    if key is not None:
        with _memo_lock:
            if key in _memo:
                _memo.move_to_end(key)
                return _memo[key]
    built = _build(spec)
    if key is not None:
        with _memo_lock:
            _memo[key] = built
            while len(_memo) > _CACHE_SIZE:
                _memo.popitem(last=False)
    return built


def _memo_key(spec: Any) -> Any:
    if isinstance(spec, (list, tuple)):  # options: 1 and True are different answers
        spec = ("options", tuple((type(o), o) for o in spec))
    try:
        hash(spec)
    except TypeError:
        return None
    return spec


def _build(spec: Any) -> OutputType:
    from pydantic import PydanticUserError, TypeAdapter

    if isinstance(spec, str) or inspect.isroutine(spec):
        raise OutputTypeError(f"output_type {spec!r} is not a type: {_KINDS}")
    name = _name(spec)
    target = _options(spec) if isinstance(spec, (list, tuple)) else spec
    try:
        adapter = TypeAdapter(target)
        raw = adapter.json_schema(schema_generator=_generator())
    except (PydanticUserError, TypeError) as exc:
        where, what = _find_unschematizable(target, ()) or ((), _display(target))
        problem = f"field '{'.'.join(where)}' has type {what}, which" if where else f"{what}"
        raise OutputTypeError(f"output_type {name}: {problem} has no JSON schema ({_KINDS})",
                              detail=str(exc)) from None
    builder = _Strict(raw, name)
    body = builder.node({k: v for k, v in raw.items() if k != "$defs"}, ())
    if set(body) == {"$ref"}:  # a recursive model: its definition is the root
        body = copy.deepcopy(builder.done[body["$ref"].rsplit("/", 1)[1]])
    wrapped = body.get("type") != "object" or "anyOf" in body
    if wrapped:
        body = {"type": "object", "properties": {"value": body}, "required": ["value"],
                "additionalProperties": False}
    used = _refs(body, builder.done)
    if used:
        body["$defs"] = {n: builder.done[n] for n in builder.done if n in used}
    return OutputType(spec, name, _public(body), wrapped, builder.strict, body, adapter)


@functools.cache
def _generator() -> Any:
    """pydantic's schema generator, quiet about defaults it cannot encode: they are dropped anyway."""
    from pydantic.json_schema import GenerateJsonSchema, JsonSchemaWarningKind

    class Quiet(GenerateJsonSchema):
        ignored_warning_kinds: set[JsonSchemaWarningKind] = {  # noqa: RUF012 (pydantic's own shape)
            "skipped-choice", "non-serializable-default"}

    return Quiet


def _options(spec: list[Any] | tuple[Any, ...]) -> Any:
    if not spec or not all(o is None or isinstance(o, (str, int, float, bool)) for o in spec):
        raise OutputTypeError(f"output_type {spec!r}: options must be a non-empty list of strings, "
                              "numbers, booleans or None")
    return typing.Literal[tuple(spec)]


class _Mismatch(Exception):
    def __init__(self, path: tuple[str, ...], problem: str) -> None:
        self.where = ".".join(path) or "value"
        self.problem = problem
        self.full = f"1 validation error\n{self.where}\n  {problem}"


_FENCE = re.compile(r"^```[\w-]*[ \t]*\n?(.*?)\n?```$", re.DOTALL)


def _load(text: str, typed: OutputType) -> Any:
    """The answer's JSON: a fence, or prose around one object or array, is tolerated; for a scalar
    type, a bare word (``positive``) is taken as the value itself."""
    stripped = (text or "").strip()
    fenced = _FENCE.match(stripped)
    body = fenced.group(1).strip() if fenced else stripped
    if _too_deep(body):
        raise typed._error(text, f"it is nested more than {MAX_DEPTH} levels deep",
                           f"arrays and objects nested more than MAX_DEPTH = {MAX_DEPTH} levels")
    try:
        return json.loads(body, parse_constant=_no_constant)
    except ValueError as exc:
        for opening, closing in ("{}", "[]"):  # prose around the object (or array)
            first, last = body.find(opening), body.rfind(closing)
            if 0 <= first < last:
                try:
                    return json.loads(body[first:last + 1], parse_constant=_no_constant)
                except ValueError:
                    pass
        inner = typed._walk["properties"]["value"] if typed.wrapped else {}
        if body[:1] not in ("", "{", "[") and inner.get("type") in ("string", "boolean", "integer", "number"):
            return body
        raise typed._error(text, f"it is not JSON ({exc})", str(exc)) from None


_NESTING = re.compile(r'"(?:[^"\\]|\\.)*"?|[\[\]{}]')  # a string (skipped whole) or a bracket


def _too_deep(text: str) -> bool:
    """Whether arrays/objects in ``text`` nest more than `MAX_DEPTH` deep (a scan, no recursion)."""
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return False
    depth = 0
    for match in _NESTING.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return True
        elif token in "]}":
            depth -= 1
    return False


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _clean(value: Any, s: dict[str, Any], defs: dict[str, Any], path: tuple[str, ...]) -> Any:
    """``value`` with the nulls that stand for "not given" removed (so defaults apply), and a
    boolean where a number is expected refused (pydantic's lax mode would take true as 1)."""
    if "$ref" in s:
        s = defs[s["$ref"].rsplit("/", 1)[1]]
    if "anyOf" in s:
        if value is None:
            return None
        fits = [b for b in s["anyOf"] if _fits(value, b, defs)]
        if fits:
            return _clean(value, fits[0], defs, path)
        if isinstance(value, bool) and any(_fits(1, b, defs) for b in s["anyOf"]):
            raise _Mismatch(path, "Input should be a number, not a boolean")
        return value
    kind = s.get("type")
    if isinstance(value, bool) and kind in ("integer", "number"):
        raise _Mismatch(path, f"Input should be {'an integer' if kind == 'integer' else 'a number'}, "
                              f"not a boolean [input_value={value}]")
    if isinstance(value, dict) and isinstance(s.get("properties"), dict):
        omit, props = s.get(_OMIT, ()), s["properties"]
        return {k: _clean(v, props[k], defs, (*path, k)) if k in props else v
                for k, v in value.items() if not (v is None and k in omit)}
    if isinstance(value, dict) and isinstance(s.get("additionalProperties"), dict):
        return {k: _clean(v, s["additionalProperties"], defs, (*path, k)) for k, v in value.items()}
    if isinstance(value, list) and isinstance(s.get("items"), dict):
        return [_clean(v, s["items"], defs, (*path, str(i))) for i, v in enumerate(value)]
    return value


def _fits(value: Any, s: dict[str, Any], defs: dict[str, Any]) -> bool:
    if "$ref" in s:
        s = defs[s["$ref"].rsplit("/", 1)[1]]
    if "anyOf" in s:
        return any(_fits(value, b, defs) for b in s["anyOf"])
    kind, have = s.get("type"), _json_type(value)
    if have == "object":
        return kind == "object" and set(value) <= set(s.get("properties", value))
    if have == "number" and kind == "integer":
        return bool(value.is_integer())
    return kind == have or (have == "integer" and kind == "number")


def _find_unschematizable(tp: Any, path: tuple[str, ...]) -> tuple[tuple[str, ...], str] | None:
    """Where in ``tp`` pydantic fails to make a JSON schema: (field path, type name), or None."""
    from pydantic import BaseModel, PydanticUserError, TypeAdapter

    try:
        TypeAdapter(tp).json_schema(schema_generator=_generator())
        return None
    except PydanticUserError:
        pass
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        for key, info in tp.model_fields.items():
            found = _find_unschematizable(info.annotation, (*path, info.alias or key))
            if found:
                return found
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Annotated:
        return _find_unschematizable(args[0], path)
    if origin in (typing.Union, types.UnionType):
        return next((f for a in args if (f := _find_unschematizable(a, path))), None) or (path, _display(tp))
    # mypy types Callable as a special form, but get_origin returns the class collections.abc.Callable
    if isinstance(origin, type) and args and origin is not collections.abc.Callable:  # type: ignore[comparison-overlap]
        step = "*" if issubclass(origin, dict) else "0"
        for arg in args[1:] if issubclass(origin, dict) else args:
            if arg is not Ellipsis and (found := _find_unschematizable(arg, (*path, step))):
                return found
    return path, _display(tp)


def _display(tp: Any) -> str:
    """A type's name for a message: ``Callable``, ``set``, ``Foo``."""
    return getattr(typing.get_origin(tp) or tp, "__name__", None) or repr(tp)


def _type_name(tp: Any) -> str:
    if tp is None or tp is type(None):
        return "None"
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Literal:
        return "choice"
    if origin is typing.Annotated:
        return _type_name(args[0])
    if origin in (typing.Union, types.UnionType):
        return "_or_".join(_type_name(a) for a in args)
    if origin is not None:
        base = getattr(origin, "__name__", None) or str(origin).replace("typing.", "")
        named = [_type_name(a) for a in args if a is not Ellipsis and not isinstance(a, list)]
        return f"{base}_of_{'_and_'.join(named)}" if named else base
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _name(spec: Any) -> str:
    name = "choice" if isinstance(spec, (list, tuple)) else _type_name(spec)
    return re.sub(r"[^a-zA-Z0-9_-]", "_", name)[:64] or "answer"


def _expected(spec: Any, name: str) -> str:
    """What the answer should have been, in words."""
    options = spec if isinstance(spec, (list, tuple)) else (
        typing.get_args(spec) if typing.get_origin(spec) is typing.Literal else None)
    if options is not None:
        return "one of " + ", ".join(json.dumps(o, default=str) for o in options)
    simple = {int: "an integer", float: "a number", bool: "true or false", list: "a JSON array",
              dict: "a JSON object"}
    if isinstance(spec, type) and spec in simple:
        return simple[spec]
    if typing.get_origin(spec) is list and len(typing.get_args(spec)) == 1:
        return f"a list of {_type_name(typing.get_args(spec)[0])}"
    return f"a {name}"
