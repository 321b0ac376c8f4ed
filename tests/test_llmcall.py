"""LLMCall end to end against the test server."""

from __future__ import annotations

from pathlib import Path

import pytest

import llmkit
from llmkit import LLMCall
from llmkit.base.errors import ConfigError, MissingVariableError
from tests.conftest import SECRET
from tests.openai_server import OpenAITestServer


def test_call_renders_sends_and_keeps_what_happened(llm: OpenAITestServer) -> None:
    call = LLMCall("You are {{ persona }}.", "Tell me about {{ topic }}.", temperature=0, max_tokens=50)
    assert call.variables == ["persona", "topic"]
    out = call.call(persona="a poet", topic="the sea")
    assert out == "echo: Tell me about the sea."
    assert call.messages == [{"role": "system", "content": "You are a poet."},
                             {"role": "user", "content": "Tell me about the sea."}]
    assert call.model_output == {"role": "assistant", "content": out}
    assert call.usage and call.usage["total_tokens"] > 0
    assert call.latency is not None and call.latency > 0 and call.cached is False
    assert out.usage == call.usage and out.messages == call.messages
    body = llm.requests[-1].body
    assert (body["temperature"], body["max_tokens"]) == (0, 50)
    again = call.call(persona="a poet", topic="the sea")
    assert again.cached is True and again == out and len(llm.requests) == 1


def test_template_files(llm: OpenAITestServer, tmp_path: Path) -> None:
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "sys.md").write_text("System for {{ who }}")
    (tmp_path / "templates" / "user.md").write_text("Question: {{ q }}")
    call = LLMCall("sys.md", "user.md")
    assert call.call(who="me", q="why?") == "echo: Question: why?"
    assert "sys.md" in repr(call) and "user.md" in repr(call)


def test_missing_variable_sends_nothing(llm: OpenAITestServer) -> None:
    call = LLMCall("Hi {{ name }}", "{{ question }}")
    with pytest.raises(MissingVariableError, match="question"):
        call.call(name="x")
    assert llm.requests == []


def test_defaults_resolved_at_call_time(llm: OpenAITestServer) -> None:
    call = LLMCall("s", "u")
    llmkit.force_default_value("model", "later-model")
    call.call()
    assert llm.requests[-1].body["model"] == "later-model"


def test_explicit_client_and_streaming(llm: OpenAITestServer) -> None:
    client = llmkit.OpenAIClient(base_url=llm.base_url, api_key=SECRET)
    pieces: list[str] = []
    out = LLMCall("s", "stream this answer", client=client).call(stream=True, on_delta=pieces.append)
    assert "".join(pieces) == out == "echo: stream this answer"


def test_repr_before_any_call_and_no_secret(llm: OpenAITestServer) -> None:
    call = LLMCall("You are {{ x }}", model="gpt-4o", temperature=0.1)
    assert repr(call) == "LLMCall(system='You are {{ x }}', model='gpt-4o', temperature=0.1)"
    call.call(x="y")
    assert SECRET not in repr(call)


def test_repr_hides_credential_like_parameters() -> None:
    call = LLMCall("s", extra_headers={"X-Api-Key": SECRET}, temperature=0)
    assert SECRET not in repr(call)
    assert "extra_headers=<hidden>" in repr(call) and "temperature=0" in repr(call)


def test_a_misspelt_or_bad_parameter_fails_when_the_call_is_built(llm: OpenAITestServer) -> None:
    with pytest.raises(ConfigError, match=r"^LLMCall: unknown chat parameter 'temprature' "
                                          r"\(did you mean 'temperature'\?\); known: "):
        LLMCall("s", "u", temprature=0)
    with pytest.raises(ConfigError, match=r"^LLMCall: chat parameter max_tokens=0 is not valid: "
                                          "expected an integer of at least 1"):
        LLMCall("s", max_tokens=0)
    with pytest.raises(ConfigError, match=r"unknown chat parameter 'colour'; known: "):  # no close match
        LLMCall("s", colour="red")
    assert llm.requests == []
    call = LLMCall("s", "u", temperature=0, timeout=30, model=None)  # call options and None pass
    assert call.call() == "echo: u"


@pytest.mark.parametrize(("name", "value", "where"), [
    ("model", "gpt-4o", r"run\(\.\.\., model=\.\.\.\) or LLMCall\(\.\.\., model=\.\.\.\)"),
    ("temperature", 0, r"run\(\.\.\., temperature=\.\.\.\) or LLMCall\(\.\.\., temperature=\.\.\.\)"),
    ("timeout", 5, r"run\(\.\.\., timeout=\.\.\.\) or LLMCall"),
    ("output_type", int, r"run\(\.\.\., output_type=\.\.\.\) or LLMCall"),
    ("tools", [], r"as LLMCall\(\.\.\., tools=\.\.\.\)$"),
])
def test_a_call_keyword_that_is_a_parameter_of_the_call_is_refused(
        llm: OpenAITestServer, name: str, value: object, where: str) -> None:
    call = LLMCall("You answer about {{ topic }}.", "{{ question }}")
    with pytest.raises(ConfigError, match=rf"^LLMCall.call\({name}=...\): {name} is not a variable of "
                                          rf"the templates \(they use: topic, question\); .*{where}"):
        call.call(topic="x", question="y", **{name: value})
    assert llm.requests == [] and call.completion is None
    assert call.run({"topic": "x", "question": "y"}, model="gpt-4o") == "echo: y"  # where it belongs
    assert llm.requests[-1].body["model"] == "gpt-4o"


def test_an_unused_call_keyword_warns_once_per_call_and_name(llm: OpenAITestServer) -> None:
    call = LLMCall("s", "about {{ topic }}")
    with pytest.warns(llmkit.LLMKitWarning, match=r"^LLMCall.call\(topik=...\): topik is not a variable "
                                                 r"of the templates \(they use: topic\), so it was ignored"):
        assert call.call(topic="x", topik="y") == "echo: about x"
    call.call(topic="x", topik="z")  # no second warning (warnings are errors in this suite)
    with pytest.warns(llmkit.LLMKitWarning, match="colour"):
        call.call(topic="x", colour="red")
    with pytest.warns(llmkit.LLMKitWarning, match="topik"):
        LLMCall("s", "about {{ topic }}").call(topic="x", topik="y")  # another LLMCall warns again


def test_a_single_braced_variable_warns_with_the_fix(llm: OpenAITestServer) -> None:
    call = LLMCall("s", "What is the capital of {country}?")
    with pytest.warns(llmkit.LLMKitWarning) as seen:
        answer = call.call(country="France")
    assert answer == "echo: What is the capital of {country}?"  # sent as written, but now said
    assert [str(w.message) for w in seen if issubclass(w.category, llmkit.LLMKitWarning)] == [
        next(str(w.message) for w in seen if "{country} is sent as written" in str(w.message))]
    assert "write {{ country }}" in str(seen[0].message)  # one warning, and it gives the fix
