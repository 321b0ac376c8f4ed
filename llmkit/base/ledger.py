"""`Ledger`: money spent per day and money held by calls in flight, shared by every process.

``DAILY_BUDGET_USD`` holds across kernels only if a call's check and its reservation are one
step: four processes that each read "room for one more" and then send overspend together. Here
`Ledger.reserve` reads today's spend and what is held, and records the call's worst case, in one
``BEGIN IMMEDIATE`` transaction of a SQLite file (WAL, busy timeout), so the next process sees it;
`Ledger.settle` swaps the reservation for what the call cost. It is its own small file, not the
run history: it neither reads nor depends on the history (which may be off, or full of planted
rows), and it never relies on rowids (keys are random ids, tables ``WITHOUT ROWID``).

A reservation of a process that died must not hold money forever: it carries an expiry (the
call's longest possible life), and one whose process is gone from this host is dropped at once.

The file is untrusted input: anything that is not a ledger, or an amount that is not a finite,
non-negative number, raises `LedgerError` (the budget then refuses: fail closed). sqlite3 is
imported on first use (``import llmkit`` does not load it).
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Ledger", "LedgerError", "Reservation", "today"]

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS spent (day TEXT PRIMARY KEY, usd REAL NOT NULL) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS reservations (id TEXT PRIMARY KEY, day TEXT NOT NULL, "
    "usd REAL NOT NULL, host TEXT NOT NULL, pid INTEGER NOT NULL, expires REAL NOT NULL) WITHOUT ROWID",
)
_BUSY_MS = 30_000  # waiting for another process's transaction (each takes well under 1 ms)


class LedgerError(Exception):
    """The ledger cannot be read or written (locked too long, read-only, damaged, not a ledger).

    Internal: `llmkit.clients.budget` turns it into a `BudgetExceededError` that says what to do.
    """


@dataclass(frozen=True)
class Reservation:
    """The outcome of `Ledger.reserve`: ``id`` is None when the amount did not fit."""

    id: str | None
    day: str
    spent: float  # USD settled on that day before this call
    held: float  # USD reserved by other calls in flight on that day


def today() -> str:
    """The local date, as the ledger (and the history) count spend by day."""
    return time.strftime("%Y-%m-%d")


class Ledger:
    """The ledger file at ``path`` (created with its folder on first use). Each operation is one
    transaction on the calling thread's own connection: safe from any thread, process or fork."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def reserve(self, usd: float, limit: float, *, ttl: float,
                settle_first: Iterable[tuple[str, float]] = ()) -> Reservation:
        """Hold ``usd`` for a call today if today's spend, what is held and ``usd`` stay within
        ``limit``; calls that were not settled (``settle_first``: (id, paid) pairs, see `settle`)
        are settled in the same transaction. ``ttl``: seconds after which the hold lapses."""
        day, now = today(), time.time()

        def run(db: Any) -> Reservation:
            for rid, paid in settle_first:
                _settle(db, rid, paid)
            _drop_dead(db, now)
            spent = _amount(db.execute("SELECT usd FROM spent WHERE day = ?", (day,)).fetchone())
            held = sum(_amount(row) for row in db.execute(
                "SELECT usd FROM reservations WHERE day = ?", (day,)))
            if spent + held + usd > limit:
                return Reservation(None, day, spent, held)
            rid = os.urandom(16).hex()
            db.execute("INSERT INTO reservations VALUES (?, ?, ?, ?, ?, ?)",
                       (rid, day, float(usd), _HOST, os.getpid(), now + ttl))
            return Reservation(rid, day, spent, held)

        return self._transaction(run)

    def settle(self, rid: str, paid: float) -> None:
        """Drop reservation ``rid`` and add ``paid`` (USD) to the spend of its day (today if it
        lapsed meanwhile). A negative or non-finite amount is never added."""
        self._transaction(lambda db: _settle(db, rid, paid))

    def spent(self, day: str | None = None) -> tuple[float, float]:
        """(USD spent, USD held by calls in flight) on ``day`` (default: today)."""
        day = day or today()

        def run(db: Any) -> tuple[float, float]:
            _drop_dead(db, time.time())
            spent = _amount(db.execute("SELECT usd FROM spent WHERE day = ?", (day,)).fetchone())
            return spent, sum(_amount(row) for row in db.execute(
                "SELECT usd FROM reservations WHERE day = ?", (day,)))

        return self._transaction(run)

    def _transaction(self, run: Any) -> Any:
        import sqlite3
        db = self._connection(sqlite3)
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                result = run(db)
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
            return result
        except sqlite3.Error as exc:
            _forget(self.path)
            raise LedgerError(str(exc)) from None
        except LedgerError:
            _forget(self.path)
            raise

    def _connection(self, sqlite3: Any) -> Any:
        """This thread's open connection to the file, reused while the file stays the same one
        (closing the last connection checkpoints the WAL: ~30 ms a call with one per operation).
        A file deleted or replaced meanwhile is opened anew, so no process writes to a ghost."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            stat = self.path.stat() if self.path.exists() else None
        except OSError as exc:
            raise LedgerError(f"cannot open it: {exc}") from None
        identity = (os.getpid(), None if stat is None else (stat.st_dev, stat.st_ino))
        cached = getattr(_local, "open", {}).get(self.path)
        if cached is not None and cached[0] == identity:
            return cached[1]
        _forget(self.path)
        try:
            db = sqlite3.connect(self.path, timeout=_BUSY_MS / 1000, isolation_level=None,
                                 check_same_thread=False)
        except sqlite3.Error as exc:
            raise LedgerError(f"cannot open it: {exc}") from None
        try:
            db.execute(f"PRAGMA busy_timeout = {_BUSY_MS}")
            if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = NORMAL")
            for statement in _SCHEMA:
                db.execute(statement)
            stat = self.path.stat()
        except (sqlite3.Error, OSError) as exc:
            db.close()
            raise LedgerError(str(exc)) from None
        identity = (os.getpid(), (stat.st_dev, stat.st_ino))
        if not hasattr(_local, "open"):
            _local.open = {}
        _local.open[self.path] = (identity, db)
        return db


_local = threading.local()  # per thread: {path: ((pid, file identity), connection)}


def _forget(path: Path) -> None:
    """Close and drop this thread's connection to ``path`` (after an error, or a changed file)."""
    cached = getattr(_local, "open", {}).pop(path, None)
    if cached is not None and cached[0][0] == os.getpid():
        cached[1].close()


_HOST = os.uname().nodename if hasattr(os, "uname") else os.environ.get("COMPUTERNAME", "")


def _amount(row: Any) -> float:
    """A stored USD amount, checked: the file may have been edited or damaged."""
    if row is None:
        return 0.0
    value = row[0]
    if type(value) not in (int, float) or not math.isfinite(value) or value < 0:
        raise LedgerError(f"it holds {value!r:.40} where an amount in USD belongs")
    return float(value)


def _settle(db: Any, rid: str, paid: float) -> None:
    row = db.execute("SELECT day FROM reservations WHERE id = ?", (rid,)).fetchone()
    db.execute("DELETE FROM reservations WHERE id = ?", (rid,))
    if not (isinstance(paid, (int, float)) and math.isfinite(paid) and paid > 0):
        return
    day = row[0] if row is not None and isinstance(row[0], str) else today()
    db.execute("INSERT INTO spent VALUES (?, ?) ON CONFLICT (day) DO UPDATE SET usd = usd + excluded.usd",
               (day, float(paid)))


def _drop_dead(db: Any, now: float) -> None:
    """Drop reservations past their expiry, and those of processes of this host that are gone."""
    db.execute("DELETE FROM reservations WHERE NOT (expires >= ?)", (now,))
    mine = db.execute("SELECT DISTINCT pid FROM reservations WHERE host = ?", (_HOST,)).fetchall()
    gone = [(pid,) for (pid,) in mine if not _alive(pid)]
    if gone:
        db.executemany("DELETE FROM reservations WHERE host = ? AND pid = ?",
                       [(_HOST, pid) for (pid,) in gone])


def _alive(pid: Any) -> bool:
    if type(pid) is not int or pid <= 0:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # another user's process (PermissionError): alive
    return True
