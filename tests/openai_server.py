"""OpenAI-compatible HTTP test server with scripted fault injection.

Stdlib only. Serves ``/v1/chat/completions`` (JSON and SSE streaming),
``/v1/embeddings``, ``/v1/models`` and the Azure
``/openai/deployments/<name>/...`` equivalents on 127.0.0.1.

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


@dataclass
class RecordedRequest:
    """One request as the server received it."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: Any  # parsed JSON, or None
    time: float


@dataclass
class _Action:
    kind: str  # "reply" | "fail" | "delay" | "drop" | "malformed"
    times: int
    path_contains: str | None
    params: dict[str, Any] = field(default_factory=dict)

    def matches(self, path: str) -> bool:
        if self.kind == "reply" and not path.endswith("chat/completions"):
            return False
        return self.path_contains is None or self.path_contains in path


def _words(text: str) -> list[str]:
    return text.split()


def _text_of(content: Any) -> str:
    """Text of a message ``content``: a string or a list of ``{"type": "text"}`` parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
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


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _Server

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
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def send_sse(self, events: list[Any]) -> None:
        """Send ``data:`` events with chunked transfer encoding, then ``[DONE]``."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for event in [*map(json.dumps, events), "[DONE]"]:
            data = f"data: {event}\n\n".encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")


class OpenAITestServer:
    """OpenAI-compatible server on 127.0.0.1 with a FIFO queue of scripted behaviours.

    Knobs (constructor arguments and attributes): ``latency`` seconds slept before
    every answer; ``rate_limit_rps`` accepted requests per sliding second, beyond
    which requests get 429 ``rate_limit_exceeded``; ``required_api_key`` checked
    against ``Authorization: Bearer`` / ``api-key``.
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
        self.requests: list[RecordedRequest] = []
        self.rejected = 0
        self.peak_concurrency = 0
        self._in_flight = 0
        self._queue: list[_Action] = []
        self._window: deque[float] = deque()
        self._ids = 0
        self._lock = threading.Lock()
        self._generation = 0  # bumped by reset(): older requests stop counting as in flight
        self._wake = threading.Event()  # set to cut short the sleeps of older requests
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

    # -- scripting -------------------------------------------------------------
    def _push(self, kind: str, times: int, path_contains: str | None, **params: Any) -> None:
        with self._lock:
            self._queue.append(_Action(kind, times, path_contains, params))

    def reply(
        self,
        content: str,
        *,
        usage: dict[str, int] | None = None,
        finish_reason: str = "stop",
        times: int = 1,
        path_contains: str | None = None,
    ) -> None:
        """Next chat completion(s) answer ``content`` (only chat requests consume it)."""
        self._push("reply", times, path_contains, content=content, usage=usage, finish_reason=finish_reason)

    def fail(
        self,
        status: int,
        *,
        code: str | None = None,
        message: str | None = None,
        type: str | None = None,
        headers: dict[str, str] | None = None,
        retry_after: float | str | None = None,
        retry_after_ms: float | None = None,
        times: int = 1,
        path_contains: str | None = None,
    ) -> None:
        """Next request(s) get an OpenAI-shaped error with ``status``."""
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

    def drop(self, *, times: int = 1, path_contains: str | None = None) -> None:
        """Next request(s) see the connection closed without any response."""
        self._push("drop", times, path_contains)

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
            generation, wake = self._generation, self._wake
            self._in_flight += 1
            self.peak_concurrency = max(self.peak_concurrency, self._in_flight)
            retry_in = self._rate_limited(record.time)
            action = None if retry_in is not None else self._next_action(split.path)
        try:
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
        if not self._authorized(record.headers):
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
        elif kind == "malformed":
            h.send_raw(200, b'{"id": "broken", "object": <not json', "application/json")
        else:
            if action is not None and kind == "delay":
                wake.wait(action.params["seconds"])
            self._route(h, record, action if kind == "reply" else None)

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
        if rec.method == "GET" and path == "/v1/models":
            data = [{"id": m, "object": "model", "created": 1700000000, "owned_by": "system"} for m in MODELS]
            return h.send_json(200, {"object": "list", "data": data})
        if rec.method == "POST" and path in ("/v1/chat/completions", "/v1/embeddings"):
            if not isinstance(body, dict):
                return h.send_json(400, error_body(400, "Request body must be a JSON object."))
            if path == "/v1/embeddings":
                return self._embeddings(h, body)
            return self._chat(h, body, action)
        return h.send_json(404, error_body(404, f"Unknown path {rec.method} {rec.path}", code="unknown_url"))

    def _new_id(self, prefix: str) -> str:
        with self._lock:
            self._ids += 1
            return f"{prefix}-{self._ids:06d}"

    def _chat(self, h: _Handler, body: dict[str, Any], action: _Action | None) -> None:
        messages = body.get("messages") or []
        if action is not None:
            content, finish, usage = (
                action.params["content"],
                action.params["finish_reason"],
                action.params["usage"],
            )
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
            completion = n * len(_words(content))
            usage = {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
            }
        base = {
            "id": self._new_id("chatcmpl"),
            "created": int(time.time()),
            "model": body.get("model", ""),
            "system_fingerprint": "fp_test",
        }
        if not body.get("stream"):
            choices = [
                {
                    "index": i,
                    "message": {"role": "assistant", "content": content, "refusal": None},
                    "logprobs": None,
                    "finish_reason": finish,
                }
                for i in range(n)
            ]
            return h.send_json(200, {**base, "object": "chat.completion", "choices": choices, "usage": usage})
        chunk = {**base, "object": "chat.completion.chunk"}
        pieces = re.findall(r"\S+\s*|\s+", content)
        events: list[Any] = []
        for i in range(n):
            deltas = [{"role": "assistant", "content": ""}] + [{"content": p} for p in pieces]
            events += [
                {**chunk, "choices": [{"index": i, "delta": d, "logprobs": None, "finish_reason": None}]}
                for d in deltas
            ]
            events.append(
                {**chunk, "choices": [{"index": i, "delta": {}, "logprobs": None, "finish_reason": finish}]}
            )
        if (body.get("stream_options") or {}).get("include_usage"):
            events.append({**chunk, "choices": [], "usage": usage})
        h.send_sse(events)

    def _embeddings(self, h: _Handler, body: dict[str, Any]) -> None:
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
            {
                "object": "list",
                "data": data,
                "model": body.get("model", ""),
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            },
        )


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
