"""The run history, read back: `history` (search), `spend` (totals), `spent_today` (for the daily
budget). The store is `llmkit.base.history_db`; `llmkit.clients.recorder` writes it, and every
reader waits for it (`flush`) first, so it sees every call made so far in this process.
"""

from __future__ import annotations

import re
import time
from datetime import date, datetime, timedelta
from typing import Any

from ..base.errors import ConfigError
from ..base.runs import BY, Runs, Spend
from .recorder import flush

__all__ = ["history", "history_file", "since_time", "spend", "spent_today"]


def history_file(path: str | None = None) -> str | None:
    if path is not None:
        return path
    from ..base.config import resolve
    from .prepare import history_path
    return history_path(resolve())


def since_time(since: Any) -> float | None:
    """Seconds since the epoch from a datetime, a date (its local midnight), a number (epoch),
    ISO text (``"2026-11-24"``) or an age (``"30m"``, ``"12h"``, ``"7d"``, ``"2w"``)."""
    if since is None or (isinstance(since, (int, float)) and not isinstance(since, bool)):
        return since
    if isinstance(since, datetime):
        return since.timestamp()
    if isinstance(since, date):
        return datetime(since.year, since.month, since.day).timestamp()
    if isinstance(since, timedelta):
        return time.time() - since.total_seconds()
    if isinstance(since, str):
        age = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", since)
        if age:
            unit = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[age.group(2)]
            return time.time() - float(age.group(1)) * unit
        try:
            return datetime.fromisoformat(since.strip()).timestamp()
        except ValueError:
            pass
    raise ConfigError(f"since={since!r} is not valid: expected a datetime, a date, epoch seconds, "
                      f"an ISO date like '2026-11-24', or an age like '12h' or '7d'")


def history(search: str | None = None, *, model: str | None = None, since: Any = None,
            errors: bool | None = None, cached: bool | None = None, limit: int | None = 100,
            path: str | None = None) -> Runs:
    """Recorded runs, newest first: ``search`` finds words in prompts and answers (every word
    must appear); ``model``, ``since``, ``errors`` (True: failures only, False: successes only),
    ``cached`` filter; ``limit=None`` returns all. ``path``: another history file."""
    from ..base.history_db import HistoryDB, check_query
    check_query(search, model, limit)  # before the file is opened: a bad argument is the caller's
    where = history_file(path)
    if where is None:
        return Runs()
    flush()
    db = HistoryDB(where, create=False)
    try:
        return db.search(search, model=model, since=since_time(since), errors=errors,
                         cached=cached, limit=limit)
    finally:
        db.close()


def spend(since: Any = None, by: str = "model", *, path: str | None = None) -> Any:
    """Cost (USD) and tokens per model, day or notebook, since ``since`` (default: ever).

    Returns a `llmkit.base.runs.Spend` table; ``.total`` is the sum. Answers from the cache or a
    recording cost nothing; runs of models with no known price count in ``unpriced``.
    """
    if by not in BY:
        raise ConfigError(f"by={by!r} is not valid: expected one of {', '.join(map(repr, BY))}")
    where = history_file(path)
    rows: list[dict[str, Any]] = []
    if where is not None:
        from ..base.history_db import HistoryDB
        flush()
        db = HistoryDB(where, create=False)
        try:
            rows = db.spend(since_time(since), by)
        finally:
            db.close()
    return Spend(rows, by)


def spent_today(path: str) -> float:
    """USD recorded in the history today (local time), by every process."""
    from ..base.history_db import HistoryDB
    flush()
    db = HistoryDB(path, create=False)
    try:
        start = datetime.combine(date.today(), datetime.min.time()).timestamp()
        return float(sum(row["cost"] for row in db.spend(start, "day")))
    finally:
        db.close()
