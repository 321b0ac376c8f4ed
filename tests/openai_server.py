"""OpenAI-compatible HTTP test server with scripted fault injection.

Stdlib only. Serves ``/v1/chat/completions`` (JSON and SSE streaming), ``/v1/responses`` (JSON and SSE: text,
function calls, reasoning items with summaries, incomplete, failed, error events),
``/v1/embeddings``, ``/v1/models``, the Azure classic ``/openai/deployments/<name>/...``
equivalents (``api-version`` required) and Azure's v1 API ``/openai/v1/...`` on 127.0.0.1.

Scripted behaviours (each consumed once per matching request, FIFO, with
``times=`` and ``path_contains=``): ``reply``, ``reply_tool_calls``,
``surrogate_text``, ``null_message``, ``no_message`` and ``simulator_stream`` shape chat
answers (only chat requests consume them); ``fail``, ``delay``, ``hang``, ``drop``, ``malformed``,
``body``, ``echo_key``, ``cut_stream`` and ``trickle`` apply to any path; ``usage_fault`` to chat
answers and embeddings. ``require_key`` makes the server check keys as a compatible gateway does
(401, or LiteLLM's 400).

Run ``python -m tests.openai_server`` to serve until killed; it prints
``OPENAI_BASE_URL=...`` on its first line.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import math
import re
import select
import socket
import struct
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

EMBEDDING_DIMS = 64
MODELS = ("gpt-4o-mini", "gpt-4o", "text-embedding-3-small")
_AZURE_PATH = re.compile(r"^/openai/deployments/([^/]+)/(chat/completions|embeddings)$")
_AZURE_V1_PATH = re.compile(r"^/openai(/v1/(?:chat/completions|responses|embeddings|models))$")


@dataclass
class RecordedRequest:
    """One request as the server received it."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: Any  # parsed JSON, or None
    time: float


_CHAT_KINDS = frozenset({"reply", "tool_calls", "null_message", "no_message", "simulator_stream",
                         "response_failed", "error_event", "cite"})
_RESPONSES_ONLY = frozenset({"response_failed", "error_event", "cite"})
CITATIONS = [{"url": "https://example.com/paris", "title": "Paris <facts> & figures"},
             {"url": "http://example.org/france", "title": "France"}]
"""The ``url_citation`` annotations of an answer with a ``web_search`` tool (unless ``cite``)."""


@dataclass
class _Action:
    kind: str  # "reply" | "fail" | "delay" | "drop" | "malformed" | "body" | "echo_key" | ...
    times: int
    path_contains: str | None
    params: dict[str, Any] = field(default_factory=dict)

    def matches(self, path: str) -> bool:
        answers = path.endswith("/responses") or (
            path.endswith("chat/completions") and self.kind not in _RESPONSES_ONLY)
        if self.kind in _CHAT_KINDS and not answers:
            return False
        return self.path_contains is None or self.path_contains in path


def _words(text: str) -> list[str]:
    return text.split()


def _text_of(content: Any) -> str:
    """Text of a message ``content``: a string or a list of ``{"type": "text"}`` parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content
                        if isinstance(p, dict) and p.get("type") in ("text", "input_text"))
    return ""


def embed(text: str, dims: int = EMBEDDING_DIMS) -> list[float]:
    """Deterministic signed hashed bag-of-words embedding, L2-normalised."""
    vec = [0.0] * dims
    for word in re.findall(r"\w+", text.lower()):
        digest = hashlib.md5(word.encode()).digest()
        index = int.from_bytes(digest[:4], "little") % dims
        vec[index] += 1.0 if digest[4] & 1 else -1.0
    norm = math.sqrt(sum(v * v for v in vec)) or 1.0
    return [v / norm for v in vec]


def error_body(
    status: int,
    message: str | None = None,
    type: str | None = None,
    code: str | None = None,
    param: str | None = None,
) -> dict[str, Any]:
    """OpenAI-shaped error body."""
    if type is None:
        type = "server_error" if status >= 500 else "requests" if status == 429 else "invalid_request_error"
        type = "insufficient_quota" if code == "insufficient_quota" else type
    return {
        "error": {
            "message": message or f"Simulated error {status}",
            "type": type,
            "param": param,
            "code": code,
        }
    }


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: OpenAITestServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Ignore clients that hang up (timeouts, drops); report anything else."""
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


@dataclass
class _Delivery:
    """How the answer to one request goes on the wire when it is not sent normally."""

    kind: str  # "cut_stream" | "trickle"
    params: dict[str, Any]
    wake: threading.Event  # set by reset()/stop(): a trickle ends at once


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def _is_content_chunk(event: Any) -> bool:
    if isinstance(event, dict) and "type" in event:  # a Responses event
        return event["type"] == "response.output_text.delta"
    choices = event.get("choices") if isinstance(event, dict) else None
    return bool(choices) and bool(((choices[0] or {}).get("delta") or {}).get("content"))


def _is_final_event(event: Any) -> bool:
    """A chunk that finishes a choice, or the usage-only chunk: never sent by a cut stream."""
    if isinstance(event, dict) and "type" in event:  # a Responses event
        return event["type"] in ("response.completed", "response.incomplete", "response.failed")
    choices = event.get("choices") if isinstance(event, dict) else None
    return not choices or any(isinstance(c, dict) and c.get("finish_reason") is not None for c in choices)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _Server
    delivery: _Delivery | None = None  # set per request by the owner

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.server.owner._handle(self)

    def do_POST(self) -> None:
        self.server.owner._handle(self)

    def send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        self.send_raw(status, json.dumps(payload).encode(), "application/json", headers)

    def send_raw(
        self, status: int, data: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        delivery = self.delivery
        if delivery is not None and delivery.kind == "cut_stream":
            return self._send_cut(status, content_type, headers, [data[: len(data) // 2]])
        if delivery is not None and delivery.kind == "trickle":
            return self._send_trickle(status, content_type, headers, data, delivery)
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def send_sse(self, events: list[Any]) -> None:
        """Send ``data:`` events with chunked transfer encoding, then ``[DONE]``."""
        sse = {"Cache-Control": "no-cache"}
        delivery = self.delivery
        if delivery is not None and delivery.kind == "cut_stream":
            after, sent, parts = int(delivery.params["after"]), 0, []
            for event in events:
                if sent >= after or _is_final_event(event):
                    break
                parts.append(f"data: {json.dumps(event)}\n\n".encode())
                sent += _is_content_chunk(event)
            return self._send_cut(200, "text/event-stream", sse, parts)
        parts = [f"data: {event}\n\n".encode() for event in [*map(json.dumps, events), "[DONE]"]]
        if delivery is not None and delivery.kind == "trickle":
            return self._send_trickle(200, "text/event-stream", sse, b"".join(parts), delivery)
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for data in parts:
            self.wfile.write(_chunk(data))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")

    def send_simulator_sse(self, events: list[Any]) -> None:
        """Stream as Microsoft's Azure OpenAI API simulator does: ``data: {...}\\n`` then ``\\n`` per
        event, chunked, ending with a bare ``[DONE]`` (no ``data:``, no newline)."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for event in events:
            self.wfile.write(_chunk(f"data: {json.dumps(event)}\n".encode()))
            self.wfile.write(_chunk(b"\n"))
            self.wfile.flush()
        self.wfile.write(_chunk(b"[DONE]"))
        self.wfile.write(b"0\r\n\r\n")

    def _send_headers(self, status: int, content_type: str, headers: dict[str, str] | None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        for name, value in (headers or {}).items():
            self.send_header(name, value)

    def _send_cut(
        self, status: int, content_type: str, headers: dict[str, str] | None, parts: list[bytes]
    ) -> None:
        """Send ``parts`` and hang up, never completing the body (see ``cut_stream``)."""
        assert self.delivery is not None
        framing = self.delivery.params["framing"]
        self._send_headers(status, content_type, headers)
        if framing == "close":
            self.send_header("Connection", "close")  # no length: the body ends at EOF
        else:
            self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for data in parts:
            if data:
                self.wfile.write(data if framing == "close" else _chunk(data))
                self.wfile.flush()
        self.close_connection = True  # chunked: closed without the final 0-size chunk

    def _send_trickle(
        self,
        status: int,
        content_type: str,
        headers: dict[str, str] | None,
        data: bytes,
        delivery: _Delivery,
    ) -> None:
        """Send ``data`` one byte per chunk every ``interval`` s, for at most ``seconds`` s."""
        interval = max(0.0, float(delivery.params["interval"]))
        deadline = time.monotonic() + max(0.0, float(delivery.params["seconds"]))
        self._send_headers(status, content_type, headers)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for index in range(len(data)):
                if index and interval:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0 or delivery.wake.wait(min(interval, remaining)):
                        break
                    if interval >= remaining:
                        break  # the deadline came before this byte
                elif time.monotonic() >= deadline:
                    break
                self.wfile.write(_chunk(data[index : index + 1]))
                self.wfile.flush()
            else:
                self.wfile.write(b"0\r\n\r\n")
                return
        except OSError:
            pass  # the client hung up
        self.close_connection = True


class OpenAITestServer:
    """OpenAI-compatible server on 127.0.0.1 with a FIFO queue of scripted behaviours.

    Knobs (constructor arguments and attributes): ``latency`` seconds slept before
    every answer; ``rate_limit_rps`` accepted requests per sliding second, beyond
    which requests get 429 ``rate_limit_exceeded``; ``required_api_key`` checked
    against ``Authorization: Bearer`` / ``api-key``, a wrong or missing one answered as
    ``key_error`` says: ``"openai"`` (401 ``invalid_api_key``) or ``"litellm"`` (400
    ``No connected db.``, what LiteLLM's proxy with a master key and no database answers).
    """

    def __init__(
        self,
        port: int = 0,
        *,
        latency: float = 0.0,
        rate_limit_rps: float | None = None,
        required_api_key: str | None = None,
    ) -> None:
        self.port = port
        self.latency = latency
        self.rate_limit_rps = rate_limit_rps
        self.required_api_key = required_api_key
        self.key_error = "openai"
        self.requests: list[RecordedRequest] = []
        self.rejected = 0
        self.peak_concurrency = 0
        self.abandoned = 0  # `hang` requests whose client closed the connection
        self.abandoned_event = threading.Event()  # set when one is
        self._in_flight = 0
        self._queue: list[_Action] = []
        self._window: deque[float] = deque()
        self._ids = 0
        self._stored: dict[str, list[Any]] = {}  # Responses answers served with store: true, by id
        self._call_ids = 0  # numbers the tool calls of `reply_tool_calls` answers: call_1, call_2...
        self._lock = threading.Lock()
        self._generation = 0  # bumped by reset(): older requests stop counting as in flight
        self._wake = threading.Event()  # set to cut short the sleeps of older requests
        self._arrived = threading.Condition(self._lock)  # notified as each request is recorded
        self._hold_from: int | None = None  # requests recorded beyond this many wait for release()
        self._released = threading.Event()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------
    def start(self) -> OpenAITestServer:
        """Bind and serve in a daemon thread (idempotent)."""
        if self._httpd is None:
            self._wake = threading.Event()
            self._httpd = _Server(("127.0.0.1", self.port), _Handler)
            self._httpd.owner = self
            self.port = self._httpd.server_address[1]
            self._thread = threading.Thread(
                target=self._httpd.serve_forever, args=(0.05,), name="openai-test-server", daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, waking any sleeping handlers."""
        if self._httpd is not None:
            self._wake.set()
            self.release()
            self._httpd.shutdown()
            self._httpd.server_close()
            if self._thread is not None:
                self._thread.join()
            self._httpd = self._thread = None

    def __enter__(self) -> OpenAITestServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    def reset(self) -> None:
        """Clear recordings, the scripted queue and counters; knobs are kept.

        Requests still being served are woken from their sleeps and no longer count
        towards ``peak_concurrency``.
        """
        self.release()
        with self._lock:
            self._wake.set()
            self._wake = threading.Event()
            self._generation += 1
            self._in_flight = 0
            self.requests.clear()
            self._queue.clear()
            self._window.clear()
            self.rejected = 0
            self.peak_concurrency = 0
            self.abandoned = 0
            self.abandoned_event = threading.Event()
            self._call_ids = 0
            self._stored.clear()

    # -- waiting for events ----------------------------------------------------
    def hold(self, after: int = 0) -> None:
        """Requests arriving after the next ``after`` ones are recorded, then wait (before any
        ``latency``) until `release` (or `reset`): a test decides when they are answered."""
        with self._lock:
            self._hold_from = len(self.requests) + after
            if self._released.is_set():  # requests still held keep waiting on the same event
                self._released = threading.Event()

    def release(self) -> None:
        """Answer the held requests, and hold no more."""
        with self._lock:
            self._hold_from = None
            self._released.set()

    def wait_for_requests(self, count: int, timeout: float = 60.0) -> bool:
        """Wait until ``count`` requests have been recorded; False if ``timeout`` passed first
        (a safety net for a failing test, not a synchronisation)."""
        with self._arrived:
            return self._arrived.wait_for(lambda: len(self.requests) >= count, timeout)

    # -- scripting -------------------------------------------------------------
    def _push(self, kind: str, times: int, path_contains: str | None, **params: Any) -> None:
        with self._lock:
            self._queue.append(_Action(kind, times, path_contains, params))

    def reply(
        self,
        content: str,
        *,
        usage: Any = None,
        finish_reason: str = "stop",
        model: str | None = None,
        times: int = 1,
        path_contains: str | None = None,
    ) -> None:
        """Next chat completion(s) answer ``content`` (only chat requests consume it).

        ``usage`` is sent as given (any JSON, e.g. ``{"prompt_tokens": "many"}``);
        None means counts computed from the request. ``finish_reason`` and ``model``
        (default: the model the request named) are sent verbatim, whatever they contain.
        """
        self._push(
            "reply",
            times,
            path_contains,
            content=content,
            usage=usage,
            finish_reason=finish_reason,
            model=model,
        )

    def reply_tool_calls(
        self,
        calls: list[tuple[str, dict[str, Any] | str]],
        *,
        times: int = 1,
        path_contains: str | None = None,
    ) -> None:
        """Next chat completion(s) ask for tool calls: ``[(name, arguments), ...]``.

        The assistant message has ``content`` null and one ``tool_calls`` entry per pair,
        ``{"id": "call_<n>", "type": "function", "function": {"name", "arguments"}}``, with
        ``finish_reason="tool_calls"``. A dict of arguments is sent as JSON text, a str
        verbatim (so it may be anything, even text that is not JSON). ``<n>`` counts the
        calls this server has answered since the last ``reset()``, from 1. Streams send
        the calls as ``delta.tool_calls`` pieces (name first, then the arguments).
        """
        pairs = [(name, args if isinstance(args, str) else json.dumps(args)) for name, args in calls]
        self._push("tool_calls", times, path_contains, calls=pairs)

    def surrogate_text(
        self, content: str = "lone \ud800 surrogate", *, times: int = 1, path_contains: str | None = None
    ) -> None:
        """Next chat answer(s) hold a lone surrogate, escaped in the JSON text as ``"\\ud800"``.

        Both plain and streamed answers carry it (``json.dumps`` escapes it; the bytes
        on the wire stay ASCII). Only chat requests consume it.
        """
        self.reply(content, times=times, path_contains=path_contains)

    def null_message(self, *, times: int = 1, path_contains: str | None = None) -> None:
        """Next chat answer(s): 200 with ``choices[0].message`` null (streams: ``delta`` null).

        Only chat requests consume it.
        """
        self._push("null_message", times, path_contains)

    def no_message(self, *, times: int = 1, path_contains: str | None = None) -> None:
        """Next chat answer(s): 200 whose choices lack the ``message`` key (streams: ``delta``).

        Only chat requests consume it.
        """
        self._push("no_message", times, path_contains)

    def simulator_stream(
        self, content: str = "Lorem ipsum dolor sit", *, finish_reason: str = "length", times: int = 1
    ) -> None:
        """Next streamed chat answer(s) come as Microsoft's Azure OpenAI API simulator sends them
        (aoai-api-simulator, generator mode): ``index`` and ``finish_reason`` inside ``delta``
        (the choice has neither), ``model_name`` instead of ``model``, null ``role`` /
        ``tool_calls`` after the first chunk, no usage chunk even when asked for, and a bare
        ``[DONE]`` line. A request without ``stream`` gets the simulator's plain answer.
        """
        self._push("simulator_stream", times, None, content=content, finish_reason=finish_reason)

    def body(
        self,
        status: int,
        data: bytes | str,
        content_type: str = "text/html",
        *,
        headers: dict[str, str] | None = None,
        times: int = 1,
        path_contains: str | None = None,
    ) -> None:
        """Next request(s) get ``status`` with the raw body ``data`` (str is sent as UTF-8).

        E.g. an HTML page with 200, or ``"[1, 2]"`` as ``application/json``.
        """
        raw = data.encode() if isinstance(data, str) else bytes(data)
        self._push(
            "body", times, path_contains, status=status, data=raw, content_type=content_type, headers=headers
        )

    def echo_key(self, status: int = 401, *, times: int = 1, path_contains: str | None = None) -> None:
        """Next request(s) get an OpenAI-style error quoting the credential they carried.

        Like OpenAI's ``Incorrect API key provided: X``: X is the ``Authorization:
        Bearer`` token and/or the ``api-key`` header value, verbatim.
        """
        self._push("echo_key", times, path_contains, status=status)

    def cut_stream(
        self, *, after: int = 2, framing: str = "close", times: int = 1, path_contains: str | None = None
    ) -> None:
        """Next answer(s) end early: no ``finish_reason``, no ``data: [DONE]``.

        Streams send the role chunk and ``after`` content chunks; other answers send
        the first half of their body. ``framing="close"``: no Content-Length nor
        Transfer-Encoding, ``Connection: close``, then a clean EOF (the client cannot
        tell from the framing that anything is missing). ``framing="chunked"``: chunked
        encoding, then the connection closes without the final ``0`` chunk.
        """
        if framing not in ("close", "chunked"):
            raise ValueError(f"framing must be 'close' or 'chunked', not {framing!r}")
        self._push("cut_stream", times, path_contains, after=after, framing=framing)

    def trickle(
        self,
        *,
        interval: float = 0.1,
        seconds: float = 5.0,
        times: int = 1,
        path_contains: str | None = None,
    ) -> None:
        """Next answer(s): normal headers, then the body one byte per chunk every ``interval`` s.

        Chunked encoding. After ``seconds`` (or when the client hangs up, or on
        ``reset()``/``stop()``) the connection closes without the final chunk; an
        answer that fits in the time arrives whole and valid.
        """
        self._push("trickle", times, path_contains, interval=interval, seconds=seconds)

    def fail(
        self,
        status: int,
        *,
        code: str | None = None,
        message: str | None = None,
        type: str | None = None,
        headers: dict[str, str] | None = None,
        retry_after: float | str | None = None,
        retry_after_ms: float | str | None = None,
        times: int = 1,
        path_contains: str | None = None,
    ) -> None:
        """Next request(s) get an OpenAI-shaped error with ``status``.

        ``retry_after`` / ``retry_after_ms`` set the ``Retry-After`` / ``retry-after-ms``
        headers: strings verbatim (``"inf"``, ``"1e400"``), numbers as ``2`` not ``2.0``.
        """
        extra = dict(headers or {})
        if retry_after is not None:
            extra["Retry-After"] = _num(retry_after)
        if retry_after_ms is not None:
            extra["retry-after-ms"] = _num(retry_after_ms)
        self._push(
            "fail",
            times,
            path_contains,
            status=status,
            body=error_body(status, message, type, code),
            headers=extra,
        )

    def delay(self, seconds: float, *, times: int = 1, path_contains: str | None = None) -> None:
        """Next request(s) are answered normally after sleeping ``seconds``."""
        self._push("delay", times, path_contains, seconds=seconds)

    def hang(self, seconds: float = 60.0, *, times: int = 1, path_contains: str | None = None) -> None:
        """Next request(s) get no answer for ``seconds`` (then a normal one), like a model still
        generating. A client that gives up and closes the connection is noticed at once, as
        llama.cpp notices it and stops generating: ``abandoned`` counts such requests and
        ``abandoned_event`` is set (cleared by ``reset()``)."""
        self._push("hang", times, path_contains, seconds=seconds)

    def drop(self, *, times: int = 1, path_contains: str | None = None) -> None:
        """Next request(s) see the connection closed without any response."""
        self._push("drop", times, path_contains)

    def usage_fault(self, kind: str, *, times: int = 1, path_contains: str | None = None) -> None:
        """Next chat answer(s) or embeddings carry a bad ``usage``, as some proxies send it:
        ``"missing"`` (no ``usage`` key; streams send no usage chunk), ``"null"`` (``usage``
        null) or ``"negative"`` (every count negative). The answer itself is normal."""
        if kind not in _USAGE_FAULTS:
            raise ValueError(f"kind must be one of {sorted(_USAGE_FAULTS)}, not {kind!r}")
        self._push("usage_fault", times, path_contains, usage=kind)

    def malformed(self, *, times: int = 1, path_contains: str | None = None) -> None:
        """Next request(s) get 200 ``application/json`` whose body is not JSON."""
        self._push("malformed", times, path_contains)

    def _next_action(self, path: str) -> _Action | None:
        for action in self._queue:
            if action.matches(path):
                action.times -= 1
                if action.times <= 0:
                    self._queue.remove(action)
                return action
        return None

    # -- request handling ------------------------------------------------------
    def _handle(self, h: _Handler) -> None:
        h.delivery = None
        split = urlsplit(h.path)
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        headers = {k.lower(): v for k, v in h.headers.items()}
        record = RecordedRequest(
            h.command, split.path, dict(parse_qsl(split.query)), headers, body, time.time()
        )
        with self._lock:
            self.requests.append(record)
            self._arrived.notify_all()
            held = (self._released if self._hold_from is not None
                    and len(self.requests) > self._hold_from else None)
            generation, wake = self._generation, self._wake
            self._in_flight += 1
            self.peak_concurrency = max(self.peak_concurrency, self._in_flight)
            retry_in = self._rate_limited(record.time)
            action = None if retry_in is not None else self._next_action(split.path)
        try:
            if held is not None:
                held.wait()
            if self.latency > 0:
                wake.wait(self.latency)
            self._respond(h, record, raw, retry_in, action, wake)
        finally:
            with self._lock:
                if generation == self._generation:
                    self._in_flight -= 1

    def _respond(
        self,
        h: _Handler,
        record: RecordedRequest,
        raw: bytes,
        retry_in: float | None,
        action: _Action | None,
        wake: threading.Event,
    ) -> None:
        kind = action.kind if action is not None else None
        if not self._authorized(record.headers) and self.key_error == "litellm":
            h.send_json(400, error_body(400, "No connected db.", type="no_db_connection", code="400"))
        elif not self._authorized(record.headers):
            h.send_json(401, error_body(401, "Incorrect API key provided.", code="invalid_api_key"))
        elif retry_in is not None:
            msg = "Rate limit reached for requests (simulated)."
            h.send_json(
                429,
                error_body(429, msg, code="rate_limit_exceeded"),
                {
                    "Retry-After": str(max(1, math.ceil(retry_in))),
                    "retry-after-ms": str(math.ceil(retry_in * 1000)),
                },
            )
        elif raw and record.body is None:
            h.send_json(400, error_body(400, "We could not parse the JSON body of your request."))
        elif action is not None and kind == "fail":
            h.send_json(action.params["status"], action.params["body"], action.params["headers"])
        elif kind == "drop":
            h.close_connection = True
        elif action is not None and kind == "hang" and self._abandoned(h, action.params["seconds"], wake):
            h.close_connection = True
        elif kind == "malformed":
            h.send_raw(200, b'{"id": "broken", "object": <not json', "application/json")
        elif action is not None and kind == "body":
            p = action.params
            h.send_raw(p["status"], p["data"], p["content_type"], p["headers"])
        elif action is not None and kind == "echo_key":
            status = action.params["status"]
            message = f"Incorrect API key provided: {_credential(record.headers)}."
            code = "invalid_api_key" if status == 401 else None
            h.send_json(status, error_body(status, message, code=code))
        else:
            if action is not None and kind == "delay":
                wake.wait(action.params["seconds"])
            if action is not None and kind in ("cut_stream", "trickle"):
                h.delivery = _Delivery(kind, action.params, wake)
            self._route(h, record, action if kind in _CHAT_KINDS or kind == "usage_fault" else None)

    def _abandoned(self, h: _Handler, seconds: float, wake: threading.Event) -> bool:
        """Wait up to ``seconds`` without answering; True (and counted) if the client hung up."""
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0 and not wake.is_set():
            readable, _, _ = select.select([h.connection], [], [], min(0.05, remaining))
            if not readable:
                continue
            try:
                closed = h.connection.recv(1, socket.MSG_PEEK) == b""
            except OSError:
                closed = True
            if closed:
                with self._lock:
                    self.abandoned += 1
                    self.abandoned_event.set()
                return True
            wake.wait(0.05)  # bytes of a next request: not a hang-up
        return False

    def _rate_limited(self, now: float) -> float | None:
        """Seconds until a slot frees up if over the limit, else None (call with the lock held)."""
        if self.rate_limit_rps is None:
            return None
        while self._window and self._window[0] <= now - 1.0:
            self._window.popleft()
        if len(self._window) >= self.rate_limit_rps:
            self.rejected += 1
            return self._window[0] + 1.0 - now
        self._window.append(now)
        return None

    def _authorized(self, headers: dict[str, str]) -> bool:
        key = self.required_api_key
        if key is None:
            return True
        return headers.get("authorization") == f"Bearer {key}" or headers.get("api-key") == key

    def _route(self, h: _Handler, rec: RecordedRequest, action: _Action | None) -> None:
        path, body = rec.path, rec.body
        azure = _AZURE_PATH.match(path)
        if azure:
            if "api-version" not in rec.query:
                return h.send_json(
                    400, error_body(400, "Missing required query parameter: api-version", code="BadRequest")
                )
            path = "/v1/" + azure.group(2)
            if isinstance(body, dict):
                body = {**body, "model": azure.group(1)}
        azure_v1 = _AZURE_V1_PATH.match(path)
        if azure_v1:  # the model names the deployment; there is no api-version
            path = azure_v1.group(1)
        if rec.method == "GET" and path == "/v1/models":
            data = [{"id": m, "object": "model", "created": 1700000000, "owned_by": "system"} for m in MODELS]
            return h.send_json(200, {"object": "list", "data": data})
        if rec.method == "POST" and path in ("/v1/chat/completions", "/v1/embeddings", "/v1/responses"):
            if not isinstance(body, dict):
                return h.send_json(400, error_body(400, "Request body must be a JSON object."))
            if path == "/v1/embeddings":
                return self._embeddings(h, body, action)
            if path == "/v1/responses":
                return self._responses(h, body, action)
            return self._chat(h, body, action)
        return h.send_json(404, error_body(404, f"Unknown path {rec.method} {rec.path}", code="unknown_url"))

    def _new_id(self, prefix: str) -> str:
        with self._lock:
            self._ids += 1
            return f"{prefix}-{self._ids:06d}"

    def _tool_calls(self, pairs: list[tuple[str, str]]) -> list[dict[str, Any]]:
        """The ``tool_calls`` of one scripted answer, each with a new ``call_<n>`` id."""
        calls = []
        for name, arguments in pairs:
            with self._lock:
                self._call_ids += 1
                call_id = f"call_{self._call_ids}"
            function = {"name": name, "arguments": arguments}
            calls.append({"id": call_id, "type": "function", "function": function})
        return calls

    def _chat(self, h: _Handler, body: dict[str, Any], action: _Action | None) -> None:
        messages = body.get("messages") or []
        shape = action.kind if action is not None else None
        model = body.get("model", "")
        tool_calls: list[dict[str, Any]] | None = None
        if action is not None and shape == "tool_calls":
            tool_calls = self._tool_calls(action.params["calls"])
            content, finish, usage = "", "tool_calls", None
        elif action is not None and shape == "reply":
            content, finish, usage = (
                action.params["content"],
                action.params["finish_reason"],
                action.params["usage"],
            )
            if action.params.get("model") is not None:
                model = action.params["model"]
        elif action is not None and shape == "simulator_stream":
            content, finish, usage = action.params["content"], action.params["finish_reason"], None
            if body.get("stream"):
                return h.send_simulator_sse(_simulator_events(content, finish))
        else:
            user = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
            content = "echo: " + (_text_of(user[-1].get("content")) if user else "")
            finish, usage = "stop", None
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        if limit is not None and len(_words(content)) > int(limit):
            content, finish = " ".join(_words(content)[: int(limit)]), "length"
        n = int(body.get("n") or 1)
        if usage is None:
            prompt = sum(len(_words(_text_of(m.get("content")))) + 4 for m in messages if isinstance(m, dict))
            called = " ".join(f"{c['function']['name']} {c['function']['arguments']}"
                              for c in tool_calls or ())
            completion = n * len(_words(content + " " + called))
            usage = {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
            }
        base = {
            "id": self._new_id("chatcmpl"),
            "created": int(time.time()),
            "model": model,
            "system_fingerprint": "fp_test",
        }
        if not body.get("stream"):
            message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None}
            if tool_calls is not None:
                message.update(content=None, tool_calls=tool_calls)
            choices = [
                {
                    "index": i,
                    "message": dict(message),
                    "logprobs": None,
                    "finish_reason": finish,
                }
                for i in range(n)
            ]
            _reshape(choices, shape, "message")
            answer = {**base, "object": "chat.completion", "choices": choices, "usage": usage}
            return h.send_json(200, _with_usage_fault(answer, action))
        chunk = {**base, "object": "chat.completion.chunk"}
        pieces = re.findall(r"\S+\s*|\s+", content)
        events: list[Any] = []
        for i in range(n):
            deltas = [{"role": "assistant", "content": ""}] + [{"content": p} for p in pieces]
            for slot, call in enumerate(tool_calls or []):
                function = call["function"]
                deltas.append(
                    {"tool_calls": [{"index": slot, "id": call["id"], "type": "function",
                                     "function": {"name": function["name"], "arguments": ""}}]}
                )
                rest = {"arguments": function["arguments"]}
                deltas.append({"tool_calls": [{"index": slot, "function": rest}]})
            events += [
                {**chunk, "choices": [{"index": i, "delta": d, "logprobs": None, "finish_reason": None}]}
                for d in deltas
            ]
            events.append(
                {**chunk, "choices": [{"index": i, "delta": {}, "logprobs": None, "finish_reason": finish}]}
            )
        if (body.get("stream_options") or {}).get("include_usage"):
            events.append({**chunk, "choices": [], "usage": usage})
            if action is not None and action.kind == "usage_fault":
                faulty = _with_usage_fault(events.pop(), action)
                events += [faulty] if "usage" in faulty else []
        for event in events:
            _reshape(event["choices"], shape, "delta")
        h.send_sse(events)

    def _responses(self, h: _Handler, body: dict[str, Any], action: _Action | None) -> None:
        """A Responses answer: ``reply`` and ``reply_tool_calls`` shape it as for chat (a
        ``finish_reason="length"`` reply is ``incomplete``); ``response_failed`` and
        ``error_event`` fail it; else it echoes the last user text. A request asking for a
        reasoning summary gets a reasoning item first, its summary ``thought about: <text>``.

        Hosted tools in the request are run here in play: ``web_search`` adds a ``web_search_call``
        (its query the user's text) and `citations` annotations on the text (``cite`` scripts
        others), ``code_interpreter`` a ``code_interpreter_call`` with code and logs. With
        ``store: true`` the answer is remembered by id; a request with ``previous_response_id``
        continues it (an unknown id is a 400 ``previous_response_not_found``) and its echo says
        how many earlier items it carried on: ``echo: <text> (after <n> items)``."""
        kind = action.kind if action is not None else None
        items = body.get("input")
        items = [{"role": "user", "content": items}] if isinstance(items, str) else items or []
        earlier: list[Any] = []
        previous = body.get("previous_response_id")
        if previous is not None:
            with self._lock:
                found = self._stored.get(str(previous))
            if found is None:
                return h.send_json(400, error_body(400, f"Previous response with id '{previous}' not found.",
                                                   "invalid_request_error", "previous_response_not_found",
                                                   "previous_response_id"))
            earlier = found
        user = [i for i in items if isinstance(i, dict) and i.get("role") == "user"]
        content = "echo: " + (_text_of(user[-1].get("content")) if user else "")
        if previous is not None:
            content += f" (after {len(earlier)} items)"
        hosted = {t.get("type") for t in body.get("tools") or () if isinstance(t, dict)}
        status, reason, calls = "completed", None, []
        if action is not None and kind == "reply":
            content = action.params["content"]
            if action.params["finish_reason"] == "length":
                status, reason = "incomplete", "max_output_tokens"
        elif action is not None and kind == "tool_calls":
            calls, content = self._tool_calls(action.params["calls"]), ""
        limit = body.get("max_output_tokens")
        if limit is not None and len(_words(content)) > int(limit):
            content = " ".join(_words(content)[: int(limit)])
            status, reason = "incomplete", "max_output_tokens"
        output: list[dict[str, Any]] = []
        if "web_search" in hosted:
            output.append({"type": "web_search_call", "id": self._new_id("ws"), "status": "completed",
                           "action": {"type": "search", "query": _text_of(user[-1].get("content"))
                                      if user else ""}})
        if "code_interpreter" in hosted:
            output.append({"type": "code_interpreter_call", "id": self._new_id("ci"), "status": "completed",
                           "container_id": "cntr_1", "code": "print(6 * 7)",
                           "outputs": [{"type": "logs", "logs": "42\n"}]})
        annotations: list[Any] = []
        if "web_search" in hosted:
            cited = action.params["citations"] if kind == "cite" else CITATIONS
            annotations = [{"type": "url_citation", "start_index": 0, "end_index": len(content), **c}
                           for c in cited]
        summary = (body.get("reasoning") or {}).get("summary")
        if summary:
            text = "thought about: " + content
            output.append({"type": "reasoning", "id": self._new_id("rs"),
                           "summary": [{"type": "summary_text", "text": text}],
                           **({"encrypted_content": "ENC"} if "reasoning.encrypted_content"
                              in (body.get("include") or ()) else {})})
        if content or not calls:
            output.append({"type": "message", "id": self._new_id("msg"), "role": "assistant",
                           "status": "completed",
                           "content": [{"type": "output_text", "text": content,
                                        "annotations": annotations}]})
        for call in calls:
            output.append({"type": "function_call", "id": self._new_id("fc"), "call_id": call["id"],
                           "name": call["function"]["name"], "arguments": call["function"]["arguments"],
                           "status": "completed"})
        prompt = sum(len(_words(_text_of(i.get("content")))) + 4 for i in items if isinstance(i, dict))
        written = len(_words(content + " " + " ".join(c["function"]["arguments"] for c in calls)))
        usage = {"input_tokens": prompt, "input_tokens_details": {"cached_tokens": 0},
                 "output_tokens": written, "output_tokens_details": {"reasoning_tokens": 0},
                 "total_tokens": prompt + written}
        answer: dict[str, Any] = {
            "id": self._new_id("resp"), "object": "response", "created_at": int(time.time()),
            "model": body.get("model", ""), "status": status, "output": output, "usage": usage,
            "incomplete_details": {"reason": reason} if reason else None, "error": None}
        if kind == "response_failed":
            answer.update(status="failed", output=[], error={"code": "server_error",
                                                             "message": "The model failed (simulated)."})
        elif body.get("store") is True:
            with self._lock:
                self._stored[answer["id"]] = [*earlier, *items, *output]
        if not body.get("stream"):
            return h.send_json(200, answer)
        start = {**answer, "status": "in_progress", "output": [], "usage": None}
        events: list[dict[str, Any]] = [{"type": "response.created", "response": start}]
        if kind == "error_event":
            events.append({"type": "error", "code": "server_error", "message": "Stream failed (simulated).",
                           "param": None})
            return h.send_sse(events)
        for index, item in enumerate(output):
            events.append({"type": "response.output_item.added", "output_index": index, "item": item})
            if item["type"] == "reasoning":
                for piece in re.findall(r"\S+\s*|\s+", item["summary"][0]["text"]):
                    events.append({"type": "response.reasoning_summary_text.delta", "item_id": item["id"],
                                   "output_index": index, "summary_index": 0, "delta": piece})
            elif item["type"] == "message":
                for piece in re.findall(r"\S+\s*|\s+", content):
                    events.append({"type": "response.output_text.delta", "item_id": item["id"],
                                   "output_index": index, "content_index": 0, "delta": piece})
            elif item["type"] == "function_call":
                events.append({"type": "response.function_call_arguments.delta", "item_id": item["id"],
                               "output_index": index, "delta": item["arguments"]})
            events.append({"type": "response.output_item.done", "output_index": index, "item": item})
        final = {"completed": "response.completed", "incomplete": "response.incomplete",
                 "failed": "response.failed"}[answer["status"]]
        events.append({"type": final, "response": answer})
        for number, event in enumerate(events):
            event["sequence_number"] = number
        h.send_sse(events)

    def response_failed(self, *, times: int = 1) -> None:
        """Next Responses answer(s) have ``status: "failed"`` with a ``server_error`` (streams: a
        ``response.failed`` event). Only Responses requests consume it."""
        self._push("response_failed", times, None)

    def cite(self, citations: list[Any], *, times: int = 1) -> None:
        """Next Responses answer(s) with a ``web_search`` tool carry these ``url_citation``
        annotations (each a dict merged into the annotation, sent verbatim: any URL or title, even
        ones that are not strings). Only Responses requests consume it."""
        self._push("cite", times, None, citations=citations)

    def error_event(self, *, times: int = 1) -> None:
        """Next streamed Responses answer(s) send ``response.created`` then an ``error`` event, and
        end. Only Responses requests consume it."""
        self._push("error_event", times, None)

    def _embeddings(self, h: _Handler, body: dict[str, Any], action: _Action | None = None) -> None:
        inputs = body.get("input")
        if isinstance(inputs, str) or (isinstance(inputs, list) and inputs and isinstance(inputs[0], int)):
            inputs = [inputs]
        if not isinstance(inputs, list) or not inputs or any(i in ("", []) for i in inputs):
            return h.send_json(
                400, error_body(400, "'input' must be a non-empty string or array.", param="input")
            )
        texts = [i if isinstance(i, str) else " ".join(f"tok{t}" for t in i) for i in inputs]
        dims = int(body.get("dimensions") or EMBEDDING_DIMS)
        data = []
        for index, text in enumerate(texts):
            vec: Any = embed(text, dims)
            if body.get("encoding_format") == "base64":
                vec = base64.b64encode(struct.pack(f"<{dims}f", *vec)).decode()
            data.append({"object": "embedding", "index": index, "embedding": vec})
        tokens = sum(len(_words(t)) for t in texts)
        h.send_json(
            200,
            _with_usage_fault({
                "object": "list",
                "data": data,
                "model": body.get("model", ""),
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }, action),
        )


def _simulator_events(content: str, finish_reason: str) -> list[dict[str, Any]]:
    """The chunks aoai-api-simulator streams for ``content`` (its ``send_words``)."""
    safe = {"filtered": False, "severity": "safe"}
    filters = {"hate": safe, "self_harm": safe, "sexual": safe, "violence": safe}
    words, events, role = content.split(" "), [], "assistant"
    for i, word in enumerate([*words, None]):
        delta = {"content": None if word is None else (" " if i else "") + word, "function_call": None,
                 "role": role, "tool_calls": None, "finish_reason": finish_reason if word is None else None,
                 "index": 0, "logprobs": None, "content_filter_results": filters}
        events.append({"id": f"chatcmpl-sim{i:04d}", "object": "chat.completion.chunk",
                       "created": int(time.time()), "model_name": "gpt-35-turbo",
                       "system_fingerprint": None, "choices": [{"delta": delta}]})
        role = None
    return events
_USAGE_FAULTS = frozenset({"missing", "null", "negative"})


def _with_usage_fault(answer: dict[str, Any], action: _Action | None) -> dict[str, Any]:
    """``answer`` with its ``usage`` as a ``usage_fault`` action says (unchanged without one)."""
    if action is None or action.kind != "usage_fault":
        return answer
    answer = dict(answer)
    kind = action.params["usage"]
    if kind == "missing":
        answer.pop("usage", None)
    elif kind == "null":
        answer["usage"] = None
    else:
        answer["usage"] = {k: -abs(int(v)) - 1 for k, v in (answer.get("usage") or {}).items()}
    return answer


def _reshape(choices: list[dict[str, Any]], shape: str | None, key: str) -> None:
    """``null_message``: ``key`` set to null; ``no_message``: ``key`` removed."""
    for choice in choices:
        if shape == "null_message":
            choice[key] = None
        elif shape == "no_message":
            choice.pop(key, None)


def _credential(headers: dict[str, str]) -> str:
    """The credential(s) a request carried, verbatim, as OpenAI would quote them."""
    found = []
    auth = headers.get("authorization")
    if auth is not None:
        found.append(auth[7:] if auth[:7].lower() == "bearer " else auth)
    if headers.get("api-key") is not None and headers["api-key"] not in found:
        found.append(headers["api-key"])
    return ", ".join(found)


def _num(value: float | str) -> str:
    """Header value for a number: ``2`` rather than ``2.0``."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def main(argv: list[str] | None = None) -> None:
    """Serve until killed, printing ``OPENAI_BASE_URL=...`` first."""
    parser = argparse.ArgumentParser(description="OpenAI-compatible test server.")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--rate-limit-rps", type=float, default=None)
    args = parser.parse_args(argv)
    server = OpenAITestServer(args.port, latency=args.latency, rate_limit_rps=args.rate_limit_rps).start()
    print(f"OPENAI_BASE_URL={server.base_url}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
