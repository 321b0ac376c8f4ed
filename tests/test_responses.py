"""The Responses API on the one call path: choosing it, the request, answers, streams, tools."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

import llmkit
from llmkit.base import config
from llmkit.base.errors import ConfigError, ServerError
from llmkit.calls.send import send
from llmkit.clients.compatible import CompatibleClient
from llmkit.clients.history import flush
from llmkit.clients.openai_client import OpenAIClient
from tests.openai_server import OpenAITestServer

HELLO = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "say hello there"}]


def body(server: OpenAITestServer) -> Any:
    return server.requests[-1].body


# -- choosing the wire API -------------------------------------------------------------------------

def test_plain_calls_stay_on_chat_with_the_same_cache_key(llm: OpenAITestServer) -> None:
    p = OpenAIClient().prepare(HELLO, model="gpt-4o-mini")
    assert p.kind == "chat" and "messages" in p.request
    assert p.key == OpenAIClient().prepare(HELLO, model="gpt-4o-mini", responses_api="never").key


@pytest.mark.parametrize(("params", "why"), [
    ({"model": "gpt-5-pro"}, "a Responses-only model"),
    ({"model": "o3-pro"}, "a Responses-only model"),
    ({"model": "gpt-5", "reasoning_effort": "low",
      "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]}, "tools + effort"),
    ({"model": "gpt-5", "reasoning_summary": "auto"}, "a summary"),
])
def test_auto_uses_responses_when_chat_cannot_serve_the_call(llm: OpenAITestServer,
                                                              params: dict[str, Any], why: str) -> None:
    assert OpenAIClient().prepare(HELLO, **params).kind == "responses", why


def test_tools_with_effort_none_stay_on_chat(llm: OpenAITestServer) -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": {}}}]
    assert OpenAIClient().prepare(HELLO, model="gpt-5", reasoning_effort="none", tools=tools).kind == "chat"


def test_compatible_servers_stay_on_chat_unless_always(llm: OpenAITestServer) -> None:
    config.force_default_value("base_url", llm.base_url)
    client = CompatibleClient()
    assert client.prepare(HELLO, model="gpt-5-pro").kind == "chat"
    assert client.prepare(HELLO, model="any", responses_api="always").kind == "responses"
    with pytest.raises(ConfigError, match="reasoning_summary"):
        client.prepare(HELLO, model="gpt-5", reasoning_summary="auto")


def test_the_config_key_and_the_call_option(llm: OpenAITestServer) -> None:
    config.force_default_value("responses_api", "always")
    assert OpenAIClient().prepare(HELLO).kind == "responses"
    assert OpenAIClient().prepare(HELLO, responses_api="never").kind == "chat"
    with pytest.raises(ConfigError, match="auto, always or never"):
        OpenAIClient().prepare(HELLO, responses_api="sometimes")


# -- the request ---------------------------------------------------------------------------------

class Person(BaseModel):
    name: str
    age: int


def test_the_request_is_translated_once(llm: OpenAITestServer) -> None:
    tools = [{"type": "function", "function": {"name": "add", "description": "Add.", "strict": True,
                                               "parameters": {"type": "object", "properties": {}}}}]
    p = OpenAIClient().prepare(HELLO, model="gpt-5", max_tokens=300, reasoning_effort="high",
                               reasoning_summary="concise", tools=tools, tool_choice="auto",
                               response_format={"type": "json_schema", "json_schema": {
                                   "name": "Person", "schema": {"type": "object"}, "strict": True}})
    assert p.kind == "responses"
    assert p.request == {
        "model": "gpt-5", "tool_choice": "auto", "store": False, "instructions": "Be brief.",
        "input": [{"role": "user", "content": "say hello there"}], "max_output_tokens": 300,
        "reasoning": {"effort": "high", "summary": "concise"},
        "text": {"format": {"type": "json_schema", "name": "Person", "schema": {"type": "object"},
                            "strict": True}},
        "tools": [{"type": "function", "name": "add", "parameters": {"type": "object", "properties": {}},
                   "description": "Add.", "strict": True}],
        "include": ["reasoning.encrypted_content"]}


@pytest.mark.parametrize("param", [{"stop": "x"}, {"seed": 1}, {"frequency_penalty": 0.5}, {"n": 2},
                                   {"logit_bias": {"1": 2}}])
def test_a_parameter_responses_does_not_take_is_refused_before_sending(
        llm: OpenAITestServer, param: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match=f"Responses API does not take {next(iter(param))}"):
        OpenAIClient().complete(HELLO, model="gpt-5-pro", **param)
    assert llm.requests == []


def test_store_is_sent_when_asked_for(llm: OpenAITestServer) -> None:
    p = OpenAIClient().prepare(HELLO, model="gpt-5-pro", store=True)
    assert p.request["store"] is True and "include" not in p.request


# -- answers -------------------------------------------------------------------------------------

def test_an_answer_reads_like_a_chat_answer_and_is_cached(llm: OpenAITestServer) -> None:
    first = OpenAIClient().complete(HELLO, model="gpt-5-pro")
    assert llm.requests[-1].path == "/v1/responses"
    assert first.text == "echo: say hello there" and first.finish_reason == "stop"
    assert first.usage == {"prompt_tokens": 7, "completion_tokens": 4, "total_tokens": 11}
    assert first.cost == pytest.approx((7 * 15 + 4 * 120) / 1e6)
    assert first.reasoning is None and first.messages == HELLO
    again = OpenAIClient().complete(HELLO, model="gpt-5-pro")
    assert again.cached and again.text == first.text and len(llm.requests) == 1
    assert again.response == first.response  # the API's own JSON, kept as it came


def test_a_reasoning_summary_reaches_the_result(llm: OpenAITestServer) -> None:
    result = llmkit.LLMCall("Be brief.", "say {{ what }}", model="gpt-5",
                            reasoning_summary="detailed").call(what="hi")
    assert result == "echo: say hi" and result.reasoning == "thought about: echo: say hi"
    assert body(llm)["reasoning"] == {"summary": "detailed"}


def test_incomplete_is_cut_off_like_length(llm: OpenAITestServer) -> None:
    llm.reply("one two three four", finish_reason="length", path_contains="responses")
    cut = OpenAIClient().complete(HELLO, model="gpt-5-pro", max_tokens=50)
    assert cut.finish_reason == "length" and cut.text == "one two three four"
    with pytest.warns(llmkit.LLMKitWarning, match="output limit"):
        llm.reply("", finish_reason="length", path_contains="responses")
        empty = OpenAIClient().complete(HELLO, model="gpt-5-pro", max_tokens=51)
    assert empty.text == "" and not OpenAIClient().complete(HELLO, model="gpt-5-pro", max_tokens=51).cached


def test_failed_is_a_server_error_retried_then_raised(llm: OpenAITestServer) -> None:
    llm.response_failed(times=9)
    with pytest.raises(ServerError, match="failed"):
        OpenAIClient().complete(HELLO, model="gpt-5-pro", max_attempts=2)
    assert len(llm.requests) == 2
    llm.reset()
    assert OpenAIClient().complete(HELLO, model="gpt-5-pro").text == "echo: say hello there"


def test_a_malformed_body_is_never_cached(llm: OpenAITestServer) -> None:
    llm.body(200, json.dumps({"object": "response", "status": "completed", "output": [{"type": 3}]}),
             "application/json")
    assert OpenAIClient().complete(HELLO, model="gpt-5-pro").text == "echo: say hello there"
    assert len(llm.requests) == 2


# -- streaming -----------------------------------------------------------------------------------

def test_a_stream_drives_on_delta_and_replays_identically(llm: OpenAITestServer, tmp_path: Path) -> None:
    config.force_default_value("record", str(tmp_path / "rec.jsonl"))
    pieces: list[str] = []
    streamed = OpenAIClient().complete(HELLO, model="gpt-5", reasoning_summary="auto", stream=True,
                                       on_delta=pieces.append)
    assert body(llm)["stream"] is True
    assert len(pieces) > 1 and "".join(pieces) == streamed.text == "echo: say hello there"
    assert streamed.reasoning == "thought about: echo: say hello there"
    hit: list[str] = []
    cached = OpenAIClient().complete(HELLO, model="gpt-5", reasoning_summary="auto", stream=True,
                                     on_delta=hit.append)
    assert cached.cached and cached.response == streamed.response and "".join(hit) == streamed.text
    config.force_default_value("record", "")
    llmkit.force_api_cache(False, replay=str(tmp_path / "rec.jsonl"))
    replayed = OpenAIClient().complete(HELLO, model="gpt-5", reasoning_summary="auto", stream=True)
    assert replayed.response == streamed.response and len(llm.requests) == 1


@pytest.mark.parametrize("framing", ["close", "chunked"])
def test_a_cut_stream_is_retried_and_nothing_cut_is_cached(llm: OpenAITestServer, framing: str) -> None:
    llm.cut_stream(after=0, framing=framing, path_contains="responses")
    answer = OpenAIClient().complete(HELLO, model="gpt-5-pro", stream=True)
    assert answer.text == "echo: say hello there" and len(llm.requests) == 2


def test_a_cut_stream_after_text_is_not_retried_and_not_cached(llm: OpenAITestServer) -> None:
    llm.cut_stream(after=2, path_contains="responses")
    pieces: list[str] = []
    with pytest.raises(ServerError, match="before the answer was complete") as raised:
        OpenAIClient().complete(HELLO, model="gpt-5-pro", stream=True, on_delta=pieces.append)
    assert raised.value.partial and pieces and len(llm.requests) == 1
    assert not OpenAIClient().complete(HELLO, model="gpt-5-pro", stream=True).cached


def test_error_and_failed_events_raise(llm: OpenAITestServer) -> None:
    llm.error_event(times=2)
    with pytest.raises(ServerError, match="Stream failed"):
        OpenAIClient().complete(HELLO, model="gpt-5-pro", stream=True, max_attempts=2)
    llm.response_failed(times=2)
    with pytest.raises(ServerError, match="model failed"):
        OpenAIClient().complete(HELLO, model="gpt-5-pro", stream=True, max_attempts=2)


# -- tools ---------------------------------------------------------------------------------------

def test_the_tool_loop_runs_on_responses(llm: OpenAITestServer) -> None:
    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    llm.reply_tool_calls([("add", {"a": 2, "b": 3}), ("add", {"a": 1, "b": 1})])
    llm.reply("5 and 2", path_contains="responses")
    answer = send([{"role": "user", "content": "add"}], model="gpt-5", reasoning_effort="low",
                  reasoning_summary="auto", tools=[add])
    assert [r.path for r in llm.requests] == ["/v1/responses"] * 2
    assert [s.content for s in answer.steps] == ["5", "2"] and answer.value == "5 and 2"
    second = llm.requests[1].body
    assert second["tools"][0]["name"] == "add" and second["include"] == ["reasoning.encrypted_content"]
    kinds = [(i.get("type"), i.get("call_id")) for i in second["input"]]
    assert kinds[1] == ("reasoning", None) and second["input"][1]["encrypted_content"] == "ENC"
    assert kinds[2:] == [("function_call", "call_1"), ("function_call", "call_2"),
                         ("function_call_output", "call_1"), ("function_call_output", "call_2")]
    assert [i["output"] for i in second["input"] if i.get("type") == "function_call_output"] == ["5", "2"]


def test_history_says_which_api_answered(llm: OpenAITestServer) -> None:
    client = OpenAIClient()
    client.complete(HELLO, model="gpt-5-pro")
    client.complete(HELLO, model="gpt-4o-mini")
    client.get_embedding("hello")
    flush()
    assert sorted(run.api for run in llmkit.history()) == ["chat", "embeddings", "responses"]
    responses_run = next(run for run in llmkit.history() if run.api == "responses")
    assert responses_run.messages[-1]["content"] == HELLO[-1]["content"]  # the prompt, as chat messages
    assert HELLO[-1]["content"] in responses_run.prompt and responses_run.usage["prompt_tokens"] > 0
    assert llmkit.history(HELLO[-1]["content"].split()[0])  # and it is found by search


# -- hosted tools --------------------------------------------------------------------------------

SEARCH = {"type": "web_search"}
INTERPRETER = {"type": "code_interpreter", "container": {"type": "auto"}}


def test_hosted_tools_go_to_responses_as_given_and_their_steps_reach_the_result(
        llm: OpenAITestServer) -> None:
    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    mcp = {"type": "mcp", "server_label": "docs", "server_url": "https://mcp.example.com/sse",
           "require_approval": "never"}
    llm.reply_tool_calls([("add", {"a": 2, "b": 3})])
    llm.reply("5, found", path_contains="responses")
    call = llmkit.LLMCall("Be brief.", "find {{ what }}", model="gpt-4o-mini",
                          tools=[SEARCH, add, INTERPRETER, mcp])
    result = call.call(what="paris")
    assert [r.path for r in llm.requests] == ["/v1/responses"] * 2  # auto: a hosted tool means Responses
    sent = llm.requests[0].body["tools"]
    assert sent[0] == SEARCH and sent[2] == INTERPRETER and sent[3] == mcp and sent[1]["name"] == "add"
    assert [s.name for s in call.steps] == ["add"] and call.steps[0].content == "5"  # only ours ran
    assert result == "5, found"
    assert result.citations == [{"url": "https://example.com/paris", "title": "Paris <facts> & figures"},
                                {"url": "http://example.org/france", "title": "France"}]
    assert [(s["type"], s["text"].splitlines()[0]) for s in result.hosted_steps] == [
        ("web_search_call", "query: find paris"), ("code_interpreter_call", "status: completed")]
    assert "print(6 * 7)" in result.hosted_steps[1]["text"] and "logs:\n42" in result.hosted_steps[1]["text"]


def test_citations_keep_only_web_urls_with_text_titles(llm: OpenAITestServer) -> None:
    llm.cite([{"url": "javascript:alert(1)", "title": "x"}, {"url": 5, "title": "five"},
              {"url": "https://ok.example/a b", "title": "space"}, {"url": "HTTPS://ok.example/", "title": 7},
              {"url": "HTTPS://ok.example/", "title": "again"}, {"title": "no url"}])
    result = OpenAIClient().complete(HELLO, model="gpt-4o-mini", tools=[SEARCH])
    assert result.citations == [{"url": "HTTPS://ok.example/", "title": "HTTPS://ok.example/"}]


def test_hosted_tools_on_chat_are_refused_before_sending(llm: OpenAITestServer) -> None:
    config.force_default_value("base_url", llm.base_url)
    with pytest.raises(ConfigError, match="hosted tool 'web_search' needs the Responses API"):
        CompatibleClient().complete(HELLO, model="any", tools=[SEARCH])
    with pytest.raises(ConfigError, match="responses_api='never'"):
        OpenAIClient().complete(HELLO, model="gpt-4o-mini", tools=[SEARCH], responses_api="never")
    assert llm.requests == []
    assert CompatibleClient().complete(HELLO, model="any", tools=[SEARCH], responses_api="always").citations


def test_a_dict_that_is_no_hosted_tool_is_a_clear_error(llm: OpenAITestServer) -> None:
    with pytest.raises(ConfigError, match="give a function tool as the Python function"):
        send(HELLO, model="gpt-4o-mini", tools=[{"type": "function", "function": {"name": "f"}}])
    assert llm.requests == []
