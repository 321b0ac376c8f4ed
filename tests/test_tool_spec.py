"""Describing functions as tools (`llmkit.calls.tool_spec`): schemas from signatures, type hints
and docstrings, and the validation of the arguments a model sends."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Callable
from typing import Any, Literal

import pytest

from llmkit.base.errors import ConfigError
from llmkit.calls.tool_spec import ToolArgumentsError, as_tool, identity


def search(query: str, limit: int = 5, order: Literal["new", "old"] = "new",
           site: str | None = None) -> list[str]:
    """Search the archive for articles.

    Results come newest first unless asked otherwise.

    Args:
        query: Words to look for.
        limit: How many results,
            at most.
        order (str): Newest or oldest first.
    """
    return [query] * limit


def test_schema_from_signature_type_hints_and_docstring() -> None:
    tool = as_tool(search)
    assert tool.name == "search" and tool.function is search
    assert tool.spec() == {"type": "function", "function": {
        "name": "search",
        "description": "Search the archive for articles.",
        "parameters": {
            "type": "object",
            "properties": {
                "query": {"type": "string", "description": "Words to look for."},
                "limit": {"type": "integer", "default": 5, "description": "How many results, at most."},
                "order": {"type": "string", "enum": ["new", "old"], "default": "new",
                          "description": "Newest or oldest first."},
                "site": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None},
            },
            "required": ["query"],
            "additionalProperties": False,
        },
        "strict": False,
    }}
    assert tool.call('{"query": "tides", "limit": 2}') == ["tides", "tides"]
    assert as_tool(tool) is tool
    assert as_tool(search) == tool  # described once, then remembered (weakly) for the function


def test_a_described_function_is_let_go() -> None:
    def make() -> Callable[[int], int]:
        def double(x: int) -> int:
            return 2 * x
        return double

    double = make()
    assert as_tool(double).call('{"x": 4}') == 8
    gone = weakref.ref(double)
    del double
    gc.collect()
    assert gone() is None


def test_sphinx_and_numpy_parameter_docs() -> None:
    def sphinx(json: int, copy: str = "x") -> str:  # names pydantic's BaseModel also uses
        """Sphinx style.

        :param json: a number
        :param str copy: a text
            over two lines
        :returns: both
        """
        return f"{json}{copy}"

    def numpy(a: int, b: int = 2) -> int:
        """Numpy style.

        Parameters
        ----------
        a : int
            The first.
        b : int
            The second.

        Returns
        -------
        int
        """
        return a + b

    props = as_tool(sphinx).parameters["properties"]
    assert (props["json"]["description"], props["copy"]["description"]) == (
        "a number", "a text over two lines")
    assert as_tool(sphinx).description == "Sphinx style."
    assert as_tool(sphinx).call('{"json": 1, "copy": "y"}') == "1y"
    props = as_tool(numpy).parameters["properties"]
    assert (props["a"]["description"], props["b"]["description"]) == ("The first.", "The second.")


def test_functions_without_hints_docs_or_parameters() -> None:
    def untyped(a, b=1, *rest, **options):  # type: ignore[no-untyped-def]
        return [a, b, rest, options]

    def nothing() -> str:
        return "done"

    def positional(a: int, /, b: int) -> int:
        return a - b

    tool = as_tool(untyped)
    assert tool.description == "" and "description" not in tool.spec()["function"]
    assert tool.parameters["properties"] == {"a": {}, "b": {"default": 1}}
    assert tool.call('{"a": [1]}') == [[1], 1, (), {}]
    assert as_tool(nothing).parameters == {"type": "object", "properties": {},
                                           "additionalProperties": False}
    assert as_tool(nothing).call("") == "done"
    assert as_tool(positional).call('{"a": 5, "b": 3}') == 2


def test_names_and_what_cannot_be_a_tool() -> None:
    assert as_tool(lambda x: x, name="identity", description="Returns x.").spec()["function"][
        "name"] == "identity"
    with pytest.raises(ConfigError, match="'<lambda>' is not accepted"):
        as_tool(lambda x: x)
    with pytest.raises(TypeError, match="not int"):
        as_tool(3)  # type: ignore[arg-type]

    async def fetch(url: str) -> str:
        return url

    with pytest.raises(TypeError, match="async"):
        as_tool(fetch)

    def broken(x: NotDefinedAnywhere) -> None:  # type: ignore[name-defined]  # noqa: F821
        pass

    with pytest.raises(TypeError, match="cannot resolve the type hints of tool broken"):
        as_tool(broken)


def test_arguments_that_are_not_a_valid_object_say_why() -> None:
    tool = as_tool(search)
    with pytest.raises(ToolArgumentsError, match="the arguments of search are not valid JSON"):
        tool.call("{query")
    with pytest.raises(ToolArgumentsError, match="must be a JSON object, not list"):
        tool.call('["tides"]')
    with pytest.raises(ToolArgumentsError, match=r"invalid arguments for search: limit: .*integer"):
        tool.call('{"query": "tides", "limit": "many"}')


def test_identity_follows_helpers_and_code() -> None:
    namespace: dict[str, Any] = {}
    exec("import math\ndef helper(x):\n    return x + 1\ndef tool(x):\n    return helper(x)\n"
         "def sine(x):\n    return math.sin(x)\ndef cosine(x):\n    return math.cos(x)\n", namespace)
    before = identity(namespace["tool"])
    assert identity(namespace["tool"]) == before  # stable
    exec("def helper(x):\n    return x + 2\n", namespace)
    assert identity(namespace["tool"]) != before  # a helper it calls was redefined
    assert identity(namespace["sine"]) != identity(namespace["cosine"])


def test_identity_is_none_when_a_value_cannot_be_read() -> None:
    class Loud:
        def __repr__(self) -> str:
            raise RuntimeError("no repr")

    def tool(x: int, *, key: frozenset[Any] = frozenset({Loud(), 1})) -> int:
        return x

    assert identity(tool) is None  # not memoised, rather than memoised under a guess
