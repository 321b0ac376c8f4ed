"""OpenAIClient against the real test server: parameters, retries, errors, cache, streaming."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import llmkit
from llmkit import OpenAIClient
from llmkit.base.errors import (
    AuthenticationError,
    ConfigError,
    ContextLengthError,
    InvalidRequestError,
    RateLimitError,
    ServerError,
)
from tests.conftest import SECRET
from tests.openai_server import OpenAITestServer

HELLO = [{"role": "user", "content": "hello there"}]


def test_send_message_returns_the_assistant_message(llm: OpenAITestServer) -> None:
    message = OpenAIClient().send_message(HELLO, temperature=0.2, seed=7, stop=["\n"])
    assert message == {"role": "assistant", "content": "echo: hello there"}
    body = llm.requests[-1].body
    assert body["model"] == "gpt-4o-mini" and body["temperature"] == 0.2
    assert body["seed"] == 7 and body["stop"] == ["\n"] and body["max_tokens"] == 1024
    assert llm.requests[-1].headers["authorization"] == f"Bearer {SECRET}"


def test_defaults_are_resolved_when_the_call_is_made(llm: OpenAITestServer) -> None:
    client = OpenAIClient()
    llmkit.force_default_value("model", "model-b")
    llmkit.force_default_value("max_tokens", 77)
    client.send_message(HELLO)
    assert llm.requests[-1].body["model"] == "model-b"
    assert llm.requests[-1].body["max_tokens"] == 77
    client.send_message(HELLO, max_tokens=5, model="model-c")  # call arguments win
    assert (llm.requests[-1].body["max_tokens"], llm.requests[-1].body["model"]) == (5, "model-c")


def test_one_sdk_client_per_configuration(llm: OpenAITestServer) -> None:
    client = OpenAIClient()
    settings = client.settings()
    assert client._sdk(settings) is client._sdk(client.settings())
    assert OpenAIClient()._sdk(settings) is client._sdk(settings)


def test_reasoning_models_get_max_completion_tokens(llm: OpenAITestServer) -> None:
    OpenAIClient().send_message(HELLO, model="o3-mini", max_tokens=1024)
    body = llm.requests[-1].body
    assert body["max_completion_tokens"] == 1024 and "max_tokens" not in body
    assert "temperature" not in body


def test_unknown_parameter_fails_loudly(llm: OpenAITestServer) -> None:
    with pytest.raises(ConfigError, match=r"temprature.*extra_body"):
        OpenAIClient().send_message(HELLO, temprature=0)
    assert llm.requests == []


def test_bad_messages_are_rejected_before_sending(llm: OpenAITestServer) -> None:
    with pytest.raises(InvalidRequestError, match="non-empty list of dicts"):
        OpenAIClient().send_message("hello")  # type: ignore[arg-type]
    with pytest.raises(InvalidRequestError, match=r"messages\[1\]"):
        OpenAIClient().send_message([*HELLO, {"content": "no role"}])
    assert llm.requests == []


def test_retry_after_is_honoured(llm: OpenAITestServer) -> None:
    llm.fail(429, code="rate_limit_exceeded", retry_after=0.4)
    started = time.perf_counter()
    assert OpenAIClient().send_message(HELLO, cache=False)["content"] == "echo: hello there"
    assert time.perf_counter() - started >= 0.4
    assert len(llm.requests) == 2


def test_retry_after_ms_is_honoured(llm: OpenAITestServer) -> None:
    llm.fail(503, retry_after_ms=300)
    started = time.perf_counter()
    OpenAIClient().send_message(HELLO)
    assert time.perf_counter() - started >= 0.3


@pytest.mark.parametrize("fault", ["500", "502", "408", "409", "drop", "malformed", "timeout"])
def test_transient_failures_are_retried_with_identical_requests(llm: OpenAITestServer, fault: str) -> None:
    if fault == "drop":
        llm.drop()
    elif fault == "malformed":
        llm.malformed()
    elif fault == "timeout":
        llm.delay(1.0)
    else:
        llm.fail(int(fault))
    message = OpenAIClient().send_message(HELLO, timeout=0.3, temperature=0.5)
    assert message["content"] == "echo: hello there"
    bodies = [r.body for r in llm.requests if r.path.endswith("/chat/completions")]
    assert len(bodies) == 2 and bodies[0] == bodies[1]


def test_insufficient_quota_is_not_retried(llm: OpenAITestServer) -> None:
    llm.fail(429, code="insufficient_quota", message="You exceeded your current quota")
    with pytest.raises(RateLimitError, match="exceeded your current quota") as info:
        OpenAIClient().send_message(HELLO)
    assert info.value.code == "insufficient_quota"
    assert len(llm.requests) == 1


@pytest.mark.parametrize(("status", "error"), [(400, InvalidRequestError), (401, AuthenticationError),
                                              (403, AuthenticationError), (404, InvalidRequestError),
                                              (422, InvalidRequestError)])
def test_client_errors_raise_at_once_with_the_server_message(
        llm: OpenAITestServer, status: int, error: type[Exception]) -> None:
    llm.fail(status, message=f"server says no ({status})")
    with pytest.raises(error, match=rf"HTTP {status}: server says no \({status}\)"):
        OpenAIClient().send_message(HELLO)
    assert len(llm.requests) == 1


def test_attempts_run_out_with_a_clear_error(llm: OpenAITestServer) -> None:
    llm.fail(500, message="down for maintenance", times=3)
    with pytest.raises(ServerError, match=r"down for maintenance \(gave up after 3 attempts\)") as info:
        OpenAIClient().send_message(HELLO, max_attempts=3)
    assert len(llm.requests) == 3 and info.value.attempts == 3 and info.value.status == 500


def test_sdk_retries_are_off(llm: OpenAITestServer) -> None:
    llm.fail(500, times=2)
    with pytest.raises(ServerError):
        OpenAIClient().send_message(HELLO, max_attempts=1)
    assert len(llm.requests) == 1


def test_secret_is_scrubbed_from_server_messages(llm: OpenAITestServer) -> None:
    llm.fail(401, message=f"Incorrect API key provided: {SECRET}")
    with pytest.raises(AuthenticationError) as info:
        OpenAIClient().send_message(HELLO)
    assert SECRET not in str(info.value) and "<hidden>" in str(info.value)


def test_missing_key_for_openai_says_what_to_set() -> None:
    with pytest.raises(AuthenticationError, match="OPENAI_API_KEY"):
        OpenAIClient().send_message(HELLO)


def test_prompt_past_the_context_window_raises_before_sending(llm: OpenAITestServer) -> None:
    long = [{"role": "user", "content": "word " * 9000}]
    with pytest.raises(ContextLengthError, match="gpt-4"):
        OpenAIClient().send_message(long, model="gpt-4")
    assert llm.requests == []


def test_cache_hit_needs_no_key_and_no_network(
        llm: OpenAITestServer, monkeypatch: pytest.MonkeyPatch) -> None:
    first = OpenAIClient().complete(HELLO, temperature=0)
    assert first.cached is False
    monkeypatch.delenv("OPENAI_API_KEY")
    llm.fail(500, times=10)
    again = OpenAIClient().complete(HELLO, temperature=0, timeout=5, max_attempts=9)  # not in the key
    assert again.cached is True and again.message == first.message and again.usage == first.usage
    assert len(llm.requests) == 1


def test_cache_key_covers_what_determines_the_answer(llm: OpenAITestServer) -> None:
    client = OpenAIClient()
    client.send_message(HELLO, temperature=0)
    client.send_message(HELLO, temperature=0.5)
    client.send_message(HELLO, temperature=0, seed=1)
    client.send_message(HELLO, temperature=0, response_format={"type": "json_object"})
    client.send_message(HELLO, temperature=0)  # the first again: a hit
    assert len(llm.requests) == 4


def test_failures_are_not_cached(llm: OpenAITestServer) -> None:
    llm.fail(500, times=2)
    with pytest.raises(ServerError):
        OpenAIClient().send_message(HELLO, max_attempts=2)
    assert OpenAIClient().complete(HELLO).cached is False


def test_secret_never_reaches_the_cache(llm: OpenAITestServer, isolated: Path) -> None:
    OpenAIClient().send_message(HELLO)
    OpenAIClient().get_embedding("hello")
    files = [p for p in (isolated / "cache").rglob("*") if p.is_file()]
    assert files
    assert all(SECRET.encode() not in p.read_bytes() for p in files)
    assert SECRET not in repr(OpenAIClient(api_key=SECRET))


def test_no_cache_flag_and_disabled_cache(llm: OpenAITestServer) -> None:
    OpenAIClient().send_message(HELLO)
    OpenAIClient().complete(HELLO, cache=False)
    llmkit.force_api_cache(False)
    OpenAIClient().send_message(HELLO)
    assert len(llm.requests) == 3


def test_streaming_matches_the_plain_answer(llm: OpenAITestServer) -> None:
    pieces: list[str] = []
    streamed = OpenAIClient().complete([{"role": "user", "content": "one two three"}], stream=True,
                                       on_delta=pieces.append)
    assert len(pieces) > 1 and "".join(pieces) == streamed.text == "echo: one two three"
    assert streamed.usage["completion_tokens"] > 0
    assert llm.requests[-1].body["stream"] is True
    plain = OpenAIClient().complete([{"role": "user", "content": "one two three"}])
    assert plain.cached is True and plain.message == streamed.message


def test_embeddings_single_and_batch_cached_per_text(llm: OpenAITestServer) -> None:
    client = OpenAIClient()
    one = client.get_embedding("the cat sat on the mat")
    assert isinstance(one, list) and all(isinstance(x, float) for x in one)
    many = client.get_embedding(["the cat sat on the mat", "stock markets fell"])
    assert many[0] == one and len(many) == 2
    assert len(llm.requests) == 2
    assert llm.requests[-1].body["input"] == ["stock markets fell"]  # only what was missing
    assert llm.requests[-1].body["model"] == "text-embedding-3-small"


def test_embedding_input_is_checked(llm: OpenAITestServer) -> None:
    with pytest.raises(InvalidRequestError, match="non-empty"):
        OpenAIClient().get_embedding([])
