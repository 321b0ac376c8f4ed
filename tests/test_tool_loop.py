"""The tool-calling loop (`llmkit.calls.tool_loop`) against the test server, through llmkit's own
call path (`OpenAIClient.complete`), with the server scripted by ``reply_tool_calls``."""

from __future__ import annotations

import dataclasses
import datetime
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

import llmkit
from llmkit.base.cache_entries import cache_key
from llmkit.base.errors import ConfigError, ToolLoopError
from llmkit.base.result import Completion
from llmkit.calls.tool_loop import ToolStep, run_tools
from llmkit.calls.tool_spec import Tool, as_tool, identity
from llmkit.clients import history
from llmkit.clients.store import open_cache
from tests.conftest import SECRET
from tests.openai_server import OpenAITestServer

USER = [{"role": "user", "content": "what is (2 + 3) * 4?"}]


def add(a: int, b: int) -> int:
    """Add two whole numbers."""
    return a + b


def mul(a: int, b: int) -> int:
    """Multiply two whole numbers."""
    return a * b


def sender(tools: Sequence[Any], *, cache: bool = False, stream: bool = False
           ) -> Callable[[list[dict[str, Any]]], Completion]:
    """``send`` as the calls layer builds it: llmkit's one call path, the tools' specs bound."""
    client = llmkit.OpenAIClient()
    specs = [as_tool(t).spec() for t in tools]
    return lambda messages: client.complete(messages, tools=specs, cache=cache, stream=stream)


def chat_bodies(server: OpenAITestServer) -> list[dict[str, Any]]:
    return [r.body for r in server.requests if r.path.endswith("chat/completions")]


def tool_messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [m for m in body["messages"] if m["role"] == "tool"]


# -- the test server's scripted tool calls ----------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
def test_server_answers_with_scripted_tool_calls(llm: OpenAITestServer, stream: bool) -> None:
    llm.reply_tool_calls([("add", {"a": 2, "b": 3}), ("mul", "not json")])
    completion = llmkit.OpenAIClient().complete(USER, tools=[as_tool(add).spec()], cache=False,
                                                stream=stream)
    assert completion.finish_reason == "tool_calls"
    assert completion.text == ""
    assert completion.message["tool_calls"] == [
        {"id": "call_1", "type": "function", "function": {"name": "add", "arguments": '{"a": 2, "b": 3}'}},
        {"id": "call_2", "type": "function", "function": {"name": "mul", "arguments": "not json"}},
    ]
    assert completion.usage["completion_tokens"] > 0
    assert chat_bodies(llm)[0]["tools"] == [as_tool(add).spec()]
    # consumed once: the next request gets the usual echo
    assert llmkit.OpenAIClient().complete(USER, cache=False).text == "echo: what is (2 + 3) * 4?"


# -- the loop ---------------------------------------------------------------------------------


def test_several_steps_feed_each_result_back(llm: OpenAITestServer) -> None:
    llm.reply_tool_calls([("add", {"a": 2, "b": 3})])
    llm.reply_tool_calls([("mul", {"a": 5, "b": 4})])
    llm.reply("It is 20.")
    messages = [dict(m) for m in USER]
    final, steps = run_tools(sender([add, mul]), messages, [add, mul])
    assert final.text == "It is 20." and messages == USER  # the caller's list is left alone
    assert [(s.call_id, s.name, s.arguments, s.result, s.error, s.approved, s.cached)
            for s in steps] == [("call_1", "add", '{"a": 2, "b": 3}', "5", None, True, False),
                                ("call_2", "mul", '{"a": 5, "b": 4}', "20", None, True, False)]
    assert all(isinstance(s, ToolStep) and s.completion.finish_reason == "tool_calls" for s in steps)
    assert steps[0].usage == steps[0].completion.usage and steps[0].usage["total_tokens"] > 0
    bodies = chat_bodies(llm)
    assert len(bodies) == 3
    assert all(b["tools"] == [as_tool(add).spec(), as_tool(mul).spec()] for b in bodies)
    second = bodies[1]["messages"]
    assert second[0] == USER[0]
    assert second[1]["role"] == "assistant" and second[1]["content"] is None
    assert second[1]["tool_calls"][0]["id"] == "call_1"
    assert second[2] == {"role": "tool", "tool_call_id": "call_1", "content": "5"}
    assert tool_messages(bodies[2]) == [{"role": "tool", "tool_call_id": "call_1", "content": "5"},
                                        {"role": "tool", "tool_call_id": "call_2", "content": "20"}]
    # the final Completion holds the whole exchange
    assert final.messages == bodies[2]["messages"]


def test_parallel_calls_run_concurrently_and_come_back_in_call_order(llm: OpenAITestServer) -> None:
    both_running = threading.Barrier(2, timeout=5)  # breaks unless the two calls overlap
    threads = []

    def lookup(key: str, wait: float = 0.0) -> dict[str, Any]:
        """Look a key up."""
        threads.append(threading.current_thread().name)
        both_running.wait()
        time.sleep(wait)
        return {"key": key, "value": key.upper()}

    llm.reply_tool_calls([("lookup", {"key": "first", "wait": 0.2}), ("lookup", {"key": "second"})])
    final, steps = run_tools(sender([lookup]), USER, [lookup])
    assert final.text == "echo: what is (2 + 3) * 4?"
    assert [s.result for s in steps] == ['{"key": "first", "value": "FIRST"}',
                                         '{"key": "second", "value": "SECOND"}']
    assert steps[0].completion is steps[1].completion  # one answer asked for both
    assert len(set(threads)) == 2
    sent = chat_bodies(llm)[1]["messages"]
    assert [c["id"] for c in sent[1]["tool_calls"]] == ["call_1", "call_2"]
    assert sent[2:] == [
        {"role": "tool", "tool_call_id": "call_1", "content": '{"key": "first", "value": "FIRST"}'},
        {"role": "tool", "tool_call_id": "call_2", "content": '{"key": "second", "value": "SECOND"}'},
    ]


def test_streamed_answers_drive_the_loop_too(llm: OpenAITestServer) -> None:
    llm.reply_tool_calls([("add", {"a": 1, "b": 1}), ("mul", {"a": 3, "b": 3})])
    final, steps = run_tools(sender([add, mul], stream=True), USER, [add, mul])
    assert [s.result for s in steps] == ["2", "9"] and final.text.startswith("echo:")


def test_a_failing_tool_is_reported_to_the_model_and_the_loop_goes_on(llm: OpenAITestServer) -> None:
    def divide(a: float, b: float) -> float:
        """Divide a by b."""
        return a / b

    llm.reply_tool_calls([("divide", {"a": 1, "b": 0})])
    llm.reply_tool_calls([("divide", {"a": 1, "b": 4})])
    final, steps = run_tools(sender([divide]), USER, [divide])
    assert final.text.startswith("echo:")
    assert steps[0].result is None and steps[0].error == "ZeroDivisionError: float division by zero"
    assert steps[0].content == "error: ZeroDivisionError: float division by zero"
    assert steps[1].result == "0.25" and steps[1].error is None
    reported = "error: ZeroDivisionError: float division by zero"
    assert tool_messages(chat_bodies(llm)[1]) == [
        {"role": "tool", "tool_call_id": "call_1", "content": reported}]


def test_bad_arguments_are_reported_to_the_model(llm: OpenAITestServer) -> None:
    calls = []

    def counted_add(a: int, b: int) -> int:
        calls.append((a, b))
        return a + b

    llm.reply_tool_calls([
        ("counted_add", {"a": "three", "b": 1}),  # wrong type
        ("counted_add", {"a": 1}),  # missing
        ("counted_add", {"a": 1, "b": 2, "c": 3}),  # not a parameter
        ("counted_add", "{not json"),
        ("counted_add", "[1, 2]"),
        ("counted_add", {"a": "4", "b": 2}),  # text that is a whole number: accepted
    ])
    _, steps = run_tools(sender([counted_add]), USER, [counted_add])
    errors = [s.error for s in steps]
    assert errors[0] is not None and errors[0].startswith("invalid arguments for counted_add: a: ")
    assert "valid integer" in errors[0]
    assert errors[1] is not None and "b: Field required" in errors[1]
    assert errors[2] is not None and "c: Extra inputs are not permitted" in errors[2]
    assert errors[3] is not None and errors[3].startswith("the arguments of counted_add are not valid JSON")
    assert errors[4] == "the arguments of counted_add must be a JSON object, not list"
    assert errors[5] is None and steps[5].result == "6"
    assert calls == [(4, 2)]  # only the valid call ran
    sent = tool_messages(chat_bodies(llm)[1])
    assert [m["content"].startswith("error: ") for m in sent] == [True] * 5 + [False]


def test_an_unknown_tool_is_reported_to_the_model(llm: OpenAITestServer) -> None:
    llm.reply_tool_calls([("subtract", {"a": 1, "b": 2}), ("add", {"a": 1, "b": 2})])
    _, steps = run_tools(sender([add, mul]), USER, [add, mul])
    assert steps[0].error == "there is no tool named 'subtract'; the tools are: add, mul"
    assert not steps[0].approved and steps[1].result == "3"
    assert tool_messages(chat_bodies(llm)[1])[0]["content"].startswith("error: there is no tool named")


def test_approve_is_asked_before_each_call_and_a_refusal_is_reported(llm: OpenAITestServer) -> None:
    calls: list[int] = []
    asked: list[tuple[str, dict[str, Any], str]] = []

    def square(x: int) -> int:
        calls.append(x)
        return x * x

    def approve(name: str, arguments: dict[str, Any]) -> bool:
        asked.append((name, arguments, threading.current_thread().name))
        return arguments["x"] != 13

    llm.reply_tool_calls([("square", {"x": 3}), ("square", {"x": 13}), ("square", {"x": 4})])
    _, steps = run_tools(sender([square]), USER, [square], approve=approve)
    me = threading.current_thread().name
    assert asked == [("square", {"x": 3}, me), ("square", {"x": 13}, me), ("square", {"x": 4}, me)]
    assert sorted(calls) == [3, 4]
    assert [(s.approved, s.result, s.error) for s in steps] == [
        (True, "9", None), (False, None, "the user did not approve this call of square"),
        (True, "16", None)]
    assert tool_messages(chat_bodies(llm)[1])[1]["content"] == (
        "error: the user did not approve this call of square")


def test_an_exception_in_approve_comes_out_as_itself(llm: OpenAITestServer) -> None:
    def approve(name: str, arguments: dict[str, Any]) -> bool:
        raise KeyError("the user's own bug")

    llm.reply_tool_calls([("add", {"a": 1, "b": 2})])
    with pytest.raises(KeyError, match="the user's own bug"):
        run_tools(sender([add]), USER, [add], approve=approve)


def test_max_steps_raises_tool_loop_error_with_the_steps(llm: OpenAITestServer) -> None:
    ran: list[int] = []

    def step(n: int) -> int:
        ran.append(n)
        return n

    llm.reply_tool_calls([("step", {"n": "many"})])
    llm.reply_tool_calls([("step", {"n": 2})])
    llm.reply_tool_calls([("step", {"n": 3})])
    with pytest.raises(ToolLoopError) as caught:
        run_tools(sender([step]), USER, [step], max_steps=3)
    error = caught.value
    assert len(chat_bodies(llm)) == 3  # max_steps answers, no more
    assert ran == [2]  # the last answer's call is recorded, not run
    assert [(s.name, s.arguments) for s in error.steps] == [
        ("step", '{"n": "many"}'), ("step", '{"n": 2}'), ("step", '{"n": 3}')]
    assert error.steps[2].error == "not run: the loop stopped after max_steps=3"
    message = str(error)
    assert "max_steps=3" in message and "2 tool call(s) ran" in message
    assert "last errors: step: invalid arguments for step: n: " in message  # told to the user


def test_max_steps_must_be_positive_and_tool_cache_known(llm: OpenAITestServer) -> None:
    with pytest.raises(ConfigError, match="max_steps"):
        run_tools(sender([add]), USER, [add], max_steps=0)
    with pytest.raises(ConfigError, match="tool_cache must be None or 'pure'"):
        run_tools(sender([add]), USER, [add], tool_cache="always")
    with pytest.raises(ConfigError, match="two tools share a name"):
        run_tools(sender([add]), USER, [add, as_tool(mul, name="add")])
    assert chat_bodies(llm) == []


def test_results_are_sent_as_json_and_text_as_it_is(llm: OpenAITestServer) -> None:
    @dataclasses.dataclass
    class Point:
        x: int
        y: int

    def describe(kind: str) -> Any:
        return {"text": "plain text", "none": None, "list": [1, "two"], "point": Point(1, 2),
                "date": datetime.date(2024, 5, 1), "cycle": _cycle()}[kind]

    kinds = ["text", "none", "list", "point", "date", "cycle"]
    llm.reply_tool_calls([("describe", {"kind": k}) for k in kinds])
    _, steps = run_tools(sender([describe]), USER, [describe])
    assert [s.result for s in steps[:5]] == [
        "plain text", "null", '[1, "two"]', '{"x": 1, "y": 2}', '"2024-05-01"']
    assert steps[5].error is not None and "cannot be sent as JSON" in steps[5].error


def _cycle() -> list[Any]:
    loop: list[Any] = []
    loop.append(loop)
    return loop


# -- pure tools: results memoised in the response cache ---------------------------------------


def _weather_tool() -> tuple[Callable[..., str], list[str]]:
    calls: list[str] = []

    def weather(city: str) -> str:
        """Today's weather in a city."""
        calls.append(city)
        return f"sunny in {city}"

    return weather, calls


def test_pure_tools_replay_from_the_cache_without_running(llm: OpenAITestServer) -> None:
    weather, calls = _weather_tool()
    cache = open_cache()
    llm.reply_tool_calls([("weather", {"city": "Paris"})])
    first, steps = run_tools(sender([weather], cache=True), USER, [weather], tool_cache="pure",
                             cache=cache)
    assert calls == ["Paris"] and not first.cached and not steps[0].cached
    key = cache_key({"kind": "tool", "name": "weather", "function": identity(weather),
                     "arguments": '{"city":"Paris"}'})
    assert cache.get(key) == {"tool_result": "sunny in Paris"}
    assert cache.stats()["kinds"]["tool"] == 1
    served = len(llm.requests)

    again, replayed = run_tools(sender([weather], cache=True), USER, [weather], tool_cache="pure",
                                cache=cache)
    assert calls == ["Paris"]  # not called again
    assert len(llm.requests) == served  # both answers came from the cache
    assert again.cached and again.text == first.text
    assert [(s.call_id, s.result, s.cached) for s in replayed] == [("call_1", "sunny in Paris", True)]
    assert replayed[0].completion.cached


def test_tools_rerun_on_a_cache_hit_by_default(llm: OpenAITestServer) -> None:
    weather, calls = _weather_tool()
    cache = open_cache()
    llm.reply_tool_calls([("weather", {"city": "Oslo"})])
    run_tools(sender([weather], cache=True), USER, [weather], cache=cache)
    served = len(llm.requests)
    again, steps = run_tools(sender([weather], cache=True), USER, [weather], cache=cache)
    assert calls == ["Oslo", "Oslo"]  # run again, although the model's answers were cached
    assert len(llm.requests) == served and again.cached
    assert not steps[0].cached and steps[0].completion.cached
    assert cache.stats()["kinds"]["tool"] == 0  # nothing memoised without "pure"


def test_pure_without_a_cache_runs_the_tool(llm: OpenAITestServer) -> None:
    weather, calls = _weather_tool()
    for _ in range(2):
        llm.reply_tool_calls([("weather", {"city": "Rome"})])
        run_tools(sender([weather]), USER, [weather], tool_cache="pure", cache=None)
    assert calls == ["Rome", "Rome"]


def test_pure_memo_keys_on_canonical_arguments_and_skips_errors(llm: OpenAITestServer) -> None:
    calls: list[tuple[int, int]] = []

    def power(base: int, exponent: int) -> int:
        calls.append((base, exponent))
        if exponent < 0:
            raise ValueError("negative exponent")
        return int(base**exponent)

    cache = open_cache()
    fails = ("power", {"base": 2, "exponent": -1})
    llm.reply_tool_calls([("power", '{"base": 2, "exponent": 10}'), fails])
    llm.reply_tool_calls([("power", '{ "exponent": 10,  "base": 2 }'), fails])
    _, steps = run_tools(sender([power]), USER, [power], tool_cache="pure", cache=cache)
    assert [(s.result, s.cached) for s in steps] == [("1024", False), (None, False),
                                                      ("1024", True), (None, False)]
    assert calls == [(2, 10), (2, -1), (2, -1)]  # a failure is never memoised


def test_a_hand_made_tool_is_used_as_it_is(llm: OpenAITestServer) -> None:
    def shout(**kwargs: Any) -> str:
        return str(kwargs["text"]).upper()

    tool = Tool("shout", "Shout a text.", {"type": "object", "properties": {"text": {"type": "string"}},
                                           "required": ["text"]}, shout, strict=True)
    assert tool.spec()["function"]["strict"] is True
    llm.reply_tool_calls([("shout", {"text": "hi"})])
    _, steps = run_tools(sender([tool]), USER, [tool])
    assert steps[0].result == "HI"


def test_llmcall_runs_tools_through_the_loop(llm: OpenAITestServer) -> None:
    llm.reply_tool_calls([("add", {"a": 2, "b": 3})])
    llm.reply("5")
    call = llmkit.LLMCall("You add.", "{{ question }}", tools=[add])
    assert call.call(question="2 + 3?") == "5"
    assert [(s.name, s.result) for s in call.steps] == [("add", "5")]
    assert tool_messages(chat_bodies(llm)[1]) == [{"role": "tool", "tool_call_id": "call_1", "content": "5"}]


# -- what a tool says is untrusted: secrets, odd exceptions, odd text -------------------------


GATEWAY = "gw-HEADER-31337"


def test_secrets_in_tool_errors_and_results_never_leave(llm: OpenAITestServer, isolated: Path) -> None:
    recording = isolated / "rec.jsonl"
    llmkit.force_default_value("record", str(recording))

    def login(user: str) -> str:
        """Log in."""
        if user == "bad":
            raise PermissionError(f"key {SECRET} refused for {user} (gateway {GATEWAY})")
        return f"session of {user}, made with {SECRET}"

    llm.reply_tool_calls([("login", {"user": "bad"}), ("login", {"user": "ada"})])
    llm.reply("done")
    call = llmkit.LLMCall("s", "u", tools=[login], tool_cache="pure",
                          extra_headers={"X-Gateway-Auth": GATEWAY})
    assert call.call() == "done"
    assert tool_messages(chat_bodies(llm)[1]) == [
        {"role": "tool", "tool_call_id": "call_1",
         "content": "error: PermissionError: key <hidden> refused for bad (gateway <hidden>)"},
        {"role": "tool", "tool_call_id": "call_2", "content": "session of ada, made with <hidden>"}]
    assert [(s.result, s.error) for s in call.steps] == [
        (None, "PermissionError: key <hidden> refused for bad (gateway <hidden>)"),
        ("session of ada, made with <hidden>", None)]
    history.flush()
    stored = [recording, *(isolated / "cache").rglob("*")]
    for path in (p for p in stored if p.is_file()):
        data = path.read_bytes()
        assert SECRET.encode() not in data and GATEWAY.encode() not in data, path
    assert "made with <hidden>" in recording.read_text()


def test_a_tool_that_exits_is_reported_and_ctrl_c_still_stops(llm: OpenAITestServer) -> None:
    import argparse

    def grep(argv: str) -> str:
        """Run grep with command-line arguments."""
        parser = argparse.ArgumentParser(prog="grep", exit_on_error=False)
        parser.add_argument("--count", type=int)
        parser.parse_args(argv.split())  # exits on arguments it refuses, exit_on_error or not
        return "matched"

    llm.reply_tool_calls([("grep", {"argv": "--nope"}), ("grep", {"argv": "--count 2"})])
    _, steps = run_tools(sender([grep]), USER, [grep])
    assert [(s.result, s.error) for s in steps] == [(None, "SystemExit: 2"), ("matched", None)]
    assert tool_messages(chat_bodies(llm)[1])[0]["content"] == "error: SystemExit: 2"

    def interrupted() -> str:
        raise KeyboardInterrupt

    llm.reply_tool_calls([("interrupted", {})])
    with pytest.raises(KeyboardInterrupt):
        run_tools(sender([interrupted]), USER, [interrupted])
    assert len(chat_bodies(llm)) == 3  # nothing sent after Ctrl-C


@pytest.mark.parametrize(("answer", "runs"), [
    (True, True), ("y", True), ("yes", True), (" Yes\n", True), ("Y", True),
    (False, False), ("n", False), ("no", False), ("", False), ("maybe", False), (None, False),
    (1, False), ("yes please", False),
])
def test_only_true_or_a_yes_word_approves(llm: OpenAITestServer, answer: Any, runs: bool) -> None:
    ran: list[int] = []

    def square(x: int) -> int:
        ran.append(x)
        return x * x

    llm.reply_tool_calls([("square", {"x": 3})])
    _, steps = run_tools(sender([square]), USER, [square], approve=lambda name, args: answer)
    assert (ran == [3]) is runs and steps[0].approved is runs
    expected = "9" if runs else "error: the user did not approve this call of square"
    assert tool_messages(chat_bodies(llm)[1])[0]["content"] == expected


def test_unreadable_exceptions_and_invalid_text_are_reported(llm: OpenAITestServer) -> None:
    class Mute(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no message")

    class Opaque:
        def __str__(self) -> str:
            raise ValueError("cannot show")

    def odd(kind: str) -> Any:
        """Misbehave."""
        if kind == "mute":
            raise Mute()
        if kind == "surrogate error":
            raise ValueError("bad \ud800 byte")
        return {"surrogate": "lone \udc00 half", "nested": {"k": ["\ud83d"]},
                "opaque": {"o": Opaque()}, "fine": "ok"}[kind]

    kinds = ["mute", "surrogate error", "surrogate", "nested", "opaque", "fine"]
    llm.reply_tool_calls([("odd", {"kind": k}) for k in kinds])
    final, steps = run_tools(sender([odd]), USER, [odd])
    assert final.text.startswith("echo:")
    assert [s.error for s in steps] == [
        "Mute: (its message cannot be read: its __str__ raised)",
        "ValueError: bad ? byte",
        "the result of odd is not valid text (it holds a lone surrogate, which cannot be sent as UTF-8)",
        "the result of odd is not valid text (it holds a lone surrogate, which cannot be sent as UTF-8)",
        "the result of odd cannot be sent as JSON: ValueError: cannot show",
        None]
    sent = tool_messages(chat_bodies(llm)[1])
    assert [m["content"] for m in sent] == [s.content for s in steps]
    assert sent[-1]["content"] == "ok"


def test_pure_memo_keys_on_what_the_function_computes(llm: OpenAITestServer) -> None:
    cache = open_cache()

    def convert(x: int) -> int:
        """Convert a number."""
        return x + 1

    def run(tool: Callable[..., Any]) -> str | None:
        llm.reply_tool_calls([("convert", {"x": 1})])
        _, steps = run_tools(sender([tool]), USER, [tool], tool_cache="pure", cache=cache)
        return steps[0].result

    assert run(convert) == "2"
    assert run(convert) == "2"

    def convert(x: int) -> int:  # type: ignore[no-redef]  # redefined in a notebook cell
        """Convert a number."""
        return x * 10

    assert run(convert) == "10"

    def scaler(factor: int) -> Callable[[int], int]:
        def convert(x: int) -> int:
            return x * factor
        return convert

    assert [run(scaler(3)), run(scaler(4)), run(scaler(3))] == ["3", "4", "3"]

    def with_default(offset: int) -> Callable[..., int]:
        def convert(x: int, offset: int = offset) -> int:
            return x + offset
        return convert

    assert [run(with_default(5)), run(with_default(6))] == ["6", "7"]
    assert cache.stats()["kinds"]["tool"] == 6  # one entry per distinct function


def test_the_memo_of_a_closure_survives_its_own_state(llm: OpenAITestServer) -> None:
    weather, calls = _weather_tool()  # it appends to a list it closes over: state, not identity
    cache = open_cache()
    for _ in range(2):
        llm.reply_tool_calls([("weather", {"city": "Lima"})])
        run_tools(sender([weather]), USER, [weather], tool_cache="pure", cache=cache)
    assert calls == ["Lima"]

