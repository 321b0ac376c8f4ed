"""The run history's recorder: every call `OpenAIClient.execute` answers or fails is recorded, off
the call's thread, in the SQLite store at ``HISTORY_PATH`` (`llmkit.base.history_db`). Reading
it back is `llmkit.clients.history`.

Recording never breaks or slows a call: the call's thread only queues a reference to the
immutable `Prepared` and `Completion` (about a microsecond); one writer thread turns them into
rows and writes them in batches. A database that cannot be written (locked past its timeout,
read-only, broken) drops those rows and gives one `HistoryWarning`, in the caller's thread.
`flush` waits for the queue to be written (the readers call it first, so they see every call made
so far).

Rows are linked to their batch, conversation and experiment through context variables set by
`linked` (``map``, `LLMChat` and `experiment` use it), and, in a kernel, to the notebook and cell.
"""

from __future__ import annotations

import atexit
import contextlib
import contextvars
import functools
import json
import os
import queue
import re
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any

from ..base import answer_shapes, hooks
from ..base.errors import ConfigError, HistoryWarning
from ..base.result import Completion
from ..base.runs import prompt_text
from ..base.secrets import scrub
from .prepare import Prepared

__all__ = ["experiment", "flush", "linked", "new_id", "record"]

_batch: contextvars.ContextVar[str | None] = contextvars.ContextVar("llmkit_batch", default=None)
_chat: contextvars.ContextVar[str | None] = contextvars.ContextVar("llmkit_chat", default=None)
_experiment: contextvars.ContextVar[str | None] = contextvars.ContextVar("llmkit_experiment",
                                                                        default=None)
_IDS = {"batch_id": _batch, "chat_id": _chat, "experiment": _experiment}

_queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
_urgent = threading.Event()  # set by flush: write what is queued now
_writer: threading.Thread | None = None
_start_lock = threading.Lock()
_problem: str | None = None  # why rows could not be written; warned about once, by a caller
_warned = False
_encode = json.JSONEncoder(ensure_ascii=False).encode  # built once: json.dumps with options
_encode_any = json.JSONEncoder(ensure_ascii=False, default=str).encode  # builds one per call
_pid = os.getpid()
_DATA_URL = re.compile(r"data:([\w/+.-]+);base64,[A-Za-z0-9+/=]{64,}")



def new_id() -> str:
    """A short random id for a batch or a conversation."""
    return os.urandom(6).hex()


@contextlib.contextmanager
def linked(**ids: str | None) -> Iterator[None]:
    """Record the calls made inside with these ids (``batch_id``, ``chat_id``, ``experiment``)."""
    tokens = [(_IDS[name], _IDS[name].set(value)) for name, value in ids.items()]
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


def experiment(name: str) -> contextlib.AbstractContextManager[None]:
    """Label every call made inside ``with llmkit.experiment("prompt-v2"):`` in the run history
    (``llmkit.history()`` gives it as ``run.experiment``; threads started by ``map`` inherit it)."""
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"experiment name must be non-empty text, got {name!r}")
    return linked(experiment=name.strip())


# -- recording (the call's thread) -------------------------------------------------------------

def record(p: Prepared, completion: Completion | None, error: BaseException | None = None) -> None:
    """Queue one call for the history (nothing when the history is off)."""
    if p.history is None:
        return
    if _problem is not None and not _warned:
        _warn()
    where = _where() if "ipykernel" in sys.modules else None
    _queue.put((p, completion, error, time.time(), time.perf_counter() - p.started,
                _batch.get(), _chat.get(), _experiment.get(), where))
    if _writer is None:
        _start()


def _where() -> tuple[str | None, str | None] | None:
    try:
        return hooks.notebook("context").where()
    except Exception:  # the notebook layer missing or odd: the run is still recorded
        return None


def _warn() -> None:
    global _warned
    _warned = True
    warnings.warn(f"the run history could not be written, and calls go on without it: "
                  f"{_problem}. Set HISTORY_PATH to a writable file, or HISTORY=False",
                  HistoryWarning, stacklevel=4)


def _start() -> None:
    global _writer
    with _start_lock:
        if _writer is None:
            _writer = threading.Thread(target=_write_forever, name="llmkit-history", daemon=True)
            _writer.start()


def _reset_after_fork() -> None:
    global _writer, _queue, _urgent, _pid
    _writer, _queue, _urgent, _pid = None, queue.SimpleQueue(), threading.Event(), os.getpid()


os.register_at_fork(after_in_child=_reset_after_fork)


# -- writing (the writer thread) ---------------------------------------------------------------

def _write_forever() -> None:
    from ..base.history_db import HistoryDB, day_of  # sqlite3 loads with the first recorded call
    dbs: dict[str, HistoryDB | None] = {}
    while True:
        items = _gather()
        rows: dict[str, list[dict[str, Any]]] = {}
        done: list[threading.Event] = []
        for item in items:
            if isinstance(item, threading.Event):
                done.append(item)
                continue
            try:
                rows.setdefault(item[0].history, []).append(_row(*item, day_of=day_of))
            except Exception as exc:  # a row that cannot be built is dropped, not the writer
                _failed(f"a run could not be recorded ({type(exc).__name__})")
        for path, batch in rows.items():
            try:
                db = dbs.get(path)
                if db is None:
                    while len(dbs) >= 4:  # a process rarely writes to more than one history
                        stale = dbs.pop(next(iter(dbs)))
                        if stale is not None:
                            stale.close()
                    db = dbs[path] = HistoryDB(path)
                db.insert(batch)
            except Exception as exc:
                _failed(f"{path}: {exc}")
                broken = dbs.pop(path, None)
                if broken is not None:
                    broken.close()  # opened again with the next rows: the lock may have passed
        for event in done:
            event.set()


def _gather(most: int = 1000, wait: float = 0.02) -> list[Any]:
    """The next items to write: the first, and those queued within ``wait`` seconds after it
    (sooner when `flush` asks). One transaction per row would cost ~150 µs a row (commit, index
    segment, spend upsert), in batches of hundreds ~25 µs; and the writer sleeps through the
    window instead of waking (and taking the GIL) once per call."""
    items = [_queue.get()]
    if not isinstance(items[0], threading.Event):
        _urgent.wait(wait)
    _urgent.clear()
    while len(items) < most:
        try:
            items.append(_queue.get_nowait())
        except queue.Empty:
            break
    return items


def _failed(problem: str) -> None:
    global _problem
    _problem = problem


class _Row(dict[str, Any]):
    """A run's values for the store. Its ``messages``, ``prompt`` and ``params`` are encoded only
    if the store asks for them: for a request it has not stored yet (a hit's was stored with
    its miss, so hits skip the encoding: ~25 µs for 1 KB of messages)."""

    __slots__ = ("prepared",)
    prepared: Prepared

    def __missing__(self, name: str) -> str:
        from ..base.history_db import ASKED
        if name not in ASKED:
            raise KeyError(name)
        self.update(zip(ASKED, _asked(self.prepared), strict=True))
        return str(self[name])


def _row(p: Prepared, completion: Completion | None, error: BaseException | None, now: float,
         latency: float, batch_id: str | None, chat_id: str | None, experiment: str | None,
         where: tuple[str | None, str | None] | None, *, day_of: Callable[[float], str]) -> _Row:
    """A run's values, built in one go (the writer's Python work per run is what a hit pays for
    while it holds the GIL); ``day_of`` is the store's, passed in as sqlite3 loads with it."""
    model, answer, tool_calls, finish_reason = str(p.public.get("model")), "", None, None
    counts: dict[str, int] = {}
    cost: float | None = 0.0
    cached, cached_tokens = 0, None
    if completion is not None:
        message = completion.message
        content = message.get("content")
        answer = content if isinstance(content, str) else ""
        if isinstance(message.get("tool_calls"), list):
            tool_calls = _encode(message["tool_calls"])
        counts, cost, latency = completion.usage, completion.paid, completion.latency
        model, cached, finish_reason = completion.model or model, int(completion.cached), \
            completion.finish_reason
        usage = answer_shapes.usage(completion.response)  # chat's terms, whichever API answered
        details = usage.get("prompt_tokens_details") if isinstance(usage, dict) else None
        cached_tokens = details.get("cached_tokens") if isinstance(details, dict) else None
        cached_tokens = cached_tokens if type(cached_tokens) is int else None
    row = _Row(
        time=now - latency, day=day_of(now - latency), kind=p.kind, api_type=p.api_type,
        host=_host(p.endpoint), model=model,
        key=p.key if p.kind != "embedding" else None,  # an embedding run's key is its first text's
        answer=answer, prompt_tokens=counts.get("prompt_tokens"),
        completion_tokens=counts.get("completion_tokens"), cached_tokens=cached_tokens,
        total_tokens=counts.get("total_tokens"), cost=cost, latency=latency, cached=cached,
        finish_reason=finish_reason, tool_calls=tool_calls,
        error=type(error).__name__ if error is not None else None,
        error_message=scrub(str(error), p.secrets)[:2000] if error is not None else None,
        notebook=where[0] if where else None, cell_id=where[1] if where else None,
        batch_id=batch_id, chat_id=chat_id, experiment=experiment, pid=_pid,
        asked=str(p.public.get("model")))
    row.prepared = p
    return row


def _asked(p: Prepared) -> tuple[str, str, str]:
    """The messages (JSON), their text and the parameters (JSON) of a call."""
    request = p.view  # a Responses call's conversation as chat messages
    if p.kind == "embedding":
        texts = request["input"] if isinstance(request["input"], list) else [request["input"]]
        messages = [{"role": "input", "content": t} for t in texts]
    else:
        messages = request.get("messages") or []
    text = _encode(messages)
    if "data:" in text:  # images inlined as data URLs: their size, not their bytes
        text = _DATA_URL.sub(_short, text)
        messages = json.loads(text)
    params = {k: v for k, v in request.items() if k not in ("model", "messages", "input", "instructions")}
    return text, prompt_text(messages), _encode_any(params)


def _short(match: re.Match[str]) -> str:
    return f"data:{match.group(1)};base64,<{len(match.group(0)) * 3 // 4:,} bytes not recorded>"


@functools.lru_cache(maxsize=64)
def _host(endpoint: str) -> str:
    """Host and port of an endpoint: never its path, query or user:password part."""
    from urllib.parse import urlsplit
    parts = urlsplit(endpoint)
    return (parts.netloc or endpoint.split("?")[0].split("/")[0]).rpartition("@")[2].lower()


def flush(timeout: float = 10.0) -> None:
    """Wait until every call queued so far is written (or could not be)."""
    if _writer is None or not _writer.is_alive():
        return
    done = threading.Event()
    _queue.put(done)
    _urgent.set()
    done.wait(timeout)


atexit.register(flush, 5.0)


def _reset() -> None:
    """Write what is queued and forget a past failure (tests use this between tests)."""
    global _problem, _warned
    flush()
    _problem, _warned = None, False
