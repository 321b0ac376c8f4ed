"""The diskcache folder under a `ResponseCache`, treated as untrusted input.

diskcache trusts its folder: a row names the file that holds its value (and diskcache deletes
that file when the row goes), and the Settings table configures each connection. Anyone who can
write to a shared cache folder could thus make llmkit delete or read any file of the user. Here a
row may only name a value file diskcache itself would have made inside the folder (`_JSONDisk`),
and the database is checked before diskcache opens it (`_vet`).
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import sqlite3
import stat
import tempfile
import threading
from contextlib import closing, suppress
from pathlib import Path
from typing import Any

import diskcache
from diskcache.core import DEFAULT_SETTINGS, METADATA, MODE_PICKLE, MODE_RAW, MODE_TEXT, UNKNOWN

from .cache_entries import _MAX_TEXT

_DB_NAME = "cache.db"
# Every diskcache setting is passed on open, so that none is taken from the Settings table.
# eviction_policy "none": a response cache doubles as a recording, so nothing is
# evicted behind the user's back (use clear()).  sqlite_synchronous=2 (FULL; diskcache's
# default is NORMAL): each commit is fsynced, so a paid-for answer survives a power loss
# too.  Measured (benchmarks/cache_bench.py): 0.3-4 ms per write against 0.1 ms with
# NORMAL, nothing next to the API call that produced it, and the same at any size.
_SETTINGS: dict[str, Any] = {**DEFAULT_SETTINGS, "eviction_policy": "none", "sqlite_synchronous": 2}
# The only value file names diskcache makes (`Disk.filename`): two hex folders, 28 hex digits.
_FILE_NAME = re.compile(r"[0-9a-f]{2}[/\\][0-9a-f]{2}[/\\][0-9a-f]{28}\.val")

class _Refused:
    """What `_JSONDisk` returns instead of unpickling a row."""

    def __init__(self, what: str) -> None:
        self.what = what


class _JSONDisk(diskcache.Disk):
    """A `diskcache.Disk` that stores and reads only str keys and str (JSON text) values.

    It never calls pickle: pickled keys or values found in the database come back as
    `_Refused` markers.  It reads, writes and deletes only value files named as diskcache names
    them, inside the cache folder: a planted row naming ``/home/me/thesis.tex``, ``../..`` or
    ``cache.db`` would otherwise make diskcache delete that file on the next write to its key.
    """

    def __init__(self, directory: str, **kwargs: Any) -> None:
        super().__init__(directory, **kwargs)
        self._root = os.path.realpath(directory)
        self.new_files = threading.local()  # see `ResponseCache._write`

    def _inside(self, filename: Any) -> str | None:
        """The path of a row's value file, or None unless diskcache could have made it here
        (no absolute path, ``..`` or other name, no symbolic link leading out of the folder)."""
        if type(filename) is not str or not _FILE_NAME.fullmatch(filename):
            return None
        path = os.path.join(self._directory, filename)
        real = os.path.realpath(path)
        return path if os.path.dirname(os.path.dirname(os.path.dirname(real))) == self._root else None

    def put(self, key: Any) -> tuple[Any, bool]:
        if type(key) is not str:
            raise TypeError(f"cache keys must be str, not {type(key).__name__}")
        return key, True

    def get(self, key: Any, raw: bool) -> Any:
        return key if raw and type(key) is str else _Refused("a non-text key")

    def store(self, value: Any, read: bool, key: Any = UNKNOWN) -> tuple[Any, ...]:
        if read or type(value) is not str:
            raise TypeError("only JSON text is stored in a ResponseCache")
        return super().store(value, read, key=key)

    def filename(self, key: Any = UNKNOWN, value: Any = UNKNOWN) -> tuple[str, str]:
        name, path = super().filename(key, value)
        if self._inside(name) is None:  # a planted link in place of one of the hex folders
            raise OSError(f"cannot write {name!r}: it would lie outside the cache folder")
        written = getattr(self.new_files, "names", None)
        if written is not None:
            written.append(name)
        return name, path

    def fetch(self, mode: int, filename: str | None, value: Any, read: bool) -> Any:
        if read or mode not in (MODE_RAW, MODE_TEXT):
            return _Refused("a pickle" if mode == MODE_PICKLE else "not JSON text")
        if mode == MODE_RAW:
            return value if type(value) is str else _Refused("not JSON text")
        path = self._inside(filename)
        if path is None:
            return _Refused("a file outside the cache folder's value files")
        # OSError (deleted meanwhile): diskcache answers a miss.  O_NONBLOCK: a planted FIFO
        # must not block the open forever.
        with open(os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)), encoding="utf-8") as src:
            if not stat.S_ISREG(os.fstat(src.fileno()).st_mode):
                return _Refused("a file that is not a regular file")
            try:
                text = src.read(_MAX_TEXT + 1)
            except UnicodeDecodeError:
                return _Refused("a file that is not UTF-8 text")
        return text if len(text) <= _MAX_TEXT else _Refused(f"a file over {_MAX_TEXT >> 20} MiB")

    def remove(self, file_path: Any) -> None:
        """Delete a value file and its emptied hex folders, if it is one of this folder's."""
        path = self._inside(file_path)
        if path is None:
            return
        with suppress(OSError):  # as in diskcache: another process may be deleting it too
            os.remove(path)
        for folder in (os.path.dirname(path), os.path.dirname(os.path.dirname(path))):
            try:
                os.rmdir(folder)
            except OSError:
                break


@functools.cache
def _reference_schema() -> dict[str, str | None]:
    """Name -> SQL of every table, index and trigger diskcache makes with llmkit's settings, read
    once per process from a throwaway cache (6 ms), so that it follows the installed diskcache."""
    folder = tempfile.mkdtemp(prefix="llmkit-schema-")
    try:
        diskcache.Cache(folder, disk=_JSONDisk, **_SETTINGS).close()
        with closing(sqlite3.connect(os.path.join(folder, _DB_NAME))) as con:
            return dict(con.execute("SELECT name, sql FROM sqlite_master").fetchall())
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _settings_fixes(con: sqlite3.Connection, has_cache: bool) -> tuple[dict[Any, Any], list[str]]:
    """Settings rows to rewrite (key -> value; None deletes the row), and the unusable keys."""
    fixes: dict[Any, Any] = {}
    unusable: list[str] = []
    for key, value in con.execute("SELECT key, value FROM Settings").fetchall():
        if key in METADATA:  # counters kept by diskcache's triggers
            if type(value) is int and value >= 0:
                continue
            recount = {"count": "SELECT COUNT(*) FROM Cache",
                       "size": "SELECT MAX(0, CAST(TOTAL(size) AS INTEGER)) FROM Cache"}.get(key)
            fixes[key] = con.execute(recount).fetchone()[0] if recount and has_cache else 0
        elif key in _SETTINGS:
            good = type(value) is type(_SETTINGS[key])
            # sqlite_* rows are run as PRAGMAs by each new connection; diskcache overwrites the
            # others with what llmkit passes.
            if good and (value == _SETTINGS[key] or not key.startswith("sqlite_")):
                continue
            fixes[key] = _SETTINGS[key]
            if good:
                continue
        else:
            fixes[key] = None
        unusable.append(str(key))
    return fixes, unusable


def _vet(db: Path) -> list[str]:
    """Check a ``cache.db`` before diskcache reads it; returns the Settings keys it repaired.

    diskcache trusts its database: each new connection runs ``PRAGMA <name> = <value>`` for every
    ``sqlite_*`` row of the Settings table, and on open it passes ``disk_*`` rows to the Disk and
    sets every other row as an attribute (a planted ``_directory`` row moves the database
    elsewhere); it keeps the tables, indexes and triggers it finds under its names.  So a schema
    object that differs from diskcache's, or a trigger it does not make, raises
    `sqlite3.DatabaseError` (`ResponseCache` then moves the database aside as corrupt), and
    Settings rows llmkit would not write are repaired: unknown keys deleted, ``sqlite_*`` values
    reset, counters recounted.  A sound database is only read.
    """
    if not db.is_file():
        return []
    reference = _reference_schema()
    with closing(sqlite3.connect(db, timeout=60, isolation_level=None)) as con:
        schema = con.execute("SELECT type, name, sql FROM sqlite_master").fetchall()
        odd = sorted(name for kind, name, sql in schema
                     if (reference[name] != sql if name in reference else kind == "trigger"))
        if odd:  # an object missing is fine: diskcache makes it (maybe another process is)
            raise sqlite3.DatabaseError(f"its schema is not diskcache's ({', '.join(odd)})")
        names = {name for _, name, _ in schema}
        if "Settings" not in names or not _settings_fixes(con, "Cache" in names)[0]:
            return []
        con.execute("BEGIN IMMEDIATE")
        fixes, unusable = _settings_fixes(con, "Cache" in names)  # again, under the write lock
        for key, value in fixes.items():
            if value is None:
                con.execute("DELETE FROM Settings WHERE key = ?", (key,))
            else:
                con.execute("UPDATE Settings SET value = ? WHERE key = ?", (value, key))
        con.execute("COMMIT")
    return unusable


