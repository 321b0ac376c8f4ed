"""Batch runs: one `LLMCall` over many rows of template variables, concurrently, within rate limits.

``call.map(rows)`` (threads) and ``await call.amap(rows)`` (asyncio) return one item per row, in
input order: the `Result` that ``call.call(**row)`` would return, or a `FailedRow` carrying the
error and the row's variables. A failure never stops the other rows::

    results = call.map(rows)
    failed = [r for r in results if isinstance(r, FailedRow)]

With the cache on (CACHE_API_CALLS, the default) answers are stored as they arrive, so running
the same rows again sends only what is missing: the rows that failed or were not reached.
Ctrl-C (a task cancellation for ``amap``) stops sending new rows; ``map`` waits for the requests
already sent, so their answers reach the cache, then re-raises `KeyboardInterrupt` (press it
again not to wait); the re-run resumes. ``results = call.map(rows)`` interrupted never assigns
``results``, so the rows done are kept elsewhere: on the exception (``exc.results``, None for rows
not run) and in `last_batch()`. Rate limits (MAX_CONCURRENCY, RPM, TPM) are read from
configuration; RPM and TPM are enforced per endpoint for the whole process by `llmkit.clients.limiter`.

Rows whose keys do not match the templates' variables give one `LLMKitWarning` per batch: an
unused key is usually a misspelt one, and a missing one fails its row.
"""

from __future__ import annotations

import contextvars
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from ..base import config, hooks
from ..base.errors import ConfigError, LLMKitWarning
from ..clients.recorder import linked, new_id
from .progress_line import ProgressLine
from .send import Answer

if TYPE_CHECKING:
    import concurrent.futures as cf


class Runnable(Protocol):
    """What a batch runs once per row: `LLMCall.ask` (no state written on the object)."""

    @property
    def variables(self) -> list[str]: ...

    def ask(self, variables: Mapping[str, Any] | None = None, /) -> Answer: ...


__all__ = ["FailedRow", "arun_batch", "last_batch", "run_batch"]

OPTIONS = ("progress",)
REFRESH = 0.25  # seconds between progress refreshes while waiting
_last: list[Any] = []  # the results list of the latest batch, filled in as rows finish


def last_batch() -> list[Any]:
    """The results of the latest batch started in this process: the list ``map`` returns, or, for
    one interrupted, what finished (None for rows not run). Empty before any batch."""
    return _last


def _names(keys: list[Any]) -> str:
    shown = ", ".join(map(repr, keys[:5]))
    return shown + (f" and {len(keys) - 5} more" if len(keys) > 5 else "")


def _key_mismatch(variables: list[str], rows: list[Mapping[str, Any]]) -> str:
    """What the rows' keys get wrong against the templates' variables ("" if nothing)."""
    used, n = set(variables), len(rows)
    parts = []
    extra = list(dict.fromkeys(k for row in rows for k in row if k not in used))
    if extra:
        count = sum(any(k not in used for k in row) for row in rows)
        parts.append(f"rows carry {_names(extra)}, which the templates do not use ({count} of {n} rows)")
    missing = [v for v in variables if any(v not in row for row in rows)]
    if missing:
        count = sum(any(v not in row for v in variables) for row in rows)
        parts.append(f"rows lack {_names(missing)} ({count} of {n} rows): those rows will fail "
                     "with MissingVariableError")
    return "; ".join(parts)


@dataclass(frozen=True)
class FailedRow:
    """The outcome of a row whose call failed: its position, its variables and the error.

    ``error`` is what ``call.call(**variables)`` would have raised (an `LLMKitError`, e.g.
    `MissingVariableError` or `InvalidRequestError`).
    """

    index: int
    variables: dict[str, Any]
    error: Exception

    def __str__(self) -> str:
        return f"row {self.index} failed: {type(self.error).__name__}: {self.error}"


def _progress(total: int, *, enabled: bool) -> ProgressLine:
    """A widget bar in a Jupyter kernel (the notebook layer, loaded by name), else the text line:
    a script's batch loads nothing from ``llmkit.notebook``."""
    if enabled and hooks.in_kernel():
        return hooks.notebook("progress").Progress(total)
    return ProgressLine(total, enabled=enabled)


class _Batch:
    """Rows checked up front, and one row's work (run in a thread)."""

    def __init__(self, call: Runnable, rows: Iterable[Mapping[str, Any]], max_concurrency: int | None,
                 options: Mapping[str, Any]) -> None:
        unknown = set(options) - set(OPTIONS)
        if unknown:
            raise ConfigError(f"map: unknown option(s) {', '.join(sorted(unknown))}; "
                              f"known: max_concurrency, {', '.join(OPTIONS)}")
        if isinstance(rows, (str, bytes, Mapping)) or not isinstance(rows, Iterable):
            raise ConfigError(f"map: rows must be a list of dicts of template variables, got a "
                              f"{type(rows).__name__}")
        self.rows = list(rows)
        for i, row in enumerate(self.rows):
            if not isinstance(row, Mapping):
                raise ConfigError(f"map: rows[{i}] is a {type(row).__name__}; each row must be a "
                                  "dict of template variables (for a pandas DataFrame pass "
                                  "df.to_dict('records'))")
        self.workers = (config.resolve().max_concurrency if max_concurrency is None else
                        config.parse_value("max_concurrency", max_concurrency,
                                           "map(max_concurrency=...)"))
        mismatch = _key_mismatch(call.variables, self.rows)
        if mismatch:  # stacklevel: the caller of map/amap
            warnings.warn(mismatch, LLMKitWarning, stacklevel=4)
        self.call = call
        self.progress = _progress(len(self.rows), enabled=bool(options.get("progress", True)))
        self.results: list[Any] = [None] * len(self.rows)  # Result, typed value or FailedRow
        self.id = new_id()  # the run history's batch_id of every row
        self.context = contextvars.copy_context()  # worker threads keep the caller's experiment
        global _last
        _last = self.results

    def row(self, index: int) -> Answer | FailedRow:
        """Render and send one row (`LLMCall.ask`: the LLMCall's state is not touched), in a copy
        of the caller's context."""
        return self.context.copy().run(self._row, index)

    def _row(self, index: int) -> Answer | FailedRow:
        variables = self.rows[index]
        try:
            with linked(batch_id=self.id):
                return self.call.ask(variables)
        except Exception as error:  # every failure belongs to its row
            return FailedRow(index, dict(variables), error)

    def executor(self) -> cf.ThreadPoolExecutor:
        import concurrent.futures as cf  # imported on first use: `import llmkit` stays light
        return cf.ThreadPoolExecutor(max(1, min(self.workers, len(self.rows))),
                                     thread_name_prefix="llmkit-map")

    def record(self, index: int, outcome: Answer | FailedRow) -> None:
        """Keep a row's value (the `Result`, or the typed value) and count it."""
        self.results[index] = outcome if isinstance(outcome, FailedRow) else outcome.value
        self.progress.add(outcome)

    def drain(self, futures: Mapping[cf.Future[Any], int]) -> None:
        """After Ctrl-C: wait for the requests already sent, recording their rows (paid for, and
        cached), while the progress says how many are left; a second Ctrl-C stops waiting."""
        import concurrent.futures as cf
        running = {f for f, i in futures.items() if self.results[i] is None and not f.cancelled()}
        try:
            while running:
                self.progress.waiting(len(running))
                done, running = cf.wait(running, timeout=REFRESH, return_when=cf.FIRST_COMPLETED)
                for future in done:
                    self.record(futures[future], future.result())
        except BaseException as again:
            again.results = self.results  # type: ignore[attr-defined]
            raise
        finally:
            self.progress.close(interrupted=True)

    def finished(self) -> list[Any]:
        self.progress.close()
        return self.results


def run_batch(call: Runnable, rows: Iterable[Mapping[str, Any]], *, max_concurrency: int | None = None,
              **options: Any) -> list[Any]:
    """Run ``call`` once per row on up to ``max_concurrency`` threads (default: MAX_CONCURRENCY).

    Returns a list in input order of `Result` and `FailedRow`. ``progress=False`` hides the
    progress bar. Ctrl-C: see the module docstring.
    """
    import concurrent.futures as cf
    batch = _Batch(call, rows, max_concurrency, options)
    pool = batch.executor()
    futures = {pool.submit(batch.row, i): i for i in range(len(batch.rows))}
    pending = set(futures)
    try:
        while pending:  # wakes regularly, so Ctrl-C and the rate shown stay current
            done, pending = cf.wait(pending, timeout=REFRESH, return_when=cf.FIRST_COMPLETED)
            for future in done:
                batch.record(futures[future], future.result())
            batch.progress.refresh()
    except BaseException as stop:
        stop.results = batch.results  # type: ignore[attr-defined]  # filled in by drain
        pool.shutdown(wait=False, cancel_futures=True)  # rows not started are dropped
        batch.drain(futures)
        raise
    pool.shutdown()
    return batch.finished()


async def arun_batch(call: Runnable, rows: Iterable[Mapping[str, Any]], *,
                     max_concurrency: int | None = None, **options: Any) -> list[Any]:
    """`run_batch` for asyncio code: rows run on threads, the event loop is never blocked.

    Cancelling the task drops the rows not started and re-raises `CancelledError`; requests
    already sent finish in the background and reach the cache.
    """
    import asyncio
    batch = _Batch(call, rows, max_concurrency, options)
    pool = batch.executor()

    async def one(index: int) -> None:
        batch.record(index, await asyncio.wrap_future(pool.submit(batch.row, index)))

    try:
        await asyncio.gather(*(one(i) for i in range(len(batch.rows))))
    except BaseException as stop:
        stop.results = batch.results  # type: ignore[attr-defined]
        pool.shutdown(wait=False, cancel_futures=True)
        batch.progress.close(interrupted=True)
        raise
    pool.shutdown(wait=False)
    return batch.finished()
