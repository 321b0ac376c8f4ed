"""AzureClient against the test server's Azure paths."""

from __future__ import annotations

import sys

import pytest

import llmkit
import llmkit.base.config
from llmkit import AzureClient, BudgetExceededError
from llmkit.base.errors import AuthenticationError, CallError, ConfigError, ContextLengthError
from llmkit.base.models import cost
from llmkit.clients import budget
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
    assert completion.finish_reason == "length" and completion.usage == {} and completion.cost_estimated
    assert len(azure.requests) == 1  # not retried as a cut stream
    assert AzureClient().complete(HELLO, model="gpt-4o-mini", stream=True).text == completion.text
    assert len(azure.requests) == 1  # whole, so cached


def test_a_streamed_answer_without_usage_is_priced_from_its_own_counts(azure: OpenAITestServer) -> None:
    """Money fails closed: a simulator stream has no usage, so llmkit counts the tokens itself."""
    llmkit.force_default_value("budget_usd", 1.0)
    azure.simulator_stream("Lorem ipsum")
    prepared = AzureClient().prepare(HELLO, model="gpt-4o-mini", stream=True)
    worst = budget.estimate(prepared)
    completion = AzureClient().execute(prepared)
    assert completion.cost_estimated and completion.cost is not None and 0 < completion.cost
    assert worst is not None and completion.cost <= worst
    assert budget.spent() == pytest.approx(completion.cost)


# --- the v1 API: /openai/v1/..., the plain OpenAI client, no api-version ------------------------


@pytest.fixture
def azure_v1(azure: OpenAITestServer, monkeypatch: pytest.MonkeyPatch) -> OpenAITestServer:
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", azure.url + "/openai/v1/")
    return azure


def test_the_v1_endpoint_takes_chat_with_the_deployment_as_model(azure_v1: OpenAITestServer) -> None:
    message = AzureClient().send_message(HELLO, model="my-deployment")
    assert message["content"] == "echo: hi azure"
    request = azure_v1.requests[-1]
    assert request.path == "/openai/v1/chat/completions"  # not /openai/v1/openai/deployments/...
    assert "api-version" not in request.query
    assert request.body["model"] == "my-deployment"
    assert request.headers["authorization"] == f"Bearer {SECRET}" and "api-key" not in request.headers


@pytest.mark.parametrize("endpoint", ["{url}", "{url}/", "{url}/openai", "{url}/openai/v1"])
def test_api_version_v1_uses_the_v1_url(azure: OpenAITestServer, monkeypatch: pytest.MonkeyPatch,
                                        endpoint: str) -> None:
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", endpoint.format(url=azure.url))
    monkeypatch.setenv("AZURE_API_VERSION", "v1")
    AzureClient().send_message(HELLO, model="d")
    assert azure.requests[-1].path == "/openai/v1/chat/completions"
    assert "api-version" not in azure.requests[-1].query


def test_the_v1_endpoint_takes_responses(azure_v1: OpenAITestServer) -> None:
    completion = AzureClient().complete(HELLO, model="my-deployment", responses_api="always")
    assert completion.text == "echo: hi azure"
    request = azure_v1.requests[-1]
    assert request.path == "/openai/v1/responses" and "api-version" not in request.query
    assert request.body["model"] == "my-deployment"


def test_auto_sends_a_responses_only_deployment_to_responses(
        azure_v1: OpenAITestServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMKIT_AZURE_DEPLOYMENTS", "deep:o3-pro, chat:gpt-4o")
    assert AzureClient().complete(HELLO, model="deep").text == "echo: hi azure"
    assert azure_v1.requests[-1].path == "/openai/v1/responses"
    assert azure_v1.requests[-1].body["model"] == "deep"
    AzureClient().complete(HELLO, model="chat")
    assert azure_v1.requests[-1].path == "/openai/v1/chat/completions"


def test_responses_refused_on_a_classic_endpoint_say_to_use_v1(azure: OpenAITestServer) -> None:
    """The SDK sends classic Responses to /openai/responses?api-version=..., which Azure serves only
    with preview versions; the test server, like an older one, answers 404."""
    with pytest.raises(CallError, match=r"AZURE_OPENAI_ENDPOINT=https://RESOURCE\.openai\.azure\.com/"
                                        r"openai/v1") as info:
        AzureClient().complete(HELLO, model="d", responses_api="always")
    assert info.value.status == 404 and azure.requests[-1].path == "/openai/responses"


def test_the_v1_endpoint_streams_responses(azure_v1: OpenAITestServer) -> None:
    pieces: list[str] = []
    completion = AzureClient().complete(HELLO, model="d", responses_api="always", stream=True,
                                        on_delta=pieces.append)
    assert completion.text == "echo: hi azure" == "".join(pieces)
    assert azure_v1.requests[-1].path == "/openai/v1/responses"


def test_the_v1_endpoint_takes_embeddings(azure_v1: OpenAITestServer) -> None:
    assert len(AzureClient().get_embedding("some text", model="embed-deploy")) == 64
    assert azure_v1.requests[-1].path == "/openai/v1/embeddings"


def _tokens() -> str:
    """A token provider as azure-identity's get_bearer_token_provider makes one."""
    return "entra-token-1"


@pytest.mark.parametrize("v1", [True, False])
def test_entra_id_through_a_token_provider(azure: OpenAITestServer, monkeypatch: pytest.MonkeyPatch,
                                           v1: bool) -> None:
    monkeypatch.delenv("AZURE_OPENAI_KEY")
    monkeypatch.setitem(sys.modules, "azure.identity", None)  # the provider given needs none
    if v1:
        monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", azure.url + "/openai/v1")
    client = AzureClient(token_provider=_tokens)
    assert client.credentials_configured()
    assert client.send_message(HELLO, model="d")["content"] == "echo: hi azure"
    request = azure.requests[-1]
    assert request.headers["authorization"] == "Bearer entra-token-1" and "api-key" not in request.headers
    assert request.path == ("/openai/v1/chat/completions" if v1 else
                            "/openai/deployments/d/chat/completions")
    assert _tokens.__name__ not in repr(client) and "entra-token" not in repr(client)


def test_each_token_provider_signs_its_own_calls(azure_v1: OpenAITestServer,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AZURE_OPENAI_KEY")
    AzureClient(token_provider=_tokens).send_message(HELLO, model="d")
    AzureClient(token_provider=lambda: "other-token").send_message(HELLO, model="d", cache=False)
    seen = [r.headers["authorization"] for r in azure_v1.requests]
    assert seen == ["Bearer entra-token-1", "Bearer other-token"]


def test_a_registered_signed_in_client_answers_llmcall(azure_v1: OpenAITestServer,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """As the README shows: register an AzureClient with a token provider under 'azure'."""
    monkeypatch.delenv("AZURE_OPENAI_KEY")
    llmkit.register_client("azure", AzureClient(token_provider=_tokens))
    llmkit.force_api_type("azure")
    assert llmkit.LLMCall("Be brief.", "hi azure", model="d").call() == "echo: hi azure"
    assert azure_v1.requests[-1].headers["authorization"] == "Bearer entra-token-1"


def test_a_key_wins_over_a_token_provider(azure_v1: OpenAITestServer) -> None:
    AzureClient(token_provider=_tokens).send_message(HELLO, model="d")
    assert azure_v1.requests[-1].headers["authorization"] == f"Bearer {SECRET}"


def test_a_token_provider_must_be_a_function() -> None:
    with pytest.raises(ConfigError, match=r"token_provider=.*function returning a bearer token"):
        AzureClient(token_provider="a-token")  # type: ignore[arg-type]


def test_no_key_and_no_azure_identity_on_v1(azure_v1: OpenAITestServer,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AZURE_OPENAI_KEY")
    monkeypatch.setitem(sys.modules, "azure.identity", None)
    with pytest.raises(AuthenticationError, match=r"pip install 'llmkit\[azure\]'"):
        AzureClient().send_message(HELLO, model="d")
    assert azure_v1.requests == []


# --- deployments priced, limited and ruled as the model they serve (AZURE_DEPLOYMENTS) -----------

USAGE = {"prompt_tokens": 1000, "completion_tokens": 100, "total_tokens": 1100}


@pytest.fixture
def mapped(azure: OpenAITestServer, monkeypatch: pytest.MonkeyPatch) -> OpenAITestServer:
    monkeypatch.setenv("LLMKIT_AZURE_DEPLOYMENTS",
                       "prod-chat:gpt-4o, Think:gpt-5, embed:text-embedding-3-large")
    return azure


def test_a_mapped_deployment_costs_what_its_model_costs(mapped: OpenAITestServer) -> None:
    mapped.reply("priced", usage=USAGE)  # the server names the deployment, as Azure's answers can
    completion = AzureClient().complete(HELLO, model="prod-chat", max_tokens=10)
    assert mapped.requests[-1].path == "/openai/deployments/prod-chat/chat/completions"
    assert completion.request["model"] == "prod-chat"  # what was sent and is shown
    assert completion.cost == pytest.approx(cost("gpt-4o", USAGE)) and completion.cost > 0
    (run,) = llmkit.history()
    assert run.cost == pytest.approx(cost("gpt-4o", USAGE))


def test_a_reasoning_deployment_gets_reasoning_rules(mapped: OpenAITestServer) -> None:
    llmkit.force_default_value("temperature", 0.5)
    llmkit.force_default_value("max_tokens", 300)
    AzureClient().complete(HELLO, model="think")  # names are case-insensitive, as on Azure
    sent = mapped.requests[-1].body
    assert sent["model"] == "think" and sent["max_completion_tokens"] == 300
    assert "max_tokens" not in sent and "temperature" not in sent
    AzureClient().complete(HELLO, model="prod-chat")
    assert mapped.requests[-1].body["temperature"] == 0.5 and mapped.requests[-1].body["max_tokens"] == 300


def test_a_deployment_has_its_models_limits(mapped: OpenAITestServer) -> None:
    output_limit = llmkit.model_info("gpt-4o").max_output_tokens
    assert output_limit is not None
    with pytest.raises(ContextLengthError, match=f"{output_limit:,} output tokens"):
        AzureClient().complete(HELLO, model="prod-chat", max_tokens=output_limit + 1)
    assert mapped.requests == []


def test_budgets_apply_to_a_mapped_deployment(mapped: OpenAITestServer) -> None:
    prepared = AzureClient().prepare(HELLO, model="prod-chat", max_tokens=100)
    assert prepared.priced_as == "gpt-4o"
    worst = budget.estimate(prepared)
    info = llmkit.model_info("gpt-4o")
    assert info.input_price is not None and info.output_price is not None
    prompt = llmkit.count_tokens(HELLO, "gpt-4o")
    assert worst == pytest.approx((prompt * info.input_price + 100 * info.output_price) / 1e6)
    llmkit.force_default_value("budget_usd", worst * 1.5)
    mapped.reply("one", usage=USAGE)
    AzureClient().complete(HELLO, model="prod-chat", max_tokens=100)
    assert budget.spent() == pytest.approx(cost("gpt-4o", USAGE))
    with pytest.raises(BudgetExceededError, match="'prod-chat'"):
        AzureClient().complete([{"role": "user", "content": "again"}], model="prod-chat", max_tokens=100)
    assert len(mapped.requests) == 1


def test_an_unpriced_deployment_with_a_budget_is_refused_saying_how_to_map_it(
        azure: OpenAITestServer) -> None:
    llmkit.force_default_value("daily_budget_usd", 5)
    with pytest.raises(BudgetExceededError) as info:
        AzureClient().complete(HELLO, model="prod-chat", max_tokens=10)
    message = str(info.value)
    assert "no price for 'prod-chat'" in message and "nothing was sent" in message
    assert "AZURE_DEPLOYMENTS = prod-chat:gpt-4o" in message and "LLMKIT_AZURE_DEPLOYMENTS" in message
    with pytest.raises(BudgetExceededError, match="AZURE_DEPLOYMENTS = embed:"):
        AzureClient().get_embedding("text", model="embed")
    assert azure.requests == []


def test_an_unmapped_deployment_is_priced_as_the_model_the_server_names(azure: OpenAITestServer) -> None:
    azure.reply("named", usage=USAGE, model="gpt-4o-2024-05-13")
    completion = AzureClient().complete(HELLO, model="prod-chat", max_tokens=10)
    assert completion.cost == pytest.approx(cost("gpt-4o-2024-05-13", USAGE)) and completion.cost > 0
    assert completion.paid == completion.cost


def test_a_mapped_embedding_deployment_is_priced(mapped: OpenAITestServer) -> None:
    llmkit.force_default_value("budget_usd", 1)
    AzureClient().get_embedding(["three little words"], model="embed")
    (run,) = llmkit.history()
    tokens = 3  # the test server counts words
    assert run.cost == pytest.approx(cost("text-embedding-3-large", {"prompt_tokens": tokens}))
    assert budget.spent() == pytest.approx(run.cost) and run.cost > 0


@pytest.mark.parametrize("value, expected", [
    ("prod-chat:gpt-4o, think:gpt-5", {"prod-chat": "gpt-4o", "think": "gpt-5"}),
    ({"Prod-Chat": "gpt-4o"}, {"prod-chat": "gpt-4o"}),  # a dict given in code
    ("ft:ft:gpt-4o-mini:org::id", {"ft": "ft:gpt-4o-mini:org::id"}),
    ("", None),
])
def test_the_mapping_is_read_from_text_or_a_dict(value: object, expected: object) -> None:
    llmkit.force_default_value("azure_deployments", value)
    assert llmkit.base.config.resolve()["azure_deployments"] == expected


@pytest.mark.parametrize("value", ["prod-chat", "prod-chat:", ":gpt-4o", "a b:gpt-4o", "x:gpt 4o"])
def test_a_bad_mapping_says_what_is_expected(value: str) -> None:
    with pytest.raises(ConfigError, match=r"AZURE_DEPLOYMENTS = .* expected deployment:model pairs "
                                          r"separated by commas, e\.g\. prod-chat:gpt-4o"):
        llmkit.force_default_value("azure_deployments", value)
