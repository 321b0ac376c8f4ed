"""The fault matrix (issue 10): hostile servers, careless input and leaked keys, each reproduced
against the test server on 127.0.0.1. Nothing wrong is returned as good, cached or recorded."""

from __future__ import annotations

import errno
import json
import traceback
import warnings
from pathlib import Path
from typing import Any

import pytest

import llmkit
from llmkit import LLMCall, OpenAIClient
from llmkit.base import config
from llmkit.base.cache import CacheWarning
from llmkit.base.errors import (
    AuthenticationError,
    ConfigError,
    InvalidRequestError,
    LLMKitError,
    RateLimitError,
    ServerError,
    TransportError,
)
from llmkit.clients.store import open_cache
from tests.conftest import SECRET
from tests.openai_server import OpenAITestServer

HELLO = [{"role": "user", "content": "hello"}]
AZURE_SECRET = "azure-SECRET-key-9393"


def _not_cached(server: OpenAITestServer) -> None:
    """The next identical call goes to the server again (nothing was stored)."""
    before = len(server.requests)
    assert OpenAIClient().complete(HELLO).cached is False
    assert len(server.requests) == before + 1


# -- answers that must never be cached or returned as good ------------------------------------

@pytest.mark.parametrize("framing", ["close", "chunked"])
def test_a_cut_stream_raises_retryably_and_stores_nothing(llm: OpenAITestServer, framing: str) -> None:
    llm.cut_stream(after=2, framing=framing, times=2)
    with pytest.raises((ServerError, TransportError)) as info:
        OpenAIClient().complete(HELLO, stream=True, max_attempts=2)
    assert info.value.retryable is True or info.value.attempts == 2
    assert len(llm.requests) == 2  # retried: nothing had been shown (no on_delta)
    _not_cached(llm)


def test_a_cut_stream_already_on_screen_is_not_retried(llm: OpenAITestServer) -> None:
    llm.cut_stream(after=2, framing="close")
    shown: list[str] = []
    with pytest.raises(ServerError, match="ended before the answer was complete") as info:
        OpenAIClient().complete(HELLO, stream=True, on_delta=shown.append)
    assert shown and info.value.partial is True and len(llm.requests) == 1
    _not_cached(llm)


@pytest.mark.parametrize("fault", ["null_message", "no_message", "html", "array"])
def test_a_200_that_is_not_an_answer_is_a_retryable_server_error(
        llm: OpenAITestServer, fault: str) -> None:
    for _ in range(2):
        if fault == "html":
            llm.body(200, "<html><body>Gateway says hi</body></html>", "text/html")
        elif fault == "array":
            llm.body(200, "[1, 2]", "application/json")
        else:
            getattr(llm, fault)()
    with pytest.raises(ServerError) as info:
        OpenAIClient().send_message(HELLO, max_attempts=2)
    assert info.value.attempts == 2 and len(llm.requests) == 2
    _not_cached(llm)


def test_usage_that_is_not_counts_keeps_the_answer_and_shows_unknown(llm: OpenAITestServer) -> None:
    llm.reply("fine answer", usage={"prompt_tokens": "many", "completion_tokens": None})
    result = LLMCall("s", "u").call()
    assert result == "fine answer" and result.usage == {}
    assert "tokens: unknown" in result._repr_mimebundle_()["text/plain"]
    llm.reply("row answer", usage={"prompt_tokens": "many"})
    [row] = LLMCall("s", "v").map([{}], progress=False)
    assert row == "row answer"


def test_a_lone_surrogate_from_the_server_is_replaced_not_cached_broken(llm: OpenAITestServer) -> None:
    llm.surrogate_text()
    text = OpenAIClient().complete(HELLO).text
    assert "\ufffd" in text and OpenAIClient().complete(HELLO).cached is True


# -- waiting and time ----------------------------------------------------------------------------

@pytest.mark.parametrize("header", [{"retry_after": "inf"}, {"retry_after_ms": "1e400"},
                                    {"retry_after": 3600}])
def test_a_huge_or_infinite_retry_after_fails_at_once_and_blocks_nobody(
        llm: OpenAITestServer, header: dict[str, Any]) -> None:
    llmkit.force_default_value("max_retry_after", 0.3)
    llm.fail(429, code="rate_limit_exceeded", **header)
    with pytest.raises(RateLimitError, match=r"asks to wait .*longer than MAX_RETRY_AFTER = 0\.3 s"):
        OpenAIClient().send_message(HELLO)
    assert len(llm.requests) == 1  # not retried
    assert OpenAIClient().send_message(HELLO)["content"] == "echo: hello"  # the endpoint still works


def test_timeout_is_a_deadline_for_the_whole_attempt(llm: OpenAITestServer) -> None:
    llm.trickle(interval=0.1, seconds=5.0)
    with pytest.raises(TransportError, match="within TIMEOUT"):
        OpenAIClient().send_message(HELLO, timeout=0.5, max_attempts=1)
    # each read took 0.1 s, well inside the 0.5 s timeout: only a deadline can stop it
    assert len(llm.requests) == 1



def test_a_timeout_on_a_remote_api_is_retried_and_each_abandoned_attempt_is_closed(
        llm: OpenAITestServer) -> None:
    llm.hang(60)  # the first attempt gets no answer in time
    answer = OpenAIClient().complete(HELLO, timeout=0.5, max_attempts=2)
    assert answer.text == "echo: hello" and len(llm.requests) == 2
    assert llm.abandoned_event.wait(10) and llm.abandoned == 1  # its connection was closed
    llm.hang(60, times=2)
    with pytest.raises(TransportError, match=r"no answer within TIMEOUT") as info:
        OpenAIClient().complete(HELLO, timeout=0.5, max_attempts=2, cache=False)
    assert info.value.code == "timeout" and info.value.attempts == 2


# -- keys ----------------------------------------------------------------------------------------

def test_an_echoed_key_reaches_no_message_and_no_chained_cause(llm: OpenAITestServer) -> None:
    llm.echo_key(401)
    with pytest.raises(AuthenticationError) as info:
        OpenAIClient().send_message(HELLO)
    error = info.value
    shown = "".join(traceback.format_exception(error))
    assert SECRET not in shown and "<hidden>" in str(error)
    assert error.__cause__ is None and error.__context__ is None


def test_both_keys_set_the_azure_key_is_scrubbed_everywhere(
        llm: OpenAITestServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", llm.url)
    monkeypatch.setenv("AZURE_OPENAI_KEY", AZURE_SECRET)
    llm.echo_key(401, times=3)
    azure = llmkit.AzureClient()
    with pytest.raises(AuthenticationError) as info:
        azure.send_message(HELLO, model="gpt-4o")
    assert AZURE_SECRET not in "".join(traceback.format_exception(info.value))
    [row] = LLMCall("s", "u", client=azure, model="gpt-4o").map([{}], progress=False)
    assert AZURE_SECRET not in str(row) and "<hidden>" in str(row)


def test_credentials_in_extra_headers_and_body_never_reach_a_recording(
        llm: OpenAITestServer, isolated: Path) -> None:
    recording = isolated / "rec.jsonl"
    llmkit.force_default_value("record", str(recording))
    OpenAIClient().send_message(HELLO, extra_headers={"X-Api-Key": "hdr-SECRET-1"},
                                extra_body={"api_key": "body-SECRET-2", "note": SECRET})
    assert llm.requests[-1].headers["x-api-key"] == "hdr-SECRET-1"  # sent to the server
    text = recording.read_text()
    assert "hdr-SECRET-1" not in text and "body-SECRET-2" not in text and SECRET not in text
    assert "<hidden>" in text


def test_a_workdir_config_ini_cannot_send_the_key_to_its_host(
        llm: OpenAITestServer, isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_BASE_URL")  # the user named no server; a cloned repo's file does
    (isolated / "config.ini").write_text(f"[OpenAI]\nBASE_URL={llm.base_url}\n")
    with pytest.raises(ConfigError) as info:
        OpenAIClient().send_message(HELLO)
    message = str(info.value)
    assert str(isolated / "config.ini") in message and "127.0.0.1" in message
    assert "LLMKIT_TRUSTED_HOSTS=127.0.0.1" in message and SECRET not in message
    assert llm.requests == []
    monkeypatch.setenv("LLMKIT_TRUSTED_HOSTS", "127.0.0.1")  # the documented opt-in
    OpenAIClient().send_message(HELLO)
    assert llm.requests[-1].headers["authorization"] == f"Bearer {SECRET}"


def test_an_endpoint_the_user_sets_gets_the_key(llm: OpenAITestServer, isolated: Path) -> None:
    (isolated / "config.ini").write_text("[OpenAI]\nBASE_URL=http://evil.example/v1\n")
    llmkit.force_default_value("base_url", llm.base_url)  # set in code: the user's own choice
    OpenAIClient().send_message(HELLO)
    assert len(llm.requests) == 1


def test_llm_config_base_url_says_the_key_will_go_there(ip: Any, llm: OpenAITestServer) -> None:
    from IPython.utils.capture import capture_output
    with capture_output() as out:
        ip.run_line_magic("llm_config", f"base_url {llm.base_url}")
    assert f"note: calls now send your API_KEY to {llm.base_url}" in out.stdout


# -- markdown ------------------------------------------------------------------------------------

def test_server_fields_cannot_break_out_of_markdown(llm: OpenAITestServer) -> None:
    from markdown_it import MarkdownIt
    attack = "gpt\n\n<img src=x onerror=alert(1)>"
    llm.reply("ok", model=attack, finish_reason=attack)
    bundle = LLMCall("s", "u").call()._repr_mimebundle_()
    rendered = MarkdownIt("commonmark").render(bundle["text/markdown"])
    assert "<img" not in rendered and "<img" not in bundle["text/html"]


# -- bad input -----------------------------------------------------------------------------------

BAD: list[tuple[str, dict[str, Any], type[LLMKitError], str]] = [
    ("surrogate prompt", {"messages": [{"role": "user", "content": "hi \ud800"}]},
     InvalidRequestError, "lone surrogate"),
    ("object content", {"messages": [{"role": "user", "content": object()}]},
     InvalidRequestError, "content'] must be text"),
    ("extra_body", {"extra_body": "x"}, ConfigError, "extra_body='x' is not valid: expected a dict"),
    ("timeout soon", {"timeout": "soon"}, ConfigError, "TIMEOUT"),
    ("timeout -1", {"timeout": -1}, ConfigError, "TIMEOUT"),
    ("model list", {"model": ["a"]}, ConfigError, "model=['a'] is not valid"),
    ("stop", {"stop": 5}, ConfigError, "stop=5 is not valid"),
    ("n", {"n": 0}, ConfigError, "n=0 is not valid"),
    ("seed", {"seed": "x"}, ConfigError, "seed='x' is not valid"),
    ("response_format", {"response_format": "json"}, ConfigError, "response_format='json' is not valid"),
]


@pytest.mark.parametrize(("label", "kwargs", "error", "words"), BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_an_llmkit_error_and_nothing_is_sent_or_cached(
        llm: OpenAITestServer, label: str, kwargs: dict[str, Any], error: type[Exception],
        words: str) -> None:
    args = {"messages": HELLO, **kwargs}
    with pytest.raises(error, match=words.replace("[", r"\[").replace("(", r"\(")):
        OpenAIClient().send_message(**args)
    assert llm.requests == [] and len(open_cache()) == 0


def test_more_bad_input(llm: OpenAITestServer) -> None:
    with pytest.raises(llmkit.TemplateError, match="variable 'x' contains a lone surrogate"):
        LLMCall("s", "{{ x }}").call(x="bad \ud800 text")
    with pytest.raises(InvalidRequestError, match="text 0 holds a lone surrogate"):
        OpenAIClient().get_embedding("bad \udc00")
    with pytest.raises(ConfigError, match="takes a client object"):
        LLMCall("s", "u", client="openai")
    with pytest.raises(ConfigError, match="api_type must be a name"):
        llmkit.force_api_type(5)  # type: ignore[arg-type]
    assert llm.requests == []


# -- disk full after the server answered ---------------------------------------------------------

def test_disk_full_returns_the_paid_answer_with_one_warning(
        llm: OpenAITestServer, monkeypatch: pytest.MonkeyPatch) -> None:
    import diskcache

    def full(*args: Any, **kwargs: Any) -> Any:
        raise OSError(errno.ENOSPC, "No space left on device")

    open_cache()  # opened before the disk fills
    monkeypatch.setattr(diskcache.Disk, "store", full)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        answer = OpenAIClient().send_message(HELLO)
    assert answer["content"] == "echo: hello"
    assert [w.category for w in caught] == [CacheWarning]
    assert "returned anyway" in str(caught[0].message)


def test_settings_read_once_per_call_do_not_hold_secrets_in_repr(llm: OpenAITestServer) -> None:
    prepared = OpenAIClient().prepare(HELLO)
    assert SECRET not in repr(prepared) and SECRET not in json.dumps(prepared.public)
    assert SECRET not in repr(config.resolve())


# -- a saved notebook, both keys set -------------------------------------------------------------

@pytest.mark.slow
def test_an_executed_notebook_with_both_keys_saves_neither(
        openai_server: OpenAITestServer, tmp_path: Path) -> None:
    """Tracebacks, %%llm errors, FailedRow displays and the progress widget's state of a real
    kernel, against a server that echoes whichever key it gets."""
    import nbformat
    from nbclient import NotebookClient

    from tests.helpers import kernel_env

    cells = [
        "%load_ext llmkit",
        "%%llm\nhello",  # OpenAI key echoed in a 401: the %%llm one-line error
        "import llmkit\nazure = llmkit.AzureClient()\n"
        "rows = llmkit.LLMCall('s', 'u', client=azure, model='gpt-4o').map([{}, {}])\nrows",
        "rows[0].error",
        "azure.send_message([{'role': 'user', 'content': 'x'}], model='gpt-4o')",  # a traceback
        "llmkit.OpenAIClient().send_message([{'role': 'user', 'content': 'x'}])",
    ]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    env = kernel_env(openai_server, tmp_path)
    env.update(AZURE_OPENAI_ENDPOINT=openai_server.url, AZURE_OPENAI_KEY=AZURE_SECRET)
    openai_server.echo_key(401, times=20)
    NotebookClient(nb, timeout=60, kernel_name="python3", allow_errors=True,
                   store_widget_state=True).execute(env=env, cwd=str(tmp_path))
    saved = nbformat.writes(nb)
    assert len(openai_server.requests) >= 5  # every call really reached the echoing server
    sent = {r.headers.get("authorization", "") + r.headers.get("api-key", "")
            for r in openai_server.requests}
    assert any(SECRET in s for s in sent) and any(AZURE_SECRET in s for s in sent)
    assert SECRET not in saved and AZURE_SECRET not in saved
    assert saved.count("<hidden>") >= 4  # the errors were shown, scrubbed
