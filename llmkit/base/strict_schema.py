"""OpenAI's strict JSON-schema subset, made from pydantic's schema (see `llmkit.base.output_types`).

`_Strict` rewrites pydantic's JSON schema node by node: every object closed and fully required,
defaults turned into nullable fields, unsupported keywords dropped or refused with the field path.
"""

from __future__ import annotations

import copy
from typing import Any

from .errors import OutputTypeError

_OMIT = "x-llmkit-omit-null"  # private marker (never sent): fields whose null means "not given"
_FORMATS = {"date-time", "time", "date", "duration", "email", "hostname", "ipv4", "ipv6", "uuid"}
_KEEP = ("description", "pattern", "multipleOf", "maximum", "exclusiveMaximum", "minimum",
         "exclusiveMinimum", "minItems", "maxItems")
_REFUSED = {"uniqueItems": "a set", "prefixItems": "a tuple", "not": "uses 'not'", "if": "uses 'if'",
            "dependentRequired": "uses 'dependentRequired'",
            "dependentSchemas": "uses 'dependentSchemas'"}
_SHAPE = {"type", "anyOf", "oneOf", "allOf", "$ref", "enum", "const", "properties", "items",
          "additionalProperties"}
_JSON_ITEM = {"anyOf": [{"type": "string"}, {"type": "number"}, {"type": "boolean"}, {"type": "null"}]}


class _Strict:
    """Rewrites pydantic's JSON schema node by node into OpenAI's strict subset, following
    ``$ref``s from the root so that an error names the field path that leads to the problem."""

    def __init__(self, raw: dict[str, Any], name: str) -> None:
        self.defs: dict[str, Any] = raw.get("$defs", {})
        self.done: dict[str, dict[str, Any]] = {}
        self.busy: set[str] = set()
        self.name = name
        self.strict = True

    def fail(self, path: tuple[str, ...], what: str) -> OutputTypeError:
        where = f"field '{'.'.join(path)}'" if path else "the answer"
        return OutputTypeError(f"output_type {self.name}: {where} {what}, which strict JSON "
                               "schema cannot express; give it a concrete type (str, int, a model, "
                               "list[...]), or dict for a free-form object")

    def node(self, s: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
        if not s.keys() & _SHAPE:  # only annotations (title, default...): any value at all
            raise self.fail(path, "has type Any (any JSON value)")
        for key, what in _REFUSED.items():
            if key in s:
                raise self.fail(path, f"is {what}" if what.startswith("a ") else what)
        if "allOf" in s:
            if len(s["allOf"]) != 1:
                raise self.fail(path, "uses 'allOf'")
            s = {**{k: v for k, v in s.items() if k != "allOf"}, **s["allOf"][0]}
        if "$ref" in s:
            return self.ref(s, path)
        out: dict[str, Any] = {k: s[k] for k in _KEEP if k in s}
        if s.get("format") in _FORMATS:
            out["format"] = s["format"]
        branches = s.get("anyOf", s.get("oneOf"))
        if branches is not None:
            out["anyOf"] = [self.node(b, path) for b in branches]
        if ("enum" in s or "const" in s) and "type" not in s:
            out.update(_typed_values(s))
        elif "enum" in s or "const" in s:
            out.update({k: s[k] for k in ("type", "enum", "const") if k in s})
        elif s.get("type") == "object" or "properties" in s:
            out.update(self.obj(s, path))
        elif s.get("type") == "array":
            items = s.get("items")
            out.update(type="array",
                       items=self.node(items, (*path, "0")) if items else copy.deepcopy(_JSON_ITEM))
        elif "type" in s:
            out["type"] = s["type"]
        return out

    def obj(self, s: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
        if "properties" not in s:  # a free-form object (dict): strict mode has no way to say it
            self.strict = False
            extra = s.get("additionalProperties", True)
            return {"type": "object", "additionalProperties":
                    self.node(extra, (*path, "*")) if isinstance(extra, dict) and extra else True}
        given = set(s.get("required", ()))
        props: dict[str, Any] = {}
        omit = []
        for key, sub in s["properties"].items():
            one = self.node(sub, (*path, key))
            if key not in given and not _nullable(one):
                described = {"description": one.pop("description")} if "description" in one else {}
                one = {**described, "anyOf": [one, {"type": "null"}]}
                omit.append(key)
            props[key] = one
        out = {"type": "object", "properties": props, "required": list(props),
               "additionalProperties": False}
        return {**out, _OMIT: omit} if omit else out

    def ref(self, s: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
        ref = s["$ref"]
        if not ref.startswith("#/$defs/"):
            raise self.fail(path, f"refers to {ref}")
        name = ref[len("#/$defs/"):]
        if name not in self.done and name not in self.busy:
            self.busy.add(name)
            self.done[name] = self.node(self.defs[name], path)
            self.busy.discard(name)
        if "description" in s and name in self.done:  # a $ref takes no siblings: inline it
            return {**copy.deepcopy(self.done[name]), "description": s["description"]}
        return {"$ref": ref}


def _typed_values(s: dict[str, Any]) -> dict[str, Any]:
    """An ``enum``/``const`` without a ``type`` (``Literal[1, "a"]``), split by JSON type."""
    values = s["enum"] if "enum" in s else [s["const"]]
    groups: dict[str, list[Any]] = {}
    for v in values:
        groups.setdefault(_json_type(v), []).append(v)
    parts = [{"type": t} if t == "null" else {"type": t, "enum": vs} for t, vs in groups.items()]
    return parts[0] if len(parts) == 1 else {"anyOf": parts}


def _json_type(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    for kind, name in ((int, "integer"), (float, "number"), (dict, "object"), (list, "array")):
        if isinstance(v, kind):
            return name
    return "string"


def _nullable(s: dict[str, Any]) -> bool:
    t = s.get("type")
    return (t == "null" or (isinstance(t, list) and "null" in t)
            or any(_nullable(b) for b in s.get("anyOf", ())))


def _refs(s: Any, defs: dict[str, Any], seen: set[str] | None = None) -> set[str]:
    """The definitions ``s`` uses, directly or through other definitions."""
    seen = set() if seen is None else seen
    if isinstance(s, dict):
        ref = s.get("$ref")
        if isinstance(ref, str) and ref.rsplit("/", 1)[1] not in seen:
            seen.add(ref.rsplit("/", 1)[1])
            _refs(defs[ref.rsplit("/", 1)[1]], defs, seen)
        for v in s.values():
            _refs(v, defs, seen)
    elif isinstance(s, list):
        for v in s:
            _refs(v, defs, seen)
    return seen


def _public(s: Any) -> Any:
    if isinstance(s, dict):
        return {k: _public(v) for k, v in s.items() if k != _OMIT}
    if isinstance(s, list):
        return [_public(v) for v in s]
    return s


