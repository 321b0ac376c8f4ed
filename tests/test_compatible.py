"""api type "compatible": any OpenAI-compatible server by base URL, against the test server."""

from __future__ import annotations

from pathlib import Path

import pytest

import llmkit
from llmkit.base.errors import ConfigError
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
