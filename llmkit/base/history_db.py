"""The run history's SQLite database: one row per call, full-text search, spend totals.

WAL journal and a busy timeout make it safe for several kernels at once (readers never block the
writer). Search uses an FTS5 index over prompts and answers, kept in step by triggers. Spend is
read from a small ``spend`` table (one row per day, model and notebook) updated in the same
transaction as the runs, so totals over a million runs cost a scan of a few hundred rows, not of
the runs. Rows read back are untrusted (another program may have written the file): a row that
does not have the expected shape is left out, never returned.
"""

from __future__ import annotations

import json
import operator
import os
import sqlite3
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from .errors import HistoryError
from .runs import BY, FIELDS, Run, Runs

__all__ = ["COLUMNS", "HistoryDB", "day_of"]

VERSION = 2
COLUMNS = ("time", "day", "kind", "api_type", "host", "model", "messages", "prompt", "answer",
           "params", "prompt_tokens", "completion_tokens", "cached_tokens", "total_tokens", "cost",
           "latency", "cached", "finish_reason", "tool_calls", "error", "error_message",
           "notebook", "cell_id", "batch_id", "chat_id", "experiment", "pid")
"""The columns a recorded row gives, in insert order (``id`` is assigned by SQLite)."""

TOTALS = ("runs", "cached_runs", "errors", "unpriced", "prompt_tokens", "completion_tokens",
          "cached_tokens", "total_tokens", "cost")

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    time REAL NOT NULL, day TEXT NOT NULL, kind TEXT NOT NULL, api_type TEXT NOT NULL,
    host TEXT NOT NULL, model TEXT NOT NULL, messages TEXT NOT NULL, prompt TEXT NOT NULL,
    answer TEXT NOT NULL, params TEXT NOT NULL, prompt_tokens INTEGER, completion_tokens INTEGER,
    cached_tokens INTEGER, total_tokens INTEGER, cost REAL, latency REAL NOT NULL,
    cached INTEGER NOT NULL, finish_reason TEXT, tool_calls TEXT, error TEXT, error_message TEXT,
    notebook TEXT, cell_id TEXT, batch_id TEXT, chat_id TEXT, experiment TEXT, pid INTEGER);
CREATE INDEX IF NOT EXISTS runs_time ON runs(time);
CREATE TABLE IF NOT EXISTS spend (
    day TEXT NOT NULL, model TEXT NOT NULL, notebook TEXT NOT NULL,
    {", ".join(f"{t} {'REAL' if t == 'cost' else 'INTEGER'} NOT NULL DEFAULT 0" for t in TOTALS)},
    PRIMARY KEY (day, model, notebook));
CREATE VIRTUAL TABLE IF NOT EXISTS runs_fts USING fts5(
    prompt, answer, content='runs', content_rowid='id');
DROP TRIGGER IF EXISTS runs_fts_insert;
DROP TRIGGER IF EXISTS runs_fts_delete;
PRAGMA user_version = {VERSION};
"""
# Version 1 kept the index in step with triggers; FTS5 flushes its pending terms at the savepoint
# each trigger opens, so a row cost ~35 µs instead of ~6 µs written in one statement per batch
# (`insert`, `prune`). Opening a version 1 file drops them (its index is already complete).

_VALUES = operator.itemgetter(*COLUMNS)
_COUNTED = operator.itemgetter(*TOTALS[4:])
_ADD = ", ".join(f"{t} = {t} + excluded.{t}" for t in TOTALS)
_UPSERT = (f"INSERT INTO spend (day, model, notebook, {', '.join(TOTALS)}) "
           f"VALUES ({', '.join('?' * (3 + len(TOTALS)))}) "
           f"ON CONFLICT (day, model, notebook) DO UPDATE SET {_ADD}")
_SUMS = (f"COUNT(*), SUM(cached), SUM(error IS NOT NULL), SUM(cost IS NULL), "
         f"{', '.join(f'TOTAL({t})' for t in TOTALS[4:])}")


def day_of(t: float) -> str:
    """The local date of a time, as spend is totalled by day."""
    global _today
    start, end, day = _today
    if start <= t < end:
        return day
    local = time.localtime(t)
    day = time.strftime("%Y-%m-%d", local)
    if local.tm_isdst == -1:
        return day
    start = time.mktime((*local[:3], 0, 0, 0, 0, 0, -1))
    end = time.mktime((*local[:2], local[2] + 1, 0, 0, 0, 0, 0, -1))
    if start <= t < end and time.time() - 86400 < t:  # remember the day calls are made on
        _today = (start, end, day)
    return day


_today = (0.0, 0.0, "")  # (start, end, date) of the local day most runs are recorded on


class HistoryDB:
    """The history database at ``path`` (created on first write). Open one per thread."""

    def __init__(self, path: str | os.PathLike[str], *, create: bool = True) -> None:
        self.path = Path(path)
        if not create and not self.path.exists():
            self._db: sqlite3.Connection | None = None
            return
        try:
            if create:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=5, isolation_level=None,
                                       check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")  # WAL: durable at checkpoints, fast
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version > VERSION:
                raise HistoryError(f"run history {str(self.path)!r} was written by a newer llmkit "
                                 f"(schema {version}); upgrade llmkit, or set HISTORY_PATH")
            if version < VERSION:
                self._db.executescript(_SCHEMA)
        except (sqlite3.Error, OSError) as exc:
            raise HistoryError(f"run history {str(self.path)!r} cannot be used: {exc}; move the "
                             "file aside, or set HISTORY_PATH (HISTORY=False turns it off)") from None

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    # -- writing --------------------------------------------------------------------------------

    def insert(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Add rows (dicts with `COLUMNS`) and their spend, in one transaction."""
        assert self._db is not None
        totals: dict[tuple[str, str, str], list[float]] = {}
        for row in rows:
            key = (row["day"], row["model"], row["notebook"] or "")
            group = totals.get(key, [0] * len(TOTALS))
            values = (1, row["cached"], row["error"] is not None, row["cost"] is None,
                      *_COUNTED(row))
            totals[key] = [a + (b or 0) for a, b in zip(group, values, strict=True)]
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            first = db.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM runs").fetchone()[0]
            db.executemany(f"INSERT INTO runs (id, {', '.join(COLUMNS)}) VALUES "
                           f"({', '.join('?' * (1 + len(COLUMNS)))})",
                           [(first + i, *_VALUES(row)) for i, row in enumerate(rows)])
            db.execute("INSERT INTO runs_fts(rowid, prompt, answer) SELECT id, prompt, answer "
                       "FROM runs WHERE id >= ?", (first,))
            db.executemany(_UPSERT, [(*key, *sums) for key, sums in totals.items()])
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def prune(self, before: float) -> int:
        """Delete the runs recorded before ``before`` (epoch seconds), and their spend; returns
        how many runs went."""
        assert self._db is not None
        db, cutoff = self._db, day_of(before)
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("INSERT INTO runs_fts(runs_fts, rowid, prompt, answer) "
                       "SELECT 'delete', id, prompt, answer FROM runs WHERE time < ?", (before,))
            gone = db.execute("DELETE FROM runs WHERE time < ?", (before,)).rowcount
            db.execute("DELETE FROM spend WHERE day <= ?", (cutoff,))
            db.execute(f"INSERT INTO spend (day, model, notebook, {', '.join(TOTALS)}) "
                       f"SELECT day, model, COALESCE(notebook, ''), {_SUMS} FROM runs "
                       f"WHERE day = ? GROUP BY day, model, COALESCE(notebook, '')", (cutoff,))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return gone

    # -- reading --------------------------------------------------------------------------------

    def search(self, text: str | None = None, *, model: str | None = None,
               since: float | None = None, errors: bool | None = None,
               cached: bool | None = None, limit: int | None = 100) -> Runs:
        """Runs, newest first: those whose prompt or answer holds every word of ``text``, and
        that match every filter given."""
        where: list[str] = []
        args: list[Any] = []
        if model is not None:
            where.append("r.model = ?")
            args.append(model)
        if since is not None:
            where.append("r.time >= ?")
            args.append(since)
        if errors is not None:
            where.append(f"r.error IS {'NOT ' if errors else ''}NULL")
        if cached is not None:
            where.append("r.cached = ?")
            args.append(int(cached))
        words = (text or "").replace("\x00", " ").split()  # FTS5 strings end at a NUL
        if words:
            query = " ".join('"' + word.replace('"', '""') + '"' for word in words)
            sql = ("SELECT r.* FROM runs_fts f JOIN runs r ON r.id = f.rowid WHERE runs_fts MATCH ?"
                   + "".join(f" AND {w}" for w in where) + " ORDER BY f.rowid DESC")
            args.insert(0, query)
        else:
            sql = ("SELECT r.* FROM runs r" + (" WHERE " + " AND ".join(where) if where else "")
                   + " ORDER BY r.time DESC, r.id DESC")
        if limit is not None:
            sql += " LIMIT ?"
            args.append(int(limit))
        return Runs(run for run in map(_run, self._rows(sql, args)) if run is not None)

    def runs(self) -> Iterator[Run]:
        """Every run, oldest first (for export), read in pages."""
        last = 0
        while True:
            page = [r for r in self._rows("SELECT * FROM runs WHERE id > ? ORDER BY id LIMIT 1000",
                                          (last,))]
            if not page:
                return
            last = page[-1]["id"]
            yield from (run for run in map(_run, page) if run is not None)

    def spend(self, since: float | None = None, by: str = "model") -> list[dict[str, Any]]:
        """Totals (`TOTALS`) per ``by`` value: whole days from the ``spend`` table, the part of the
        first day after ``since`` from the runs."""
        if by not in BY:
            raise ValueError(by)
        if since is None:
            sql = (f"SELECT {by} AS k, {', '.join(f'SUM({t})' for t in TOTALS)} FROM spend "
                   f"GROUP BY k")
            rows = self._rows(sql, ())
        else:
            first = day_of(since)
            key = f"COALESCE({by}, '')" if by == "notebook" else by
            rows = self._rows(
                f"SELECT k, {', '.join(f'SUM({t})' for t in TOTALS)} FROM ("
                f"SELECT {by} AS k, {', '.join(TOTALS)} FROM spend WHERE day > ? UNION ALL "
                f"SELECT {key} AS k, {_SUMS} FROM runs WHERE day = ? AND time >= ? "
                f"GROUP BY k) GROUP BY k", (first, first, since))
        return [{by: row[0], **{t: row[i + 1] or 0 for i, t in enumerate(TOTALS)}}
                for row in rows if row[0] is not None]

    def count(self) -> int:
        rows = self._rows("SELECT COUNT(*) FROM runs", ())
        return int(rows[0][0]) if rows else 0

    def _rows(self, sql: str, args: Sequence[Any]) -> list[sqlite3.Row]:
        if self._db is None:
            return []
        self._db.row_factory = sqlite3.Row
        try:
            return self._db.execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise HistoryError(f"run history {str(self.path)!r} cannot be read: {exc}") from None


_JSON_FIELDS: dict[str, Any] = {"messages": list, "params": dict, "tool_calls": (list, type(None))}
_TEXT = ("kind", "api_type", "host", "model", "answer")
_OPTIONAL_TEXT = ("finish_reason", "error", "error_message", "notebook", "cell_id", "batch_id",
                  "chat_id", "experiment")
_TOKENS = ("prompt_tokens", "completion_tokens", "cached_tokens", "total_tokens")


def _run(row: sqlite3.Row) -> Run | None:
    """A `Run` from a row, or None when the row does not have the expected shape."""
    try:
        values: dict[str, Any] = dict(row)
        for name, kind in _JSON_FIELDS.items():
            raw = values[name]
            if raw is not None and not isinstance(raw, str):
                return None
            values[name] = json.loads(raw) if raw is not None else None
            if not isinstance(values[name], kind):
                return None
        if not all(isinstance(m, dict) for m in values["messages"]):
            return None
        if not all(isinstance(values[name], str) for name in _TEXT) or \
                not all(isinstance(values[name], (str, type(None))) for name in _OPTIONAL_TEXT):
            return None
        if not all(type(values[name]) in (int, type(None)) for name in (*_TOKENS, "pid")) or \
                type(values["id"]) is not int or values["cached"] not in (0, 1):
            return None
        if not all(type(values[name]) in (int, float) for name in ("time", "latency")) or \
                type(values["cost"]) not in (int, float, type(None)):
            return None
        values["usage"] = {k: values[k] for k in _TOKENS if values[k] is not None}
        values["cached"] = bool(values["cached"])
        return Run(**{k: values[k] for k in FIELDS})
    except (ValueError, TypeError, KeyError):
        return None
