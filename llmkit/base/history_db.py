"""The run history's store (SQLite): one row per call, full-text search, spend totals.

What was asked is stored once per distinct request (``prompts``, keyed by the call's cache key),
and each distinct answer to it once (``answers``); a run is a small row that references its
answer. Most calls repeat a request (cache hits, re-runs), so a run costs ~25 µs to write
instead of re-encoding and re-indexing its prompt (1 KB of prompt and answer cost ~260 µs in the
full-text index) and the file holds each prompt once. ``texts_fts`` indexes each answer with its
prompt, so search still asks "every word in the prompt or the answer".

WAL journal and a busy timeout make it safe for several kernels at once (readers never block the
writer). Spend is read from a small ``spend`` table (one row per day, model and notebook) updated
in the same transaction as the runs, so totals over a million runs cost a scan of a few hundred
rows, not of the runs. Rows read back are untrusted (another program may have written the file):
a row that does not have the expected shape is left out, never returned.

Schema versions (``PRAGMA user_version``): 1 and 2 kept every run's messages, prompt and answer in
its own row; opening such a file moves them into ``prompts`` and ``answers`` (one of each per old
run, ids kept) and rebuilds the full-text index, once, in one transaction.
"""

from __future__ import annotations

import hashlib
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

__all__ = ["COLUMNS", "VERSION", "HistoryDB", "day_of"]

VERSION = 3
ASKED = ("messages", "prompt", "params")
"""What was asked (JSON messages, their text, JSON parameters): stored once per request."""
RUN_COLUMNS = ("time", "day", "kind", "api_type", "host", "model", "prompt_tokens",
               "completion_tokens", "cached_tokens", "total_tokens", "cost", "latency", "cached",
               "finish_reason", "tool_calls", "error", "error_message", "notebook", "cell_id",
               "batch_id", "chat_id", "experiment", "pid")
COLUMNS = (*RUN_COLUMNS, *ASKED, "answer")
"""The values a recorded row gives (a mapping; ``key``, the call's cache key, is optional: rows
without one are keyed by their messages and parameters, and ``messages``, ``prompt`` and
``params`` are read only when the store has not seen the key)."""

TOTALS = ("runs", "cached_runs", "errors", "unpriced", "prompt_tokens", "completion_tokens",
          "cached_tokens", "total_tokens", "cost")
KNOWN = 1 << 16
"""Requests whose prompt and answer ids a writer remembers (~200 bytes each): past this, a run
looks its request up in the file (~10 µs more)."""

_TABLES = f"""
CREATE TABLE IF NOT EXISTS prompts (
    id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE,
    messages TEXT NOT NULL, prompt TEXT NOT NULL, params TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS answers (
    id INTEGER PRIMARY KEY, prompt_id INTEGER NOT NULL, answer TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS answers_prompt ON answers(prompt_id);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    time REAL NOT NULL, day TEXT NOT NULL, kind TEXT NOT NULL, api_type TEXT NOT NULL,
    host TEXT NOT NULL, model TEXT NOT NULL, prompt_tokens INTEGER, completion_tokens INTEGER,
    cached_tokens INTEGER, total_tokens INTEGER, cost REAL, latency REAL NOT NULL,
    cached INTEGER NOT NULL, finish_reason TEXT, tool_calls TEXT, error TEXT, error_message TEXT,
    notebook TEXT, cell_id TEXT, batch_id TEXT, chat_id TEXT, experiment TEXT, pid INTEGER,
    answer_id INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS runs_time ON runs(time);
CREATE INDEX IF NOT EXISTS runs_answer ON runs(answer_id);
CREATE TABLE IF NOT EXISTS spend (
    day TEXT NOT NULL, model TEXT NOT NULL, notebook TEXT NOT NULL,
    {", ".join(f"{t} {'REAL' if t == 'cost' else 'INTEGER'} NOT NULL DEFAULT 0" for t in TOTALS)},
    PRIMARY KEY (day, model, notebook));
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE VIEW IF NOT EXISTS texts AS
    SELECT a.id AS id, p.prompt AS prompt, a.answer AS answer
    FROM answers a JOIN prompts p ON p.id = a.prompt_id;
CREATE VIRTUAL TABLE IF NOT EXISTS texts_fts USING fts5(
    prompt, answer, content='texts', content_rowid='id');
"""
# Versions 1 and 2: runs held messages, prompt, answer and params; runs_fts indexed each run.
_UPGRADE = f"""
DROP TRIGGER IF EXISTS runs_fts_insert;
DROP TRIGGER IF EXISTS runs_fts_delete;
DROP TABLE IF EXISTS runs_fts;
DROP INDEX IF EXISTS runs_time;
ALTER TABLE runs RENAME TO old_runs;
{_TABLES}
INSERT INTO prompts (id, key, messages, prompt, params)
    SELECT id, 'run:' || id, messages, prompt, params FROM old_runs;
INSERT INTO answers (id, prompt_id, answer) SELECT id, id, answer FROM old_runs;
INSERT INTO runs (id, {", ".join(RUN_COLUMNS)}, answer_id)
    SELECT id, {", ".join(RUN_COLUMNS)}, id FROM old_runs;
DROP TABLE old_runs;
INSERT INTO texts_fts(texts_fts) VALUES ('rebuild');
"""

_RUN = operator.itemgetter(*RUN_COLUMNS)
_ASKED = operator.itemgetter(*ASKED)
_COUNTED = operator.itemgetter(*TOTALS[4:])
_ADD = ", ".join(f"{t} = {t} + excluded.{t}" for t in TOTALS)
_UPSERT = (f"INSERT INTO spend (day, model, notebook, {', '.join(TOTALS)}) "
           f"VALUES ({', '.join('?' * (3 + len(TOTALS)))}) "
           f"ON CONFLICT (day, model, notebook) DO UPDATE SET {_ADD}")
_INSERT_RUN = (f"INSERT INTO runs ({', '.join(RUN_COLUMNS)}, answer_id) "
               f"VALUES ({', '.join('?' * (1 + len(RUN_COLUMNS)))})")
_SUMS = (f"COUNT(*), SUM(cached), SUM(error IS NOT NULL), SUM(cost IS NULL), "
         f"{', '.join(f'TOTAL({t})' for t in TOTALS[4:])}")
_DENSE = 12
"""A search whose words are in more than one text in ``_DENSE`` checks the newest runs one by one
(1M runs: "the", in most texts, 20 ms) instead of gathering every run of every text found (2 ms
for a word in ten texts, ~3.5 µs a text: 170 ms for one in 50,000). Measured on 1M runs: the two
cost the same near one text in eleven; words near that line take 100-200 ms."""
_SELECT = ("SELECT r.*, p.messages, p.prompt, p.params, a.answer FROM runs r "
           "JOIN answers a ON a.id = r.answer_id JOIN prompts p ON p.id = a.prompt_id")


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
        self._known: dict[str, tuple[int, int, int]] = {}  # key -> (prompt id, hash(answer), answer id)
        self._prunes = -1
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
            if self._version() != VERSION:
                self._upgrade()
        except (sqlite3.Error, OSError) as exc:
            raise HistoryError(f"run history {str(self.path)!r} cannot be used: {exc}; move the "
                               "file aside, or set HISTORY_PATH (HISTORY=False turns it off)") from None

    def _version(self) -> int:
        assert self._db is not None
        version = int(self._db.execute("PRAGMA user_version").fetchone()[0])
        if version > VERSION:
            raise HistoryError(f"run history {str(self.path)!r} was written by a newer llmkit "
                               f"(schema {version}); upgrade llmkit, or set HISTORY_PATH")
        return version

    def _upgrade(self) -> None:
        """Create the tables, or move an old file's runs into them, once: the version is read
        again under the write lock, as another process may have done it meanwhile."""
        assert self._db is not None
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            version = self._version()
            old = version < VERSION and db.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'runs'").fetchone()
            if version < VERSION:
                for statement in (_UPGRADE if old else _TABLES).split(";\n"):
                    if statement.strip():
                        db.execute(statement)
                db.execute(f"PRAGMA user_version = {VERSION}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    # -- writing --------------------------------------------------------------------------------

    def insert(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Add rows (mappings with `COLUMNS`, and optionally ``key``) and their spend, in one
        transaction. A row's request and answer are stored only when new to this file."""
        assert self._db is not None
        totals: dict[tuple[str, str, str], list[float]] = {}
        for row in rows:
            group = (row["day"], row["model"], row["notebook"] or "")
            sums = totals.get(group, [0] * len(TOTALS))
            values = (1, row["cached"], row["error"] is not None, row["cost"] is None,
                      *_COUNTED(row))
            totals[group] = [a + (b or 0) for a, b in zip(sums, values, strict=True)]
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            prunes = db.execute("SELECT value FROM meta WHERE name = 'prunes'").fetchone()
            if (prunes[0] if prunes else 0) != self._prunes:  # ids remembered may be gone
                self._known.clear()
                self._prunes = prunes[0] if prunes else 0
            fresh: list[int] = []
            db.executemany(_INSERT_RUN, [(*_RUN(row), self._answer_id(row, fresh)) for row in rows])
            if fresh:
                db.execute("INSERT INTO texts_fts(rowid, prompt, answer) SELECT id, prompt, answer "
                           "FROM texts WHERE id >= ?", (fresh[0],))
            db.executemany(_UPSERT, [(*group, *sums) for group, sums in totals.items()])
            db.execute("COMMIT")
        except BaseException:
            self._known.clear()  # ids given out in this transaction are void
            db.execute("ROLLBACK")
            raise

    def _answer_id(self, row: Mapping[str, Any], fresh: list[int]) -> int:
        """The id of the row's answer to its request, stored first when new (its id added to
        ``fresh``). A repeated request costs a dict lookup; its messages are not read."""
        assert self._db is not None
        db, answer = self._db, row["answer"]
        key = row.get("key") or _key(row)
        known = self._known.get(key)
        if known is not None and known[1] == hash(answer):
            return known[2]
        if known is not None:
            prompt_id = known[0]
        else:
            found = db.execute("SELECT id FROM prompts WHERE key = ?", (key,)).fetchone()
            prompt_id = int(found[0] if found else db.execute(
                "INSERT INTO prompts (key, messages, prompt, params) VALUES (?, ?, ?, ?)",
                (key, *_ASKED(row))).lastrowid or 0)
        found = db.execute("SELECT id FROM answers WHERE prompt_id = ? AND answer = ?",
                           (prompt_id, answer)).fetchone()
        if found:
            answer_id = int(found[0])
        else:
            answer_id = int(db.execute("INSERT INTO answers (prompt_id, answer) VALUES (?, ?)",
                                       (prompt_id, answer)).lastrowid or 0)
            fresh.append(answer_id)
        if len(self._known) >= KNOWN:
            self._known.clear()
        self._known[key] = (prompt_id, hash(answer), answer_id)
        return answer_id

    def prune(self, before: float) -> int:
        """Delete the runs recorded before ``before`` (epoch seconds), their spend, and the
        prompts and answers no run refers to any more; returns how many runs went."""
        assert self._db is not None
        db, cutoff = self._db, day_of(before)
        db.execute("BEGIN IMMEDIATE")
        try:
            gone = db.execute("DELETE FROM runs WHERE time < ?", (before,)).rowcount
            db.execute("CREATE TEMP TABLE IF NOT EXISTS unused (id INTEGER PRIMARY KEY)")
            db.execute("DELETE FROM unused")
            db.execute("INSERT INTO unused SELECT id FROM answers a WHERE NOT EXISTS "
                       "(SELECT 1 FROM runs r WHERE r.answer_id = a.id)")
            db.execute("INSERT INTO texts_fts(texts_fts, rowid, prompt, answer) "
                       "SELECT 'delete', id, prompt, answer FROM texts WHERE id IN unused")
            db.execute("DELETE FROM answers WHERE id IN unused")
            db.execute("DELETE FROM prompts WHERE NOT EXISTS "
                       "(SELECT 1 FROM answers a WHERE a.prompt_id = prompts.id)")
            db.execute("INSERT INTO meta (name, value) VALUES ('prunes', 1) "
                       "ON CONFLICT (name) DO UPDATE SET value = value + 1")
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
        source = "runs r"
        words = (text or "").replace("\x00", " ").split()  # FTS5 strings end at a NUL
        if words:
            query = " ".join('"' + word.replace('"', '""') + '"' for word in words)
            texts = self._rows("SELECT COALESCE(MAX(id), 0) FROM answers", ())
            dense = max(1000, int(texts[0][0] or 0) // _DENSE) if texts else 1000
            found = self._rows("SELECT COUNT(*) FROM (SELECT 1 FROM texts_fts WHERE texts_fts "
                               "MATCH ? LIMIT ?)", (query, dense))
            if found and found[0][0] < dense:  # rarer words: the runs of the texts found
                source = "texts_fts f CROSS JOIN runs r ON r.answer_id = f.rowid"
                where.insert(0, "texts_fts MATCH ?")
                args.insert(0, query)
            else:  # common words: the newest runs, each asked whether its text matches
                where.append("EXISTS (SELECT 1 FROM texts_fts WHERE texts_fts MATCH ? "
                             "AND rowid = r.answer_id)")
                args.append(query)
        order = " ORDER BY r.time DESC, r.id DESC"
        chosen = (f"SELECT r.id FROM {source}" + (" WHERE " + " AND ".join(where) if where else "")
                  + order + (" LIMIT ?" if limit is not None else ""))
        if limit is not None:
            args.append(int(limit))
        sql = f"{_SELECT} WHERE r.id IN ({chosen}){order}"  # ids first: texts only for those shown
        return Runs(run for run in map(_run, self._rows(sql, args)) if run is not None)

    def runs(self) -> Iterator[Run]:
        """Every run, oldest first (for export), read in pages."""
        last = 0
        while True:
            page = self._rows(_SELECT + " WHERE r.id > ? ORDER BY r.id LIMIT 1000", (last,))
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


def _key(row: Mapping[str, Any]) -> str:
    """A request's key when the row gives none (no cache key: caching off, or an embedding)."""
    text = f"{row['messages']}\x00{row['params']}".encode("utf-8", "surrogatepass")
    return "sha256:" + hashlib.sha256(text).hexdigest()


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
