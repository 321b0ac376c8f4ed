"""AzureClient against the test server's Azure paths."""

from __future__ import annotations

import sys

import pytest

from llmkit import AzureClient
from llmkit.base.errors import AuthenticationError, ConfigError
from tests.conftest import SECRET
from tests.openai_server import OpenAITestServer

HELLO = [{"role": "user", "content": "hi azure"}]


@pytest.fixture
def azure(openai_server: OpenAITestServer, monkeypatch: pytest.MonkeyPatch) -> OpenAITestServer:
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", openai_server.url)
    monkeypatch.setenv("AZURE_OPENAI_KEY", SECRET)
    monkeypatch.setenv("AZURE_API_VERSION", "2024-10-21")
    return openai_server


def test_chat_goes_to_the_deployment(azure: OpenAITestServer) -> None:
    message = AzureClient().send_message(HELLO, model="my-deployment")
    assert message["content"] == "echo: hi azure"
    request = azure.requests[-1]
    assert request.path == "/openai/deployments/my-deployment/chat/completions"
    assert request.query["api-version"] == "2024-10-21"
    assert request.headers["api-key"] == SECRET


def test_embeddings_and_cache(azure: OpenAITestServer) -> None:
    vector = AzureClient().get_embedding("some text", model="embed-deploy")
    assert len(vector) == 64
    assert azure.requests[-1].path == "/openai/deployments/embed-deploy/embeddings"
    AzureClient().get_embedding("some text", model="embed-deploy")
    assert len(azure.requests) == 1


def test_azure_key_via_alternative_variable(azure: OpenAITestServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AZURE_OPENAI_KEY")
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "other-key")
    AzureClient().send_message(HELLO, model="d")
    assert azure.requests[-1].headers["api-key"] == "other-key"


def test_missing_endpoint_says_what_to_set() -> None:
    with pytest.raises(ConfigError, match="AZURE_OPENAI_ENDPOINT"):
        AzureClient().send_message(HELLO, model="d")


def test_no_key_and_no_azure_identity(azure: OpenAITestServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AZURE_OPENAI_KEY")
    monkeypatch.setitem(sys.modules, "azure.identity", None)
    with pytest.raises(AuthenticationError, match=r"pip install 'llmkit\[azure\]'"):
        AzureClient().send_message(HELLO, model="d")
    assert azure.requests == []


def test_the_azure_simulators_stream_is_read_whole(azure: OpenAITestServer) -> None:
    """aoai-api-simulator streams with finish_reason inside delta and no usage chunk."""
    azure.simulator_stream("Lorem ipsum dolor sit", finish_reason="length")
    pieces: list[str] = []
    completion = AzureClient().complete(HELLO, model="gpt-4o-mini", stream=True,
                                        on_delta=pieces.append)
    assert completion.text == "Lorem ipsum dolor sit" and "".join(pieces) == completion.text
    assert completion.finish_reason == "length" and completion.usage == {} and completion.cost is None
    assert len(azure.requests) == 1  # not retried as a cut stream
    assert AzureClient().complete(HELLO, model="gpt-4o-mini", stream=True).text == completion.text
    assert len(azure.requests) == 1  # whole, so cached


def test_a_streamed_answer_of_unknown_cost_counts_as_its_reservation(azure: OpenAITestServer) -> None:
    """Money fails closed: no usage means the worst case reserved is counted as spent."""
    import llmkit
    from llmkit.clients import budget
    llmkit.force_default_value("budget_usd", 1.0)
    azure.simulator_stream("Lorem ipsum")
    prepared = AzureClient().prepare(HELLO, model="gpt-4o-mini", stream=True)
    worst = budget.estimate(prepared)
    AzureClient().execute(prepared)
    assert worst is not None and worst > 0 and budget.spent() == pytest.approx(worst)
