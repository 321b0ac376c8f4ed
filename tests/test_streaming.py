"""Assembling streamed chunks (content and tool calls) into one chat completion."""

from __future__ import annotations

from typing import Any

import pytest

from llmkit.base.errors import ServerError
from llmkit.clients.streaming import collect_stream


def Chunk(data: dict[str, Any]) -> dict[str, Any]:
    return data


def delta(**fields: Any) -> dict[str, Any]:
    finish = fields.pop("finish_reason", None)
    return Chunk({"id": "c1", "model": "m", "created": 1,
                  "choices": [{"index": 0, "delta": fields, "finish_reason": finish}]})


def test_content_pieces_and_usage() -> None:
    seen: list[str] = []
    chunks = [delta(role="assistant", content="Hel"), delta(content="lo"), delta(finish_reason="stop"),
              Chunk({"id": "c1", "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2,
                                                            "total_tokens": 5}})]
    response = collect_stream(chunks, seen.append)
    assert seen == ["Hel", "lo"]
    assert response["choices"][0]["message"] == {"role": "assistant", "content": "Hello"}
    assert response["choices"][0]["finish_reason"] == "stop"
    assert response["usage"]["total_tokens"] == 5 and response["model"] == "m"


def test_tool_call_fragments_are_joined() -> None:
    chunks = [
        delta(tool_calls=[{"index": 0, "id": "t1", "function": {"name": "get_", "arguments": '{"ci'}}]),
        delta(tool_calls=[{"index": 0, "function": {"name": "weather", "arguments": 'ty": "Oslo"}'}}]),
        delta(tool_calls=[{"index": 1, "id": "t2", "function": {"name": "now", "arguments": "{}"}}]),
        delta(finish_reason="tool_calls"),
    ]
    calls = collect_stream(chunks, None)["choices"][0]["message"]["tool_calls"]
    assert calls[0] == {"id": "t1", "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}
    assert calls[1]["function"]["name"] == "now"


def test_a_stream_without_choices_is_malformed() -> None:
    with pytest.raises(ServerError, match="no choices"):
        collect_stream([Chunk({"id": "x", "choices": []})], None)


def test_a_finish_reason_inside_the_delta_ends_the_answer() -> None:
    """Microsoft's Azure OpenAI simulator: ``finish_reason`` (and ``index``) inside ``delta``."""
    chunks = [Chunk({"choices": [{"delta": {"content": "Lorem", "role": "assistant", "index": 0,
                                            "finish_reason": None, "tool_calls": None}}]}),
              Chunk({"choices": [{"delta": {"content": None, "role": None, "finish_reason": "length"}}]})]
    response = collect_stream(chunks, None)
    assert response["choices"][0]["finish_reason"] == "length" and "usage" not in response
    assert response["choices"][0]["message"] == {"role": "assistant", "content": "Lorem"}


@pytest.mark.parametrize("where", ["choice", "delta"])
def test_a_finish_reason_that_is_not_text_is_malformed(where: str) -> None:
    part: dict[str, Any] = {"index": 0, "delta": {"content": "x"}}
    (part if where == "choice" else part["delta"])["finish_reason"] = ["stop"]
    with pytest.raises(ServerError, match="finish_reason that is not a string"):
        collect_stream([Chunk({"choices": [part]})], None)
