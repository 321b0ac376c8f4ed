"""Tests of the OpenAI-compatible test server, through the official ``openai`` client."""

from __future__ import annotations

import asyncio
import http.client
import json
import math
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.helpers import cosine
from tests.openai_server import OpenAITestServer, embed

USER = [{"role": "user", "content": "hello there"}]


@pytest.fixture
def client(openai_server: OpenAITestServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=openai_server.base_url, api_key="test", max_retries=0) as c:
        yield c


@pytest.fixture
def azure(openai_server: OpenAITestServer) -> Iterator[openai.AzureOpenAI]:
    with openai.AzureOpenAI(
        azure_endpoint=openai_server.url, api_version="2024-10-21", api_key="k", max_retries=0
    ) as c:
        yield c


def chat(client: openai.OpenAI, **kwargs: Any) -> Any:
    return client.chat.completions.create(**{"model": "gpt-4o-mini", "messages": USER, **kwargs})


# -- default behaviour ------------------------------------------------------------


def test_chat_echo(client: openai.OpenAI) -> None:
    r = chat(client)
    assert r.object == "chat.completion"
    assert r.model == "gpt-4o-mini"
    assert r.choices[0].message.content == "echo: hello there"
    assert r.choices[0].message.role == "assistant"
    assert r.choices[0].finish_reason == "stop"
    assert r.usage is not None
    assert r.usage.prompt_tokens == 2 + 4
    assert r.usage.completion_tokens == 3
    assert r.usage.total_tokens == 9


def test_chat_last_user_message_with_parts_and_n(client: openai.OpenAI) -> None:
    messages: Any = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": [{"type": "text", "text": "second"}, {"type": "text", "text": "part"}]},
    ]
    r = chat(client, messages=messages, n=2)
    assert [c.index for c in r.choices] == [0, 1]
    assert {c.message.content for c in r.choices} == {"echo: second part"}


@pytest.mark.parametrize("param", ["max_tokens", "max_completion_tokens"])
def test_chat_max_tokens_truncates(client: openai.OpenAI, param: str) -> None:
    r = chat(client, messages=[{"role": "user", "content": "one two three four"}], **{param: 3})
    assert r.choices[0].message.content == "echo: one two"
    assert r.choices[0].finish_reason == "length"
    assert chat(client, **{param: 10}).choices[0].finish_reason == "stop"


def test_chat_stream_with_usage(client: openai.OpenAI) -> None:
    chunks = list(chat(client, stream=True, stream_options={"include_usage": True}))
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo: hello there"
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 9


def test_chat_stream_without_usage(client: openai.OpenAI) -> None:
    chunks = list(chat(client, stream=True))
    assert all(c.choices and c.usage is None for c in chunks)


def test_embeddings_similarity(client: openai.OpenAI) -> None:
    texts = ["the cat sat on the mat", "a cat sat on a mat", "stock markets fell sharply today"]
    r = client.embeddings.create(model="text-embedding-3-small", input=texts)
    assert [d.index for d in r.data] == [0, 1, 2]
    assert all(d.object == "embedding" for d in r.data)
    a, b, c = (d.embedding for d in r.data)
    assert len(a) == 64
    assert all(math.isclose(math.fsum(x * x for x in v), 1.0, rel_tol=1e-5) for v in (a, b, c))  # unit
    assert cosine(a, b) > cosine(a, c)
    assert r.usage.prompt_tokens == 6 + 6 + 5


def test_embeddings_float_format_and_dimensions(client: openai.OpenAI) -> None:
    # The client asks for base64 unless told otherwise; both formats must agree.
    r = client.embeddings.create(model="m", input="hello world", encoding_format="float", dimensions=16)
    assert r.data[0].embedding == pytest.approx(embed("hello world", 16))
    default = client.embeddings.create(model="m", input="hello world", dimensions=16)
    assert default.data[0].embedding == pytest.approx(embed("hello world", 16), abs=1e-6)


def test_models(client: openai.OpenAI) -> None:
    assert "gpt-4o-mini" in [m.id for m in client.models.list()]


def test_azure_paths(openai_server: OpenAITestServer, azure: openai.AzureOpenAI) -> None:
    r = azure.chat.completions.create(model="my-deployment", messages=USER)  # type: ignore[arg-type]
    assert r.model == "my-deployment"
    assert r.choices[0].message.content == "echo: hello there"
    e = azure.embeddings.create(model="emb-deployment", input=["a b", "c"])
    assert e.model == "emb-deployment" and len(e.data) == 2
    chat_rec, emb_rec = openai_server.requests
    assert chat_rec.path == "/openai/deployments/my-deployment/chat/completions"
    assert chat_rec.query == {"api-version": "2024-10-21"}
    assert chat_rec.headers["api-key"] == "k"
    assert emb_rec.path == "/openai/deployments/emb-deployment/embeddings"


def test_azure_missing_api_version(openai_server: OpenAITestServer) -> None:
    base = openai_server.url + "/openai/deployments/dep"
    with openai.OpenAI(base_url=base, api_key="k", max_retries=0) as c:
        with pytest.raises(openai.BadRequestError) as info:
            chat(c)
    assert "api-version" in info.value.message


def test_unknown_path_and_bad_json(openai_server: OpenAITestServer, client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        client.post("/nope", cast_to=object, body={})
    with pytest.raises(openai.BadRequestError):
        client.post(
            "/chat/completions",
            cast_to=object,
            content=b"{not json",
            options={"headers": {"Content-Type": "application/json"}},
        )


def test_async_client(openai_server: OpenAITestServer) -> None:
    async def main() -> str | None:
        async with openai.AsyncOpenAI(base_url=openai_server.base_url, api_key="t", max_retries=0) as c:
            r = await c.chat.completions.create(model="m", messages=USER)  # type: ignore[arg-type]
            return r.choices[0].message.content

    assert asyncio.run(main()) == "echo: hello there"


# -- scripting --------------------------------------------------------------------


def test_reply_queue_is_fifo_and_chat_only(openai_server: OpenAITestServer, client: openai.OpenAI) -> None:
    usage = {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}
    openai_server.fail(500)
    openai_server.reply("scripted", usage=usage, finish_reason="length", times=2)
    with pytest.raises(openai.InternalServerError):
        chat(client)
    client.embeddings.create(model="m", input="x")  # does not consume a reply
    first = chat(client)
    assert first.choices[0].message.content == "scripted"
    assert first.choices[0].finish_reason == "length"
    assert first.usage is not None and first.usage.total_tokens == 3
    streamed = "".join(c.choices[0].delta.content or "" for c in chat(client, stream=True))
    assert streamed == "scripted"
    assert chat(client).choices[0].message.content == "echo: hello there"


@pytest.mark.parametrize(
    ("status", "code", "exc"),
    [
        (400, "context_length_exceeded", openai.BadRequestError),
        (401, "invalid_api_key", openai.AuthenticationError),
        (403, None, openai.PermissionDeniedError),
        (404, "model_not_found", openai.NotFoundError),
        (422, None, openai.UnprocessableEntityError),
        (429, "rate_limit_exceeded", openai.RateLimitError),
        (429, "insufficient_quota", openai.RateLimitError),
        (500, None, openai.InternalServerError),
        (503, None, openai.InternalServerError),
    ],
)
def test_fail(
    openai_server: OpenAITestServer,
    client: openai.OpenAI,
    status: int,
    code: str | None,
    exc: type[openai.APIStatusError],
) -> None:
    openai_server.fail(status, code=code, message="boom")
    with pytest.raises(exc) as info:
        chat(client)
    err = info.value
    assert err.status_code == status
    assert err.code == code
    assert err.body == {"message": "boom", "type": err.type, "param": None, "code": code}
    default_type = (
        "server_error" if status >= 500 else "requests" if status == 429 else "invalid_request_error"
    )
    assert err.type == ("insufficient_quota" if code == "insufficient_quota" else default_type)
    assert chat(client).choices[0].finish_reason == "stop"  # consumed


def test_fail_headers(openai_server: OpenAITestServer, client: openai.OpenAI) -> None:
    openai_server.fail(
        429,
        code="rate_limit_exceeded",
        type="requests",
        retry_after=2,
        retry_after_ms=1500,
        headers={"x-request-id": "req_1"},
    )
    with pytest.raises(openai.RateLimitError) as info:
        chat(client)
    headers = info.value.response.headers
    assert headers["retry-after"] == "2"
    assert headers["retry-after-ms"] == "1500"
    assert info.value.request_id == "req_1"
    assert info.value.type == "requests"


def test_fail_path_filter_and_times(openai_server: OpenAITestServer, client: openai.OpenAI) -> None:
    openai_server.fail(503, path_contains="embeddings", times=2)
    chat(client)
    for _ in range(2):
        with pytest.raises(openai.InternalServerError):
            client.embeddings.create(model="m", input="x")
    client.embeddings.create(model="m", input="x")


def test_retry_after_ms_is_honoured_by_client_retries(openai_server: OpenAITestServer) -> None:
    openai_server.fail(429, code="rate_limit_exceeded", retry_after_ms=10, times=2)
    with openai.OpenAI(base_url=openai_server.base_url, api_key="t", max_retries=2) as c:
        start = time.perf_counter()
        assert chat(c).choices[0].finish_reason == "stop"
    assert time.perf_counter() - start < 0.5
    assert [r.headers["x-stainless-retry-count"] for r in openai_server.requests] == ["0", "1", "2"]


def test_drop(openai_server: OpenAITestServer, client: openai.OpenAI) -> None:
    openai_server.drop()
    with pytest.raises(openai.APIConnectionError) as info:
        chat(client)
    assert not isinstance(info.value, openai.APITimeoutError)
    assert chat(client).choices[0].finish_reason == "stop"


def test_delay_times_out_client(openai_server: OpenAITestServer, client: openai.OpenAI) -> None:
    openai_server.delay(0.3)
    with pytest.raises(openai.APITimeoutError):
        chat(client, timeout=0.05)
    openai_server.delay(0.05)
    start = time.perf_counter()
    assert chat(client, timeout=5).choices[0].finish_reason == "stop"
    assert time.perf_counter() - start >= 0.05


def test_malformed_json_is_not_an_openai_error(
    openai_server: OpenAITestServer, client: openai.OpenAI
) -> None:
    # openai 3.x lets json.JSONDecodeError escape when a 200 application/json body is broken.
    openai_server.malformed()
    with pytest.raises(json.JSONDecodeError):
        chat(client)
    openai_server.malformed()
    raw = client.chat.completions.with_raw_response.create(model="m", messages=USER)  # type: ignore[arg-type]
    assert raw.status_code == 200
    assert raw.headers["content-type"] == "application/json"
    with pytest.raises(ValueError):
        raw.parse()


# -- knobs and recording ----------------------------------------------------------


def test_recording_and_reset(openai_server: OpenAITestServer, client: openai.OpenAI) -> None:
    chat(client, temperature=0)
    (rec,) = openai_server.requests
    assert (rec.method, rec.path, rec.query) == ("POST", "/v1/chat/completions", {})
    assert rec.headers["authorization"] == "Bearer test"
    assert rec.headers["content-type"] == "application/json"
    assert rec.body == {"model": "gpt-4o-mini", "messages": USER, "temperature": 0}
    assert rec.time <= time.time()
    client.models.list()
    assert openai_server.requests[-1].method == "GET" and openai_server.requests[-1].body is None
    openai_server.fail(500)
    openai_server.reset()
    assert openai_server.requests == [] and openai_server.peak_concurrency == 0
    chat(client)  # the queued failure is gone


def test_required_api_key(
    openai_server: OpenAITestServer, client: openai.OpenAI, azure: openai.AzureOpenAI
) -> None:
    openai_server.required_api_key = "k"
    with pytest.raises(openai.AuthenticationError) as info:
        chat(client)
    assert info.value.code == "invalid_api_key"
    assert azure.chat.completions.create(model="d", messages=USER).model == "d"  # type: ignore[arg-type]
    openai_server.required_api_key = "test"
    chat(client)


def test_rate_limit(openai_server: OpenAITestServer, client: openai.OpenAI) -> None:
    openai_server.rate_limit_rps = 2
    outcomes = []
    for _ in range(5):
        try:
            chat(client)
            outcomes.append("ok")
        except openai.RateLimitError as err:
            assert err.code == "rate_limit_exceeded"
            assert err.response.headers["retry-after"] == "1"
            assert 0 < int(err.response.headers["retry-after-ms"]) <= 1000
            outcomes.append("429")
    assert outcomes == ["ok", "ok", "429", "429", "429"]
    assert openai_server.rejected == 3
    assert len(openai_server.requests) == 5


def test_latency_and_peak_concurrency(openai_server: OpenAITestServer, client: openai.OpenAI) -> None:
    openai_server.latency = 0.2
    results: list[str | None] = []
    threads = [
        threading.Thread(target=lambda: results.append(chat(client).choices[0].message.content))
        for _ in range(5)
    ]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    assert results == ["echo: hello there"] * 5
    assert openai_server.peak_concurrency == 5
    assert 0.2 <= elapsed < 0.6


def test_keep_alive_is_fast(client: openai.OpenAI) -> None:
    chat(client)
    start = time.perf_counter()
    for _ in range(10):
        chat(client)
    assert (time.perf_counter() - start) / 10 < 0.03  # no 40 ms Nagle / delayed-ACK stall


def test_stop_wakes_sleeping_handlers() -> None:
    server = OpenAITestServer().start()
    server.delay(30)
    with openai.OpenAI(base_url=server.base_url, api_key="t", max_retries=0) as c:
        t = threading.Thread(target=lambda: chat(c, timeout=10))
        t.start()
        while not server.requests:
            time.sleep(0.01)
        start = time.perf_counter()
        server.stop()
        t.join(5)
    assert time.perf_counter() - start < 2 and not t.is_alive()


def test_script_mode() -> None:
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.openai_server", "--latency", "0.01"],
        cwd=root,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("OPENAI_BASE_URL=http://127.0.0.1:") and line.endswith("/v1")
        with openai.OpenAI(base_url=line.split("=", 1)[1], api_key="t", max_retries=0) as c:
            assert chat(c).choices[0].message.content == "echo: hello there"
    finally:
        proc.terminate()
        proc.wait(5)
        if proc.stdout is not None:
            proc.stdout.close()


# -- fault injection on the wire --------------------------------------------------------


@contextmanager
def post(
    server: OpenAITestServer, body: Any, headers: dict[str, str] | None = None
) -> Iterator[http.client.HTTPResponse]:
    """POST ``body`` to the chat endpoint with plain ``http.client``; yield the response."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        conn.request(
            "POST",
            "/v1/chat/completions",
            json.dumps(body),
            {"Content-Type": "application/json", **(headers or {})},
        )
        yield conn.getresponse()
    finally:
        conn.close()


def raw_post(server: OpenAITestServer, body: Any, *, max_reads: int = 100_000) -> tuple[bytes, int]:
    """POST over a bare socket and read until the server closes; return (bytes, number of reads)."""
    data = json.dumps(body).encode()
    request = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(data), data)
    )
    received, reads = [], 0
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(request)
        while reads < max_reads and (chunk := sock.recv(65536)):
            received.append(chunk)
            reads += 1
    return b"".join(received), reads


def split_response(raw: bytes) -> tuple[str, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status, *lines = head.decode().split("\r\n")
    return status, {k.strip().lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines)}, body


def sse_events(body: bytes) -> list[str]:
    return [e[len("data: ") :] for e in body.decode().split("\n\n") if e]


STREAM = {"model": "m", "messages": USER, "stream": True}
PLAIN = {"model": "m", "messages": USER}


def test_cut_stream_close_framing_ends_cleanly_without_done(
    openai_server: OpenAITestServer, client: openai.OpenAI
) -> None:
    openai_server.cut_stream(after=2, framing="close")
    raw, _ = raw_post(openai_server, STREAM)
    status, headers, body = split_response(raw)
    assert status == "HTTP/1.1 200 OK" and headers["content-type"] == "text/event-stream"
    assert headers["connection"] == "close"
    assert "content-length" not in headers and "transfer-encoding" not in headers
    events = sse_events(body)
    assert body.endswith(b"\n\n") and b"[DONE]" not in body
    chunks = [json.loads(e) for e in events]
    assert [c["choices"][0]["delta"].get("content") for c in chunks] == ["", "echo: ", "hello "]
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks)
    # The SDK sees a clean EOF: the stream just stops, with no finish_reason anywhere.
    openai_server.cut_stream(after=1, framing="close")
    got = list(chat(client, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in got) == "echo: "
    assert all(c.choices[0].finish_reason is None for c in got)
    assert chat(client).choices[0].message.content == "echo: hello there"  # consumed; server fine


def test_cut_stream_chunked_framing_is_an_incomplete_read(
    openai_server: OpenAITestServer, client: openai.OpenAI
) -> None:
    openai_server.cut_stream(framing="chunked", times=2)
    with post(openai_server, STREAM) as resp:
        assert resp.status == 200 and resp.getheader("Transfer-Encoding") == "chunked"
        with pytest.raises(http.client.IncompleteRead) as info:
            resp.read()
    partial = info.value.partial
    assert b'"echo: "' in partial and b'"hello "' in partial
    assert b"[DONE]" not in partial and b'"finish_reason": "stop"' not in partial
    with pytest.raises(openai.APIConnectionError):
        list(chat(client, stream=True))
    again = list(chat(client, stream=True))  # queue used up: a whole stream again
    assert again[-1].choices[0].finish_reason == "stop"


def test_cut_stream_on_a_plain_answer(openai_server: OpenAITestServer, client: openai.OpenAI) -> None:
    openai_server.cut_stream(framing="close")
    with post(openai_server, PLAIN) as resp:
        assert resp.getheader("Content-Length") is None and resp.getheader("Connection") == "close"
        body = resp.read()  # ends at a clean EOF
    assert body.startswith(b'{"id": "chatcmpl-')
    with pytest.raises(ValueError):
        json.loads(body)
    openai_server.cut_stream(framing="chunked")
    with post(openai_server, PLAIN) as resp, pytest.raises(http.client.IncompleteRead):
        resp.read()
    openai_server.cut_stream(framing="close")
    with pytest.raises(json.JSONDecodeError):
        chat(client)
    openai_server.cut_stream(framing="chunked")
    with pytest.raises(openai.APIConnectionError):
        chat(client)
    with pytest.raises(ValueError, match="framing"):
        openai_server.cut_stream(framing="gzip")


def test_trickle_sends_one_byte_per_chunk_and_a_whole_answer_when_in_time(
    openai_server: OpenAITestServer, client: openai.OpenAI
) -> None:
    openai_server.trickle(interval=0.001, seconds=30)
    r = chat(client)
    assert r.choices[0].message.content == "echo: hello there" and r.choices[0].finish_reason == "stop"
    openai_server.trickle(interval=0.0, seconds=30)
    streamed = list(chat(client, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == "echo: hello there"
    openai_server.trickle(interval=0.0)
    with post(openai_server, PLAIN) as resp:
        assert resp.getheader("Content-Type") == "application/json"
        assert resp.getheader("Transfer-Encoding") == "chunked"
        assert json.loads(resp.read())["choices"][0]["message"]["content"] == "echo: hello there"


def test_trickle_stops_at_its_time_limit(openai_server: OpenAITestServer) -> None:
    openai_server.trickle(interval=0.01, seconds=0.3)
    raw, reads = raw_post(openai_server, PLAIN)
    status, headers, body = split_response(raw)
    assert status == "HTTP/1.1 200 OK" and headers["transfer-encoding"] == "chunked"
    assert "content-length" not in headers
    sizes = body.split(b"\r\n")[0::2]
    assert sizes and set(sizes[:-1]) == {b"1"}  # one byte per chunk ...
    assert not body.endswith(b"0\r\n\r\n")  # ... and no final chunk: cut at the limit
    assert reads >= 5  # the bytes came spread over many reads, not at once


def test_trickle_ends_when_the_client_hangs_up(openai_server: OpenAITestServer) -> None:
    openai_server.trickle(interval=0.05, seconds=30)  # the whole body would take ~17 s
    raw_post(openai_server, PLAIN, max_reads=3)
    deadline = time.monotonic() + 2
    while openai_server._in_flight and time.monotonic() < deadline:
        time.sleep(0.01)
    assert openai_server._in_flight == 0


def test_stop_cuts_a_trickle_short() -> None:
    server = OpenAITestServer().start()
    server.trickle(interval=5, seconds=60)
    reader = threading.Thread(target=raw_post, args=(server, PLAIN))
    reader.start()
    while not server.requests:
        time.sleep(0.01)
    start = time.perf_counter()
    server.stop()
    reader.join(5)
    assert time.perf_counter() - start < 2 and not reader.is_alive()


@pytest.mark.parametrize("fault", ["null_message", "no_message"])
def test_null_and_missing_message(openai_server: OpenAITestServer, client: openai.OpenAI, fault: str) -> None:
    client.embeddings.create(model="m", input="x")  # chat requests only
    getattr(openai_server, fault)(times=2)
    with post(openai_server, PLAIN) as resp:
        assert resp.status == 200
        choice = json.loads(resp.read())["choices"][0]
    assert choice["finish_reason"] == "stop"
    if fault == "null_message":
        assert choice["message"] is None
    else:
        assert "message" not in choice
    assert chat(client).choices[0].message is None  # what the SDK makes of it
    getattr(openai_server, fault)()
    with post(openai_server, STREAM) as resp:
        events = sse_events(resp.read())
    assert events[-1] == "[DONE]"
    for event in map(json.loads, events[:-1]):
        assert event["choices"][0].get("delta", "absent") == (None if fault == "null_message" else "absent")


def test_body_sends_any_raw_body(openai_server: OpenAITestServer, client: openai.OpenAI) -> None:
    page = "<html><body>Gateway says hi</body></html>"
    openai_server.body(200, page)
    with post(openai_server, PLAIN) as resp:
        assert (resp.status, resp.getheader("Content-Type")) == (200, "text/html")
        assert resp.read() == page.encode()
    openai_server.body(200, "[1, 2]", "application/json")
    assert chat(client) == [1, 2]  # the SDK hands back whatever JSON it got
    openai_server.body(502, b"\xff\x00bad", "application/octet-stream", path_contains="models")
    chat(client)  # not consumed by the chat path
    with pytest.raises(openai.InternalServerError) as info:
        client.models.list()
    assert info.value.status_code == 502 and info.value.response.content == b"\xff\x00bad"


def test_echo_key_quotes_the_credential(
    openai_server: OpenAITestServer, client: openai.OpenAI, azure: openai.AzureOpenAI
) -> None:
    openai_server.echo_key(times=2)
    with pytest.raises(openai.AuthenticationError) as info:
        chat(client)
    assert info.value.code == "invalid_api_key"
    assert info.value.message == "Error code: 401 - Incorrect API key provided: test."
    with pytest.raises(openai.AuthenticationError) as info:
        azure.chat.completions.create(model="d", messages=USER)  # type: ignore[arg-type]
    assert "Incorrect API key provided: k." in info.value.message
    openai_server.echo_key(403)
    with post(openai_server, PLAIN, {"Authorization": "Bearer sk-SECRET", "api-key": "az-SECRET"}) as r:
        assert r.status == 403
        message = json.loads(r.read())["error"]["message"]
    assert "sk-SECRET" in message and "az-SECRET" in message


def test_reply_sends_any_usage_model_and_finish_reason(
    openai_server: OpenAITestServer, client: openai.OpenAI
) -> None:
    attack = "gpt\n\n<img src=x onerror=alert(1)>"
    openai_server.reply("ok", usage={"prompt_tokens": "many"}, model=attack, finish_reason=attack)
    with post(openai_server, PLAIN) as resp:
        answer = json.loads(resp.read())
    assert answer["usage"] == {"prompt_tokens": "many"}
    assert answer["model"] == attack and answer["choices"][0]["finish_reason"] == attack
    openai_server.reply("ok", usage=[1, "x"], model=attack)
    stream = {**STREAM, "stream_options": {"include_usage": True}}
    with post(openai_server, stream) as resp:
        chunks = [json.loads(e) for e in sse_events(resp.read())[:-1]]
    assert {c["model"] for c in chunks} == {attack} and chunks[-1]["usage"] == [1, "x"]
    assert chat(client).model == "gpt-4o-mini"  # without model=: the model asked for


@pytest.mark.parametrize(
    ("kwargs", "header", "value"),
    [
        ({"retry_after": "inf"}, "Retry-After", "inf"),
        ({"retry_after_ms": "1e400"}, "retry-after-ms", "1e400"),
        ({"retry_after": 3600}, "Retry-After", "3600"),
        ({"retry_after": 2.5}, "Retry-After", "2.5"),
    ],
)
def test_fail_sends_retry_after_verbatim(
    openai_server: OpenAITestServer, kwargs: dict[str, Any], header: str, value: str
) -> None:
    openai_server.fail(429, code="rate_limit_exceeded", **kwargs)
    with post(openai_server, PLAIN) as resp:
        assert resp.status == 429 and resp.getheader(header) == value
        resp.read()


def test_surrogate_text_is_escaped_in_json(openai_server: OpenAITestServer, client: openai.OpenAI) -> None:
    openai_server.surrogate_text(times=2)
    for body in (PLAIN, STREAM):
        with post(openai_server, body) as resp:
            data = resp.read()
        assert b"\\ud800" in data  # the 6 characters \ud800 in the JSON text
        data.decode("ascii")  # escaped: no raw surrogate bytes
    openai_server.surrogate_text()
    assert "\ud800" in (chat(client).choices[0].message.content or "")
    openai_server.surrogate_text("x \udfff")
    streamed = "".join(c.choices[0].delta.content or "" for c in chat(client, stream=True))
    assert streamed == "x \udfff"


def test_required_api_key_answered_as_litellm_does(openai_server: OpenAITestServer,
                                                   client: openai.OpenAI) -> None:
    openai_server.required_api_key, openai_server.key_error = "master", "litellm"
    with pytest.raises(openai.BadRequestError) as info:
        chat(client)
    assert info.value.status_code == 400 and info.value.body == {
        "message": "No connected db.", "type": "no_db_connection", "param": None, "code": "400"}


def test_hang_notices_a_client_that_hangs_up(openai_server: OpenAITestServer) -> None:
    openai_server.hang(60)
    body = json.dumps({"model": "m", "messages": USER}).encode()
    with socket.create_connection(("127.0.0.1", openai_server.port)) as raw:
        raw.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        while not openai_server.requests:  # the request is in the handler before we hang up
            raw.settimeout(0.01)
            with pytest.raises(TimeoutError):
                raw.recv(1)
    assert openai_server.abandoned_event.wait(10) and openai_server.abandoned == 1
    openai_server.hang(0.05)  # a client that waits gets its answer
    assert chat(openai.OpenAI(base_url=openai_server.base_url, api_key="t", max_retries=0)).choices


def test_simulator_stream_reads_with_the_sdk(openai_server: OpenAITestServer, client: openai.OpenAI) -> None:
    openai_server.simulator_stream("Lorem ipsum dolor", finish_reason="stop")
    chunks = list(chat(client, stream=True, stream_options={"include_usage": True}))
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "Lorem ipsum dolor"
    assert [getattr(c.choices[0].delta, "finish_reason", None) for c in chunks][-1] == "stop"
    assert all(c.choices[0].finish_reason is None and c.usage is None for c in chunks)
