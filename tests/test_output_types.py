"""Typed answers: strict JSON schemas built from an output_type, and answers parsed back."""

from __future__ import annotations

import datetime
import enum
import json
import re
import subprocess
import sys
from collections.abc import Callable
from typing import Annotated, Any, Literal, cast

import pytest
from pydantic import BaseModel, Field
from typing_extensions import TypedDict

from llmkit.base.errors import OutputTypeError
from llmkit.base.output_types import OutputType, output_type


class Person(BaseModel):
    name: str
    age: int


class Address(BaseModel):
    """Where someone lives."""

    city: str
    zip_code: str | None = None


class Profile(BaseModel):
    person: Person
    home: Address = Field(description="the main address")
    others: list[Address] = []
    nickname: str = "none"
    score: float | None = None
    seen: datetime.datetime


class Node(BaseModel):
    label: str
    children: list[Node] = []
    next: Node | None = None


class Mood(enum.Enum):
    HAPPY = "happy"
    SAD = "sad"


class Cat(BaseModel):
    kind: Literal["cat"]
    lives: int


class Dog(BaseModel):
    kind: Literal["dog"]
    good: bool


class Pets(BaseModel):
    pet: Annotated[Cat | Dog, Field(discriminator="kind")]


class Movie(TypedDict, total=False):
    title: str
    year: int


class Tagged(BaseModel):
    name: str
    counts: dict[str, int]


# What OpenAI's Structured Outputs guide lists as supported ("Supported schemas").
SUPPORTED = {"type", "properties", "required", "additionalProperties", "items", "anyOf", "enum",
             "const", "$ref", "$defs", "description", "title", "pattern", "format", "multipleOf",
             "maximum", "exclusiveMaximum", "minimum", "exclusiveMinimum", "minItems", "maxItems"}
FORMATS = {"date-time", "time", "date", "duration", "email", "hostname", "ipv4", "ipv6", "uuid"}


def check_strict(schema: dict[str, Any], *, strict: bool = True) -> None:
    """Fails unless ``schema`` follows the strict rules (free-form objects allowed if not strict)."""
    assert schema["type"] == "object" and "anyOf" not in schema and "$ref" not in schema
    defs = schema.get("$defs", {})

    def walk(node: Any, where: str) -> None:
        assert isinstance(node, dict), where
        assert set(node) <= SUPPORTED, (where, set(node) - SUPPORTED)
        assert "type" in node or "anyOf" in node or "$ref" in node, where
        if "$ref" in node:
            assert set(node) == {"$ref"}, where
            assert node["$ref"].removeprefix("#/$defs/") in defs, where
        if "format" in node:
            assert node["format"] in FORMATS, where
        if node.get("type") == "object":
            if "properties" not in node:
                assert not strict, f"{where}: a free-form object in a strict schema"
            else:
                assert node["additionalProperties"] is False, where
                assert node["required"] == list(node["properties"]), where
                for key, sub in node["properties"].items():
                    walk(sub, f"{where}.{key}")
            if isinstance(node.get("additionalProperties"), dict):
                walk(node["additionalProperties"], f"{where}.*")
        if "items" in node:
            walk(node["items"], f"{where}[]")
        for i, branch in enumerate(node.get("anyOf", ())):
            walk(branch, f"{where}|{i}")

    walk({k: v for k, v in schema.items() if k != "$defs"}, "")
    for name, sub in defs.items():
        walk(sub, f"$defs.{name}")


STRICT_SPECS = [bool, int, float, list, Literal["yes", "no"], ["positive", "negative"], ("a", 1),
                Person, list[Person], Profile, Node, Mood, int | None, Cat | Dog, Pets, Movie,
                list[list[int]], datetime.date, Literal[1, "a", None]]


@pytest.mark.parametrize("spec", STRICT_SPECS, ids=str)
def test_every_supported_spec_gives_a_strict_schema(spec: Any) -> None:
    typed = output_type(spec)
    assert typed is not None and typed.strict
    check_strict(typed.schema)
    assert re.fullmatch(r"[a-zA-Z0-9_-]{1,64}", typed.name)
    assert typed.response_format() == {"type": "json_schema", "json_schema": {
        "name": typed.name, "schema": typed.schema, "strict": True}}
    assert "x-llmkit" not in json.dumps(typed.schema)


def test_person_and_literal_schemas() -> None:
    person = output_type(Person)
    assert person is not None and not person.wrapped and person.name == "Person"
    assert person.schema == {"type": "object", "properties": {"name": {"type": "string"},
                                                            "age": {"type": "integer"}},
                             "required": ["name", "age"], "additionalProperties": False}
    yes_no = output_type(Literal["yes", "no"])
    assert yes_no is not None and yes_no.wrapped
    assert yes_no.schema == {"type": "object", "properties": {"value": {"type": "string",
                                                                        "enum": ["yes", "no"]}},
                             "required": ["value"], "additionalProperties": False}
    assert output_type(["yes", "no"]).schema == yes_no.schema  # type: ignore[union-attr]


def test_names() -> None:
    assert [output_type(s).name for s in (int, list[Person], int | None, Literal["a"])] == [  # type: ignore[union-attr]
        "int", "list_of_Person", "int_or_None", "choice"]


def test_defaults_become_required_and_nullable() -> None:
    schema = output_type(Profile).schema  # type: ignore[union-attr]
    props = schema["properties"]
    assert props["nickname"] == {"anyOf": [{"type": "string"}, {"type": "null"}]}
    assert props["score"] == {"anyOf": [{"type": "number"}, {"type": "null"}]}
    assert props["seen"] == {"type": "string", "format": "date-time"}
    # a $ref with a description beside it is inlined (a $ref takes no siblings)
    assert props["home"]["description"] == "the main address" and props["home"]["type"] == "object"
    assert "default" not in json.dumps(schema) and "title" not in json.dumps(schema)


def test_defaults_pydantic_cannot_encode_give_no_warning() -> None:
    marker = object()

    class Quiet(BaseModel):
        when: datetime.date = datetime.date(2024, 1, 1)
        size: int = cast(int, marker)  # pydantic warns it cannot put this default in a schema

    typed = output_type(Quiet)  # pytest turns any warning into an error
    assert typed is not None and typed.schema["properties"]["size"] == {
        "anyOf": [{"type": "integer"}, {"type": "null"}]}
    assert typed.parse('{"when": null, "size": null}').size is marker


def test_recursive_model_keeps_its_definition() -> None:
    schema = output_type(Node).schema  # type: ignore[union-attr]
    assert schema["properties"]["next"] == {"anyOf": [{"$ref": "#/$defs/Node"}, {"type": "null"}]}
    assert set(schema["$defs"]) == {"Node"}
    value = output_type(Node).parse(  # type: ignore[union-attr]
        '{"label": "a", "children": [{"label": "b", "children": [], "next": null}], "next": null}')
    assert value == Node(label="a", children=[Node(label="b")])


def test_free_form_objects_are_not_strict() -> None:
    for spec in (dict, dict[str, int], Tagged):
        typed = output_type(spec)
        assert typed is not None and not typed.strict
        check_strict(typed.schema, strict=False)
        assert typed.response_format()["json_schema"]["strict"] is False
    assert output_type(dict).schema == {"type": "object", "additionalProperties": True}  # type: ignore[union-attr]
    assert output_type(dict).parse('{"a": [1, {"b": null}]}') == {"a": [1, {"b": None}]}  # type: ignore[union-attr]
    assert output_type(Tagged).parse('{"name": "x", "counts": {"a": 1}}') == Tagged(  # type: ignore[union-attr]
        name="x", counts={"a": 1})


def test_instructions_include_the_compact_schema() -> None:
    typed = output_type(Literal["yes", "no"])
    assert typed is not None
    text = typed.instructions()
    assert json.dumps(typed.schema, separators=(",", ":")) in text
    assert "only a JSON object" in text and '"value"' in text and "\n" not in text
    assert '"value"' not in output_type(Person).instructions().split("Schema:")[0]  # type: ignore[union-attr]


@pytest.mark.parametrize(("spec", "text", "value"), [
    (int, '{"value": 42}', 42),
    (int, '{"value": "30"}', 30),  # lax: what a non-strict server may send
    (float, '{"value": 3}', 3.0),
    (bool, '{"value": false}', False),
    (list, '{"value": [1, "a", [2]]}', [1, "a", [2]]),
    (Literal["yes", "no"], '{"value": "yes"}', "yes"),
    (["positive", "negative"], '{"value": "negative"}', "negative"),
    (Mood, '{"value": "sad"}', Mood.SAD),
    (int | None, '{"value": null}', None),
    (Person, '{"name": "Ada", "age": 36}', Person(name="Ada", age=36)),
    (list[Person], '{"value": [{"name": "A", "age": 1}, {"name": "B", "age": 2}]}',
     [Person(name="A", age=1), Person(name="B", age=2)]),
    (Pets, '{"pet": {"kind": "dog", "good": true}}', Pets(pet=Dog(kind="dog", good=True))),
    (Movie, '{"title": "Up", "year": null}', {"title": "Up"}),
])
def test_parse_good_answers(spec: Any, text: str, value: Any) -> None:
    got = output_type(spec).parse(text)  # type: ignore[union-attr]
    assert got == value and type(got) is type(value)


def test_parse_is_lenient_about_the_wrapping() -> None:
    assert output_type(Person).parse('```json\n{"name": "Ada", "age": 36}\n```\n') == Person(  # type: ignore[union-attr]
        name="Ada", age=36)
    assert output_type(int).parse("  ```\n{\"value\": 7}\n```") == 7  # type: ignore[union-attr]
    assert output_type(Person).parse('Sure! {"name": "Ada", "age": 36} Hope that helps.') == Person(  # type: ignore[union-attr]
        name="Ada", age=36)
    assert output_type(list[int]).parse("Here: [1, 2]") == [1, 2]  # type: ignore[union-attr]
    assert output_type(int).parse("42") == 42  # type: ignore[union-attr]
    assert output_type(["positive", "negative"]).parse(" positive\n") == "positive"  # type: ignore[union-attr]
    assert output_type(list[Person]).parse('[{"name": "A", "age": 1}]') == [Person(name="A", age=1)]  # type: ignore[union-attr]


def test_optional_fields_take_their_defaults() -> None:
    typed = output_type(Profile)
    assert typed is not None
    answer = ('{"person": {"name": "A", "age": 3}, "home": {"city": "Oslo", "zip_code": null}, '
              '"others": null, "nickname": null, "score": null, "seen": "2024-05-01T10:00:00Z"}')
    got = typed.parse(answer)
    assert got.nickname == "none" and got.others == [] and got.score is None
    assert got.home == Address(city="Oslo") and got.person == Person(name="A", age=3)
    # a server without structured outputs may leave them out
    assert typed.parse('{"person": {"name": "A", "age": 3}, "home": {"city": "Oslo"}, '
                       '"seen": "2024-05-01"}').nickname == "none"


def _fails(spec: Any, text: str) -> OutputTypeError:
    with pytest.raises(OutputTypeError) as info:
        output_type(spec).parse(text)  # type: ignore[union-attr]
    assert info.value.text == text and info.value.detail
    return info.value


def test_parse_failures_carry_the_text_and_the_detail() -> None:
    err = _fails(Person, "I am not JSON at all")
    assert "not a Person" in str(err) and "not JSON" in str(err) and "I am not JSON" in str(err)
    err = _fails(Person, '{"name": "Ada"}')
    assert "age" in str(err) and "Field required" in str(err) and "age" in err.detail  # type: ignore[operator]
    err = _fails(Person, '{"name": "Ada", "age": "old"}')
    assert "age" in str(err) and "valid integer" in str(err)
    err = _fails(Literal["yes", "no"], '{"value": "maybe"}')
    assert 'one of "yes", "no"' in str(err) and "maybe" in err.detail  # type: ignore[operator]
    err = _fails(["positive", "negative"], "neutral")
    assert "positive" in str(err)
    err = _fails(list[Person], '{"value": [{"name": "A", "age": 1}, {"name": "B"}]}')
    assert "1.age" in str(err)
    err = _fails(int, '{"value": 2.5}')
    assert "an integer" in str(err)
    err = _fails(Person, "{" + '"name": "x", ' * 40 + '"age": 1')
    assert "…" in str(err) and len(str(err)) < 400


def test_a_boolean_is_not_a_number() -> None:
    for spec in (int, float, Literal[1, 2]):
        assert "not a boolean" in str(_fails(spec, '{"value": true}'))
    assert "age" in str(_fails(Person, '{"name": "A", "age": false}'))
    assert "not a boolean" in str(_fails(int | str, '{"value": true}'))
    assert output_type(bool).parse('{"value": true}') is True  # type: ignore[union-attr]


def test_nan_is_not_a_number() -> None:
    assert "not JSON" in str(_fails(float, '{"value": NaN}'))


class _Callback(BaseModel):
    name: str
    callback: Callable[[int], int]


class _Circle(BaseModel):
    friends: list[_Callback]


class _WithSet(BaseModel):
    tags: set[str]


class _WithObject(BaseModel):
    inner: Address
    anything: object


class _WithTuple(BaseModel):
    point: tuple[int, int]


class _Plain:
    pass


@pytest.mark.parametrize(("spec", "expected"), [
    (_Circle, "output_type _Circle: field 'friends.0.callback' has type Callable, which has no JSON schema"),
    (_WithSet, "output_type _WithSet: field 'tags' is a set"),
    (_WithObject, "output_type _WithObject: field 'anything' has type Any"),
    (_WithTuple, "output_type _WithTuple: field 'point' is a tuple"),
    (set[int], "output_type set_of_int: the answer is a set"),
    (Any, "output_type Any: the answer has type Any"),
    (_Plain, "output_type _Plain: _Plain has no JSON schema"),
    (42, "output_type 42: 42 has no JSON schema"),
    ("int", "output_type 'int' is not a type"),
    (len, "is not a type"),
    ([], "options must be a non-empty list"),
    ([{"a": 1}], "options must be"),
])
def test_a_type_without_a_schema_names_the_field(spec: Any, expected: str) -> None:
    with pytest.raises(OutputTypeError, match=re.escape(expected)):
        output_type(spec)


def test_no_schema_for_plain_text() -> None:
    assert output_type(str) is None and output_type(None) is None
    typed = output_type(int)
    assert isinstance(typed, OutputType) and output_type(typed) is typed


def test_memoised() -> None:
    assert output_type(Person) is output_type(Person)
    assert output_type(list[Person]) is output_type(list[Person])
    assert output_type(["a", "b"]) is output_type(["a", "b"])  # unhashable, keyed by its options
    assert output_type([1]) is not output_type([True])
    assert output_type([True]).parse('{"value": true}') is True  # type: ignore[union-attr]


def test_response_format_is_a_copy() -> None:
    typed = output_type(Person)
    assert typed is not None
    typed.response_format()["json_schema"]["schema"]["properties"].clear()
    assert set(typed.schema["properties"]) == {"name", "age"}


def test_importing_the_module_leaves_pydantic_out() -> None:
    code = ("import sys, llmkit.base.output_types as o; print('pydantic' in sys.modules); "
            "o.output_type(int); print('pydantic' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True"]


class Tree(BaseModel):
    name: str
    children: list[Tree] = []


@pytest.mark.parametrize("spec", [list, dict, int, Tree])
@pytest.mark.parametrize("depth", [101, 5_000, 200_000])
def test_a_deeply_nested_answer_is_an_output_type_error(spec: Any, depth: int) -> None:
    typed = cast(OutputType, output_type(spec))
    for text in ('{"value": ' + "[" * depth + "]" * depth + "}", '{"a": ' * depth + "1" + "}" * depth,
                 "Here it is: " + "[" * depth):
        with pytest.raises(OutputTypeError, match=r"nested more than 100 levels deep") as info:
            typed.parse(text)
        assert info.value.text == text


def test_nesting_up_to_the_limit_parses_and_brackets_in_strings_do_not_count() -> None:
    tree = cast(OutputType, output_type(Tree))
    deep = '{"name": "n", "children": [' * 49 + '{"name": "leaf"}' + "]}" * 49  # 99 levels
    value = tree.parse(deep)
    for _ in range(49):
        value = value.children[0]
    assert value == Tree(name="leaf")
    brackets = "[{" * 300
    assert cast(OutputType, output_type(list)).parse(f'{{"value": ["{brackets}"]}}') == [brackets]


def test_a_deep_answer_near_the_stack_limit_is_still_an_output_type_error() -> None:
    """The depth scan keeps decoding shallow, but a caller deep in its own stack can still meet
    the recursion limit: that too is an OutputTypeError, never a bare RecursionError."""
    typed = cast(OutputType, output_type(list))
    text = '{"value": ' + "[" * 90 + "]" * 90 + "}"

    def nested(levels: int) -> Any:
        return typed.parse(text) if levels == 0 else nested(levels - 1)

    frames, frame = 0, sys._getframe()
    while frame is not None:
        frames, frame = frames + 1, frame.f_back
    with pytest.raises(OutputTypeError, match=r"nested too deeply to read"):
        nested(sys.getrecursionlimit() - frames - 40)  # 40 frames left: fewer than 90 levels need
