"""Typed answers through the call path (issue 12): the schema sent, the value returned, nothing
invalid cached; against the test server, and live on the local llama.cpp model."""

from __future__ import annotations

from typing import Any, Literal

import pytest
from pydantic import BaseModel

import llmkit
from llmkit import FailedRow, LLMCall, LLMChat, OutputTypeError
from tests.openai_server import OpenAITestServer


class Person(BaseModel):
    name: str
    age: int


def test_a_model_answer_is_sent_a_strict_schema_and_comes_back_validated(llm: OpenAITestServer) -> None:
    llm.reply('{"name": "Ana", "age": 30}')
    call = LLMCall("Extract the person.", "{{ text }}", output_type=Person)
    ana = call.call(text="Ana is 30 years old.")
    assert ana == Person(name="Ana", age=30)
    sent = llm.requests[-1].body["response_format"]
    assert sent["type"] == "json_schema" and sent["json_schema"]["strict"] is True
    assert sent["json_schema"]["schema"]["required"] == ["name", "age"]
    assert call.completion is not None and call.completion.text == '{"name": "Ana", "age": 30}'
    assert call.run({"text": "Ana is 30 years old."}) == ana  # from the cache, parsed again
    assert len(llm.requests) == 1


def test_an_answer_that_does_not_validate_raises_and_is_not_cached(llm: OpenAITestServer) -> None:
    llm.reply('{"name": "Ana", "age": "thirty"}')
    call = LLMCall("s", "u", output_type=Person)
    with pytest.raises(OutputTypeError) as info:
        call.run()
    assert info.value.text == '{"name": "Ana", "age": "thirty"}' and "age" in str(info.value)
    llm.reply('{"name": "Ana", "age": 30}')
    assert call.run() == Person(name="Ana", age=30)  # sent again: nothing wrong was cached
    assert len(llm.requests) == 2



def test_a_deeply_nested_answer_raises_output_type_error_and_is_not_cached(llm: OpenAITestServer) -> None:
    deep = '{"value": ' + "[" * 100_000 + "]" * 100_000 + "}"
    llm.reply(deep)
    call = LLMCall("s", "u", output_type=list)
    with pytest.raises(OutputTypeError, match=r"nested more than 100 levels deep") as info:
        call.run()
    assert info.value.text == deep
    llm.reply('{"value": [1, 2]}')
    assert call.run() == [1, 2]  # sent again: the deep answer was not cached
    assert len(llm.requests) == 2

@pytest.mark.parametrize(("spec", "reply", "expected"), [
    (int, '{"value": 42}', 42), (bool, '{"value": true}', True), (float, '{"value": 2.5}', 2.5),
    (list, '{"value": ["a", 1]}', ["a", 1]), (Literal["yes", "no"], '{"value": "no"}', "no"),
    (["positive", "negative"], '{"value": "positive"}', "positive"),
    (list[Person], '{"value": [{"name": "A", "age": 1}]}', [Person(name="A", age=1)]),
])
def test_every_kind_of_output_type(llm: OpenAITestServer, spec: Any, reply: str, expected: Any) -> None:
    llm.reply(reply)
    assert LLMCall("s", "u", output_type=spec).run() == expected


def test_a_server_without_structured_outputs_gets_instructions(llm: OpenAITestServer) -> None:
    llm.reply('```json\n{"value": 7}\n```')
    compatible = llmkit.CompatibleClient(base_url=llm.base_url)
    assert LLMCall("Count.", "u", client=compatible, output_type=int).run() == 7
    body = llm.requests[-1].body
    assert "response_format" not in body and "JSON schema" in body["messages"][0]["content"]


def test_map_returns_typed_values_per_row(llm: OpenAITestServer) -> None:
    llm.reply('{"value": 1}')
    llm.reply('{"value": "x"}')
    llm.reply('{"value": 3}')
    results = LLMCall("s", "{{ n }}", output_type=int).map(
        [{"n": 1}, {"n": 2}, {"n": 3}], max_concurrency=1, progress=False)
    assert results[0] == 1 and results[2] == 3
    assert isinstance(results[1], FailedRow) and isinstance(results[1].error, OutputTypeError)


def test_chat_and_the_decorator_return_typed_values(llm: OpenAITestServer) -> None:
    llm.reply('{"value": "positive"}')

    @llmkit.llm()
    def sentiment(review: str) -> Literal["positive", "negative"]:
        """You classify reviews."""
        return f"Review: {review}"

    assert sentiment("Lovely!") == "positive"
    llm.reply('{"value": 12}')
    chat = LLMChat(system_prompt="s", output_type=int)
    assert chat.continue_conversation("How many?") == 12


def test_llm_magic_type(ip: Any, llm: OpenAITestServer) -> None:
    llm.reply('{"value": "no"}')
    ip.run_cell_magic("llm", "--type 'yes|no' --out verdict", "Is it raining?")
    assert ip.user_ns["verdict"] == "no"
    ip.user_ns["Person"] = Person
    llm.reply('{"name": "Bo", "age": 5}')
    ip.run_cell_magic("llm", "--type Person --out bo", "Bo is five.")
    assert ip.user_ns["bo"] == Person(name="Bo", age=5)


@pytest.mark.timeout(300)
@pytest.mark.slow
def test_typed_answers_live_on_the_local_model(tmp_path: Any) -> None:
    """llama.cpp constrains its output to the JSON schema: every answer validates."""
    from llmkit.clients import local
    llmkit.force_api_type("local")
    try:
        call = LLMCall("Extract the person as JSON.", "{{ text }}", output_type=Person,
                       temperature=0, max_tokens=40)
        ana = call.call(text="Ana is 30 years old.")
        assert isinstance(ana, Person) and ana.name == "Ana" and ana.age == 30
        rows = [{"text": f"{name} is {age} years old."}
                for name, age in [("Bo", 41), ("Cy", 7), ("Di", 65), ("Ed", 23)]]
        people = call.map(rows, progress=False)
        assert all(isinstance(p, Person) for p in people)
    finally:
        local.stop_server()
