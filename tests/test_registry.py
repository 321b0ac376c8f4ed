"""client(), register_client, force_api_type, force_api_cache."""

from __future__ import annotations

from pathlib import Path

import pytest

import llmkit
from llmkit import AzureClient, OpenAIClient
from llmkit.base.errors import ConfigError
from tests.openai_server import OpenAITestServer

HELLO = [{"role": "user", "content": "hi"}]


def test_default_client_is_openai_and_reused() -> None:
    assert type(llmkit.client()) is OpenAIClient
    assert llmkit.client() is llmkit.client()


def test_force_api_type_switches_and_none_restores() -> None:
    llmkit.force_api_type("azure")
    assert type(llmkit.client()) is AzureClient
    llmkit.force_api_type(None)
    assert type(llmkit.client()) is OpenAIClient


def test_configured_api_type(tmp_path: Path) -> None:
    (tmp_path / "config.ini").write_text("[OpenAI]\nAPI_TYPE=azure\n")
    assert type(llmkit.client()) is AzureClient


def test_unknown_api_type_lists_the_registered_ones() -> None:
    with pytest.raises(ConfigError,
                       match=r"unknown api type 'nope'; registered: azure, compatible, local, openai"):
        llmkit.force_api_type("nope")
    assert type(llmkit.client()) is OpenAIClient  # nothing changed


def test_register_client_instance_and_factory(openai_server: OpenAITestServer) -> None:
    mine = OpenAIClient(base_url=openai_server.base_url, model="served-model")
    llmkit.register_client("mine", mine)
    built: list[int] = []
    llmkit.register_client("lazy", lambda: built.append(1) or OpenAIClient(base_url=openai_server.base_url))
    assert "mine" in llmkit.registered() and "lazy" in llmkit.registered()
    assert built == []
    llmkit.force_api_type("mine")
    assert llmkit.client() is mine
    assert llmkit.client().send_message(HELLO)["content"] == "echo: hi"
    assert openai_server.requests[-1].body["model"] == "served-model"
    llmkit.force_api_type("lazy")
    assert isinstance(llmkit.client(), OpenAIClient) and built == [1]


def test_register_client_rejects_bad_input() -> None:
    with pytest.raises(ConfigError, match="non-empty string"):
        llmkit.register_client("", OpenAIClient())
    with pytest.raises(ConfigError, match="OpenAIClient"):
        llmkit.register_client("x", 42)  # type: ignore[arg-type]


def test_force_api_cache_folder_and_off(llm: OpenAITestServer, tmp_path: Path) -> None:
    llmkit.force_api_cache(True, str(tmp_path / "elsewhere"))
    llmkit.client().send_message(HELLO)
    llmkit.client().send_message(HELLO)
    assert len(llm.requests) == 1
    assert (tmp_path / "elsewhere" / "cache.db").exists()
    llmkit.force_api_cache(False)
    llmkit.client().send_message(HELLO)
    assert len(llm.requests) == 2
