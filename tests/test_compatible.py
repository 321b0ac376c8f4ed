"""api type "compatible": any OpenAI-compatible server by base URL, against the test server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import llmkit
from llmkit.base.errors import AuthenticationError, ConfigError, InvalidRequestError
from llmkit.clients.compatible import CompatibleClient
from tests.conftest import SECRET
from tests.openai_server import OpenAITestServer

HELLO = [{"role": "user", "content": "hi"}]


def test_configured_in_config_ini(openai_server: OpenAITestServer, tmp_path: Path) -> None:
    (tmp_path / "config.ini").write_text(
        f"[OpenAI]\nAPI_TYPE=compatible\nBASE_URL={openai_server.base_url}\nMODEL=llama3.2\n")
    client = llmkit.client()
    assert type(client) is CompatibleClient and client.credentials_configured()
    assert client.send_message(HELLO)["content"] == "echo: hi"
    request = openai_server.requests[-1]
    assert request.path == "/v1/chat/completions" and request.body["model"] == "llama3.2"


def test_openai_base_url_and_cache(openai_server: OpenAITestServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", openai_server.base_url + "/")
    llmkit.force_api_type("compatible")
    first = llmkit.client().complete(HELLO, model="qwen")
    again = llmkit.client().complete(HELLO, model="qwen")
    assert (first.cached, again.cached) == (False, True) and again.text == first.text
    assert len(llmkit.client().get_embedding(["a", "b"])) == 2
    assert len(openai_server.requests) == 2


def test_register_client_with_its_own_key(openai_server: OpenAITestServer) -> None:
    llmkit.register_client("vllm", CompatibleClient(base_url=openai_server.base_url, model="m",
                                                    api_key="vllm-key"))
    llmkit.force_api_type("vllm")
    llmkit.client().send_message(HELLO)
    assert openai_server.requests[-1].headers["authorization"] == "Bearer vllm-key"
    assert "vllm-key" not in repr(llmkit.client())


def test_the_openai_key_is_never_sent(openai_server: OpenAITestServer,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    client = CompatibleClient(base_url=openai_server.base_url, model="m")
    assert client.send_message(HELLO)["content"] == "echo: hi"
    assert SECRET not in openai_server.requests[-1].headers.get("authorization", "")


def test_no_base_url_says_what_to_set() -> None:
    llmkit.force_api_type("compatible")
    assert not llmkit.client().credentials_configured()
    with pytest.raises(ConfigError, match=r"set BASE_URL in config\.ini or the OPENAI_BASE_URL"):
        llmkit.client().send_message(HELLO)


def test_base_url_must_be_http() -> None:
    with pytest.raises(ConfigError, match=r"BASE_URL = 'localhost:11434' is not valid; expected an http"):
        CompatibleClient(base_url="localhost:11434").send_message(HELLO)


GATEWAY_KEY = "sk-gateway-MASTER-7777"


@pytest.fixture
def gateway(openai_server: OpenAITestServer, monkeypatch: pytest.MonkeyPatch) -> OpenAITestServer:
    """The compatible api type pointed at a test server that wants GATEWAY_KEY."""
    monkeypatch.setenv("OPENAI_BASE_URL", openai_server.base_url)
    openai_server.required_api_key = GATEWAY_KEY
    llmkit.force_api_type("compatible")
    llmkit.force_default_value("max_attempts", 1)
    return openai_server


def test_compatible_api_key_from_the_environment_is_sent(gateway: OpenAITestServer,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMKIT_COMPATIBLE_API_KEY", GATEWAY_KEY)
    assert llmkit.client().send_message(HELLO)["content"] == "echo: hi"
    assert gateway.requests[-1].headers["authorization"] == f"Bearer {GATEWAY_KEY}"
    assert GATEWAY_KEY not in repr(llmkit.client().settings())
    monkeypatch.setenv("LLMKIT_COMPATIBLE_API_KEY", "sk-rotated-key-8888")
    gateway.required_api_key = "sk-rotated-key-8888"
    llmkit.client().complete(HELLO, cache=False)  # a new key: a new SDK client, not the old one
    assert gateway.requests[-1].headers["authorization"] == "Bearer sk-rotated-key-8888"


def test_compatible_api_key_is_never_sent_to_another_host(
        openai_server: OpenAITestServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMKIT_COMPATIBLE_API_KEY", GATEWAY_KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", openai_server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", openai_server.url)
    monkeypatch.setenv("AZURE_OPENAI_KEY", "azure-key-5555")
    for api_type in ("openai", "azure"):
        llmkit.force_api_type(api_type)
        llmkit.client().send_message(HELLO, model="gpt-4o-mini")
    assert len(openai_server.requests) == 2
    for request in openai_server.requests:
        assert GATEWAY_KEY not in json.dumps(request.headers)


def test_a_base_url_named_only_by_a_working_directory_config_ini_gets_no_key(
        openai_server: OpenAITestServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMKIT_COMPATIBLE_API_KEY", GATEWAY_KEY)
    named = f"[OpenAI]\nAPI_TYPE=compatible\nBASE_URL={openai_server.base_url}\n"
    (tmp_path / "config.ini").write_text(named)
    with pytest.raises(ConfigError, match=r"does not send your COMPATIBLE_API_KEY .* LLMKIT_TRUSTED_HOSTS"):
        llmkit.client().send_message(HELLO)
    assert openai_server.requests == []
    monkeypatch.delenv("LLMKIT_COMPATIBLE_API_KEY")  # the same file may name its server and key
    (tmp_path / "config.ini").write_text(f"{named}COMPATIBLE_API_KEY={GATEWAY_KEY}\n")
    llmkit.client().send_message(HELLO)
    assert openai_server.requests[-1].headers["authorization"] == f"Bearer {GATEWAY_KEY}"


@pytest.mark.parametrize("key", [None, "sk-wrong-key-9999"])
def test_a_401_says_how_to_set_the_key(gateway: OpenAITestServer, monkeypatch: pytest.MonkeyPatch,
                                       key: str | None) -> None:
    if key:
        monkeypatch.setenv("LLMKIT_COMPATIBLE_API_KEY", key)
    gateway.echo_key(401)  # quotes the key it got, as OpenAI does
    with pytest.raises(AuthenticationError) as info:
        llmkit.client().send_message(HELLO)
    message = str(info.value)
    assert message.startswith("HTTP 401: Incorrect API key provided")
    assert ("rejected the key sent" if key else "wants a key, and none was sent") in message
    assert message.endswith("; set COMPATIBLE_API_KEY to its key: the environment variable "
                            "LLMKIT_COMPATIBLE_API_KEY, or CompatibleClient(api_key=...) in code")
    assert key is None or key not in message
    assert len(gateway.requests) == 1


@pytest.mark.parametrize("key", [None, "sk-wrong-key-9999"])
def test_litellms_400_no_connected_db_says_how_to_set_the_key(
        gateway: OpenAITestServer, monkeypatch: pytest.MonkeyPatch, key: str | None) -> None:
    """LiteLLM's proxy with a master key and no database answers a missing or wrong key with 400."""
    if key:
        monkeypatch.setenv("LLMKIT_COMPATIBLE_API_KEY", key)
    gateway.key_error = "litellm"
    with pytest.raises(InvalidRequestError) as info:
        llmkit.client().send_message(HELLO)
    message = str(info.value)
    assert info.value.status == 400 and message.startswith("HTTP 400: No connected db.")
    assert ("answers a wrong key with 400" if key else "no key was sent") in message
    assert "LLMKIT_COMPATIBLE_API_KEY" in message and (key is None or key not in message)


def test_a_400_for_something_else_with_a_key_set_gets_no_key_advice(
        gateway: OpenAITestServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMKIT_COMPATIBLE_API_KEY", GATEWAY_KEY)
    gateway.fail(400, message="Unknown model 'nope'")
    with pytest.raises(InvalidRequestError) as info:
        llmkit.client().send_message(HELLO)
    assert str(info.value) == "HTTP 400: Unknown model 'nope'"
