"""The one call path (issue 9): thread safety, configuration read per call, the model table's limits,
reasoning models, the error boundary and one parameter vocabulary, against the test server."""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import llmkit
from llmkit import LLMCall, OpenAIClient, Result
from llmkit.base import config
from llmkit.base.errors import ConfigError, ContextLengthError, LLMKitWarning, RateLimitError
from tests.openai_server import OpenAITestServer

THREADS = 32


def _together(work: Callable[[int], Any]) -> list[Any]:
    """Run ``work(i)`` for i in range(THREADS) on as many threads, started at the same moment."""
    barrier = threading.Barrier(THREADS)
    out: list[Any] = [None] * THREADS

    def one(i: int) -> None:
        barrier.wait()
        try:
            out[i] = work(i)
        except Exception as exc:  # surfaced in the assertion below
            out[i] = exc

    threads = [threading.Thread(target=one, args=(i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def _sent_prompts(server: OpenAITestServer) -> set[str]:
    return {r.body["messages"][-1]["content"] for r in server.requests if r.body}


@pytest.mark.parametrize("way", ["call", "run", "send_message", "map"])
def test_32_threads_each_get_their_own_answer(llm: OpenAITestServer, way: str) -> None:
    llm.latency = 0.01  # keeps requests in flight together
    call = LLMCall("Be brief.", "Question {{ n }}")
    ways: dict[str, Callable[[int], Any]] = {
        "call": lambda i: call.call(n=i),
        "run": lambda i: call.run({"n": i}),
        "send_message": lambda i: OpenAIClient().send_message(
            [{"role": "user", "content": f"Question {i}"}])["content"],
        "map": lambda i: call.map([{"n": i}, {"n": i + 1000}], progress=False)[0],
    }
    answers = _together(ways[way])
    assert [str(a) for a in answers] == [f"echo: Question {i}" for i in range(THREADS)]
    expected = {f"Question {i}" for i in range(THREADS)}
    assert expected <= _sent_prompts(llm)
    if way == "call":  # the remembered exchange is one call's, whole
        assert call.completion is not None
        assert call.messages == call.completion.messages
        assert call.model_output == call.completion.message
        assert call.model_output["content"] == "echo: " + call.messages[-1]["content"]


def test_run_leaves_the_llmcall_untouched(llm: OpenAITestServer) -> None:
    call = LLMCall("Be brief.", "Say {{ word }}", temperature=0)
    result = call.run({"word": "hi"}, max_tokens=5)
    assert isinstance(result, Result) and result == "echo: Say hi"
    assert call.completion is None and call.messages == [] and call.model_output is None
    assert llm.requests[-1].body["max_tokens"] == 5  # a per-run option over model_params
    with pytest.raises(ConfigError, match="variables must be a dict"):
        call.run("hi")  # type: ignore[arg-type]


def test_configuration_changes_take_effect_on_the_next_call(
        llm: OpenAITestServer, monkeypatch: pytest.MonkeyPatch, isolated: Path) -> None:
    client = OpenAIClient()
    hello = [{"role": "user", "content": "hello"}]

    def model_sent() -> str:
        client.send_message(hello, cache=False)
        return str(llm.requests[-1].body["model"])

    assert model_sent() == "gpt-4o-mini"  # the package default
    (isolated / "config.ini").write_text("[OpenAI]\nMODEL=gpt-4.1-mini\n")
    assert model_sent() == "gpt-4.1-mini"
    monkeypatch.setenv("LLMKIT_MODEL", "gpt-4o")
    assert model_sent() == "gpt-4o"
    llmkit.force_default_value("model", "gpt-4.1")
    assert model_sent() == "gpt-4.1"
    llmkit.force_default_value("model", None)
    monkeypatch.delenv("LLMKIT_MODEL")
    assert model_sent() == "gpt-4.1-mini"


def test_configuration_is_read_once_per_call_and_reused(
        llm: OpenAITestServer, monkeypatch: pytest.MonkeyPatch) -> None:
    layers_read = []
    real = config._layers

    def counting() -> Any:
        layers_read.append(1)
        return real()

    monkeypatch.setattr(config, "_layers", counting)
    call = LLMCall("s", "u {{ x }}")
    for i in range(5):
        call.call(x=i)
    assert len(layers_read) <= 1  # nothing changed: the merged layers are reused
    monkeypatch.setenv("LLMKIT_TEMPERATURE", "0.3")
    call.call(x=99)
    assert llm.requests[-1].body["temperature"] == 0.3 and len(layers_read) == 2


def _forced_send_message(messages: list[dict[str, str]]) -> Any:
    llmkit.force_api_type("openai")
    return llmkit.client().send_message(messages)


_HIT_WAYS: dict[str, Callable[[list[dict[str, str]]], Any]] = {
    "LLMCall.call": lambda m: LLMCall("s", m[-1]["content"]).call(),
    "LLMCall.run": lambda m: LLMCall("s", m[-1]["content"]).run(),
    "LLMChat.call": lambda m: llmkit.LLMChat(system_prompt="s", user_prompt=m[-1]["content"]).call(),
    "@llm": lambda m: llmkit.llm()(lambda: m[-1]["content"])(),
    "OpenAIClient.complete": lambda m: OpenAIClient().complete(m),
    "OpenAIClient.send_message": lambda m: OpenAIClient().send_message(m),
    "client().send_message, api type forced": _forced_send_message,
    "get_embedding": lambda m: OpenAIClient().get_embedding(m[-1]["content"]),
}


@pytest.mark.parametrize("way", list(_HIT_WAYS))
def test_a_cache_hit_reads_the_configuration_once(
        llm: OpenAITestServer, monkeypatch: pytest.MonkeyPatch, way: str) -> None:
    """Each read costs an ``os.stat``, an ``os.getcwd`` and the environment (``_fingerprint``):
    the call path reads once and passes the `Settings` down."""
    send = _HIT_WAYS[way]
    messages = [{"role": "system", "content": "s"}, {"role": "user", "content": f"hit {way}"}]
    send(messages)  # a miss: now cached
    sent = len(llm.requests)
    reads = []
    real = config._fingerprint

    def counting() -> Any:
        reads.append(1)
        return real()

    monkeypatch.setattr(config, "_fingerprint", counting)
    for _ in range(3):
        assert send(messages)
    assert len(llm.requests) == sent  # three cache hits, nothing sent
    assert len(reads) == 3, f"{way}: {len(reads)} configuration reads for 3 cache hits"


@pytest.mark.parametrize("bad", ["soon", -1, 0, float("nan")])
def test_timeout_is_validated_like_every_other_value(llm: OpenAITestServer, bad: Any) -> None:
    with pytest.raises(ConfigError, match="TIMEOUT"):
        OpenAIClient().send_message([{"role": "user", "content": "x"}], timeout=bad)
    assert llm.requests == []


def test_no_default_sampling_values_are_sent(llm: OpenAITestServer) -> None:
    OpenAIClient().send_message([{"role": "user", "content": "x"}])
    body = llm.requests[-1].body
    assert set(body) == {"model", "messages", "max_tokens"}  # the server's own defaults apply


@pytest.mark.parametrize("api_type", ["openai", "azure"])
def test_more_than_four_stop_sequences_are_refused_before_sending(
        llm: OpenAITestServer, monkeypatch: pytest.MonkeyPatch, api_type: str) -> None:
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", llm.url)
    monkeypatch.setenv("AZURE_OPENAI_KEY", "azure-key-1234")
    llmkit.force_api_type(api_type)
    five = ["a", "b", "c", "d", "e"]
    with pytest.raises(ConfigError, match=rf"stop has 5 sequences; the {api_type} api type takes a "
                                          r"string or 1 to 4 strings"):
        llmkit.client().send_message([{"role": "user", "content": "x"}], stop=five)
    with pytest.raises(ConfigError, match=r"stop=\[\] is not valid"):
        LLMCall("s", "u", stop=[]).run()
    assert llm.requests == []
    llmkit.client().send_message([{"role": "user", "content": "x"}], stop=five[:4])
    assert llm.requests[-1].body["stop"] == five[:4]


def test_a_compatible_server_gets_any_number_of_stop_sequences(llm: OpenAITestServer) -> None:
    compatible = llmkit.CompatibleClient(base_url=llm.base_url)
    compatible.send_message([{"role": "user", "content": "x"}], stop=list("abcdef"))
    assert llm.requests[-1].body["stop"] == list("abcdef")


def test_gpt5_prompt_over_its_input_limit_is_refused_before_sending(llm: OpenAITestServer) -> None:
    prompt = [{"role": "user", "content": "hello " * 300_000}]  # about 300,000 tokens
    with pytest.raises(ContextLengthError, match=r"272,000 input tokens 'gpt-5'"):
        OpenAIClient().send_message(prompt, model="gpt-5")
    assert llm.requests == []


def test_gpt54_takes_a_450000_token_prompt(llm: OpenAITestServer) -> None:
    prompt = [{"role": "user", "content": "hello " * 450_000}]
    OpenAIClient().send_message(prompt, model="gpt-5.4", cache=False)
    assert len(llm.requests) == 1 and llm.requests[0].body["model"] == "gpt-5.4"


def test_output_limit_is_checked_against_the_models_output_limit(llm: OpenAITestServer) -> None:
    with pytest.raises(ContextLengthError, match="128,000 output tokens"):
        OpenAIClient().send_message([{"role": "user", "content": "x"}], model="gpt-5",
                                    max_tokens=200_000)
    assert llm.requests == []


def test_reasoning_models_get_no_package_default_output_limit(
        llm: OpenAITestServer, monkeypatch: pytest.MonkeyPatch) -> None:
    client, hello = OpenAIClient(), [{"role": "user", "content": "hi"}]
    llmkit.force_default_value("temperature", 0.5)
    client.send_message(hello, model="gpt-5", cache=False)
    body = llm.requests[-1].body
    assert "max_completion_tokens" not in body and "max_tokens" not in body
    assert "temperature" not in body  # configured sampling values are not sent to reasoning models
    client.send_message(hello, model="gpt-5", max_tokens=300, temperature=1, cache=False)
    assert llm.requests[-1].body["max_completion_tokens"] == 300
    assert llm.requests[-1].body["temperature"] == 1  # given in the call: sent
    monkeypatch.setenv("LLMKIT_MAX_TOKENS", "5000")  # set by the user: applies to every model
    client.send_message(hello, model="o3", cache=False)
    assert llm.requests[-1].body["max_completion_tokens"] == 5000
    monkeypatch.delenv("LLMKIT_MAX_TOKENS")
    client.send_message(hello, model="gpt-4o-mini", cache=False)
    assert llm.requests[-1].body["max_tokens"] == 1024 and llm.requests[-1].body["temperature"] == 0.5


def test_an_empty_answer_cut_at_the_limit_warns_and_is_not_cached(llm: OpenAITestServer) -> None:
    llm.reply("", finish_reason="length", times=2)
    hello = [{"role": "user", "content": "think hard"}]
    with pytest.warns(LLMKitWarning, match=r"stopped at its output limit.*max_tokens"):
        first = OpenAIClient().complete(hello, model="gpt-5", max_tokens=64)
    assert first.text == "" and first.finish_reason == "length"
    with pytest.warns(LLMKitWarning):
        assert OpenAIClient().complete(hello, model="gpt-5", max_tokens=64).cached is False
    assert len(llm.requests) == 2


def test_a_bug_in_on_delta_surfaces_as_itself_and_is_not_retried(llm: OpenAITestServer) -> None:
    def on_delta(text: str) -> None:
        raise ValueError("my bug")

    with pytest.raises(ValueError, match=r"^my bug$"):
        OpenAIClient().complete([{"role": "user", "content": "a b c"}], stream=True, on_delta=on_delta)
    assert len(llm.requests) == 1
    with pytest.raises(ValueError, match=r"^my bug$"):  # a cache hit calls on_delta too
        OpenAIClient().send_message([{"role": "user", "content": "x"}])
        OpenAIClient().complete([{"role": "user", "content": "x"}], on_delta=on_delta)


def test_a_429_retried_until_attempts_run_out_stays_a_rate_limit_error(llm: OpenAITestServer) -> None:
    llm.fail(429, code="rate_limit_exceeded", retry_after=0.01, times=3)
    with pytest.raises(RateLimitError) as info:
        OpenAIClient().send_message([{"role": "user", "content": "x"}], max_attempts=3)
    assert info.value.attempts == 3 and "gave up after 3 attempts" in str(info.value)
    assert len(llm.requests) == 3


def test_embeddings_and_chat_share_one_parameter_vocabulary(llm: OpenAITestServer) -> None:
    client = OpenAIClient()
    vector = client.get_embedding("x", dimensions=8, user="u1")
    body = llm.requests[-1].body
    assert body["dimensions"] == 8 and body["user"] == "u1" and len(vector) == 8  # type: ignore[arg-type]
    client.get_embedding("y", encoding_format="float")
    assert llm.requests[-1].body["encoding_format"] == "float"
    with pytest.raises(ConfigError, match=r"unknown embedding parameter 'dimension' \(did you mean "
                       r"'dimensions'\?\); known: .*dimensions"):
        client.get_embedding("x", dimension=8)
    with pytest.raises(ConfigError, match=r"unknown chat parameter 'dimension'; known: .*max_tokens"):
        client.send_message([{"role": "user", "content": "x"}], dimension=8)
    with pytest.raises(ConfigError, match="n=0 is not valid: expected an integer of at least 1"):
        client.send_message([{"role": "user", "content": "x"}], n=0)
    with pytest.raises(ConfigError, match="stop=5 is not valid"):
        client.send_message([{"role": "user", "content": "x"}], stop=5)


def test_model_info_is_public() -> None:
    info = llmkit.model_info("gpt-5")
    assert (info.max_input_tokens, info.max_output_tokens, info.reasoning) == (272_000, 128_000, True)
    assert (info.input_price, info.cached_input_price, info.output_price) == (1.25, 0.125, 10.0)
    assert llmkit.model_info("gpt-4o-2024-05-13").input_price == 5.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert llmkit.model_info("my-local-model").known is False
