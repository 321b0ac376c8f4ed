"""The shared spend ledger (`llmkit.base.ledger`): holds and settles, dead processes' holds, an
untrusted file."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import pytest

from llmkit.base.ledger import Ledger, LedgerError, today


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    return Ledger(tmp_path / "sub" / "ledger.sqlite3")


def test_a_hold_counts_until_it_is_settled_with_what_was_paid(ledger: Ledger) -> None:
    first = ledger.reserve(0.4, 1.0, ttl=60)
    assert first.id is not None and (first.spent, first.held) == (0.0, 0.0)
    assert first.day == today() and ledger.spent() == (0.0, 0.4)
    second = ledger.reserve(0.5, 1.0, ttl=60)
    assert second.id is not None and second.held == pytest.approx(0.4)
    refused = ledger.reserve(0.2, 1.0, ttl=60)  # 0.4 + 0.5 + 0.2 > 1
    assert refused.id is None and refused.held == pytest.approx(0.9)
    ledger.settle(first.id, 0.1)  # it cost less than its worst case
    assert ledger.spent() == (pytest.approx(0.1), pytest.approx(0.5))
    assert ledger.reserve(0.2, 1.0, ttl=60).id is not None
    ledger.settle(second.id, 0.0)  # failed: nothing paid
    assert ledger.spent()[0] == pytest.approx(0.1)


@pytest.mark.parametrize("paid", [-1.0, float("nan"), float("inf")])
def test_a_negative_or_non_finite_amount_is_never_added(ledger: Ledger, paid: float) -> None:
    hold = ledger.reserve(0.5, 1.0, ttl=60)
    assert hold.id is not None
    ledger.settle(hold.id, paid)
    assert ledger.spent() == (0.0, 0.0)


def test_unsettled_calls_are_settled_with_the_next_hold(ledger: Ledger) -> None:
    hold = ledger.reserve(0.5, 1.0, ttl=60)
    assert hold.id is not None
    assert ledger.reserve(0.6, 1.0, ttl=60, settle_first=[(hold.id, 0.3)]).id is not None
    assert ledger.spent() == (pytest.approx(0.3), pytest.approx(0.6))


HOLD_AND_DIE = """
import sys
sys.path.insert(0, {root!r})
from llmkit.base.ledger import Ledger
print(Ledger({path!r}).reserve(0.9, 1.0, ttl=3600).id)
"""


def test_a_hold_of_a_process_that_died_is_dropped(ledger: Ledger) -> None:
    code = HOLD_AND_DIE.format(root=str(Path(__file__).resolve().parents[1]), path=str(ledger.path))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and len(done.stdout.strip()) == 32, done.stderr
    assert ledger.spent() == (0.0, 0.0)  # its process is gone: its 0.9 is not held
    assert ledger.reserve(0.9, 1.0, ttl=3600).id is not None
    assert ledger.spent() == (0.0, pytest.approx(0.9))  # this process is alive: held


def test_a_hold_past_its_expiry_is_dropped(ledger: Ledger) -> None:
    ledger.spent()  # creates the file
    with closing(sqlite3.connect(ledger.path)) as db, db:
        now = time.time()
        db.executemany("INSERT INTO reservations VALUES (?, ?, ?, ?, ?, ?)", [
            ("old", today(), 0.7, "another-host", 1, now - 1),
            ("live", today(), 0.2, "another-host", 1, now + 3600),  # cannot be checked: kept
            ("mine", today(), 0.05, os.uname().nodename, os.getpid(), now - 1)])
    assert ledger.spent() == (0.0, pytest.approx(0.2))


def test_the_ledger_does_not_use_rowids(ledger: Ledger) -> None:
    ledger.spent()
    with closing(sqlite3.connect(ledger.path)) as db:
        tables = db.execute("SELECT sql FROM sqlite_master WHERE type = 'table'").fetchall()
    assert len(tables) == 2 and all("WITHOUT ROWID" in sql for (sql,) in tables)


def test_a_file_that_is_not_a_ledger_raises(ledger: Ledger) -> None:
    ledger.path.parent.mkdir(parents=True)
    ledger.path.write_bytes(b"\x00garbage" * 1000)
    with pytest.raises(LedgerError, match="not a database"):
        ledger.reserve(0.1, 1.0, ttl=60)
    with pytest.raises(LedgerError):
        ledger.settle("x", 0.1)


@pytest.mark.parametrize("planted", ["'a lot'", "-1", "1e999", "NULL"])
def test_an_amount_that_is_not_one_raises(ledger: Ledger, planted: str) -> None:
    hold = ledger.reserve(0.1, 1.0, ttl=60)
    assert hold.id is not None
    with closing(sqlite3.connect(ledger.path)) as db, db:
        db.execute("DROP TABLE reservations")  # NOT NULL aside, a file may hold anything
        db.execute("CREATE TABLE reservations (id TEXT PRIMARY KEY, day TEXT, usd, host TEXT, "
                   "pid INTEGER, expires REAL) WITHOUT ROWID")
        db.execute(f"INSERT INTO reservations VALUES ('x', '{today()}', {planted}, 'h', 1, 1e18)")
    with pytest.raises(LedgerError, match="where an amount in USD belongs"):
        ledger.reserve(0.1, 1.0, ttl=60)


def test_a_folder_where_the_file_belongs_raises(ledger: Ledger) -> None:
    ledger.path.mkdir(parents=True)
    with pytest.raises(LedgerError, match="cannot open it"):
        ledger.reserve(0.1, 1.0, ttl=60)


def test_a_deleted_ledger_starts_afresh_in_every_thread(ledger: Ledger) -> None:
    hold = ledger.reserve(0.5, 1.0, ttl=60)
    assert hold.id is not None
    for suffix in ("", "-wal", "-shm"):
        Path(f"{ledger.path}{suffix}").unlink(missing_ok=True)  # "delete it if it is damaged"
    assert ledger.spent() == (0.0, 0.0) and ledger.path.exists()
    assert ledger.reserve(0.5, 1.0, ttl=60).id is not None
    with closing(sqlite3.connect(ledger.path)) as db:  # written to the file now there
        assert db.execute("SELECT COUNT(*) FROM reservations").fetchone() == (1,)
