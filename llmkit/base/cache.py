"""Response cache: JSON values in a SQLite-backed `diskcache` folder.

Replaces TinyTroupe's whole-file pickle, which rewrote the entire file on every miss.
Each entry is one row, so a write costs the same at 200 or 5,000 entries, and several
processes may share one folder (SQLite locking, WAL journal).

Values are stored as JSON text, never pickled, and rows that someone else stored as
pickles are refused (a miss plus a `CacheWarning`): opening a shared cache folder can
therefore never run code.

The folder is untrusted input, whoever made it: before diskcache reads ``cache.db`` its schema
is checked and its Settings table repaired (`cache_db._vet`); a row may only name a value file that
diskcache itself would have made inside the folder, anything else is never read, written or
deleted (`cache_db._JSONDisk`); `get` returns only values of a known kind (`cache_entries`).
Imports are checked line by line (shape, nesting, size, encoding) before anything is written.

Entries have a *kind*, told from the stored value's shape by `entry_kind`: ``chat`` (an API chat
completion, with ``choices``), ``embedding`` (``{"embedding": [...]}``), ``tool`` (a pure tool's
result, ``{"tool_result": "..."}``) or ``other``. Only the first three are cached: `set`, `get`
and imports refuse ``other`` values and malformed ones. `stats` counts entries per kind, and
exports carry the kind on every line, so that a reader can handle each kind for what it is.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import diskcache

from .cache_db import _DB_NAME, _SETTINGS, _JSONDisk, _Refused, _vet
from .cache_entries import (
    _DECODER,
    ENTRY_KINDS,
    _dumps,
    _encodable,
    _row,
    _shape_problem,
    cache_key,
    entry_kind,
    read_entries,
)
from .errors import CacheError, CacheWarning

# CacheWarning lives in errors.py's tree (an LLMKitWarning); it is re-exported here, next to the
# cache that gives it.
__all__ = ["ENTRY_KINDS", "CacheWarning", "ResponseCache", "cache_key", "entry_kind", "read_entries"]


class ResponseCache:
    """A persistent mapping from `cache_key` strings to chat answers and embedding entries.

    Safe to share between threads and processes.  ``hits`` and ``misses`` count this
    instance's `get` calls only.  A corrupt database is moved aside and an unusable
    folder replaced by a temporary one, each with a `CacheWarning`.
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.hits = 0
        self.misses = 0
        self._lock = threading.Lock()
        self._cache = self._open(Path(directory))
        self.directory = str(self._cache.directory)

    @staticmethod
    def _connect(folder: str) -> diskcache.Cache:
        repaired = _vet(Path(folder) / _DB_NAME)
        if repaired:
            warnings.warn(f"cache folder {folder!r}: {_DB_NAME} held unusable settings "
                          f"({', '.join(repaired)}); reset them", CacheWarning, stacklevel=4)
        cache = diskcache.Cache.__new__(diskcache.Cache)
        try:
            cache.__init__(folder, disk=_JSONDisk, **_SETTINGS)
        except BaseException:
            cache.close()  # release the file before it is moved aside
            raise
        return cache

    @classmethod
    def _open(cls, folder: Path) -> diskcache.Cache:
        try:
            return cls._connect(str(folder))
        except sqlite3.OperationalError as exc:  # cannot open at all ("unable to open ...")
            problem = f"cannot be used ({exc})"
        except sqlite3.DatabaseError as exc:  # "file is not a database", "malformed"
            stamp = time.strftime("%Y%m%d-%H%M%S")
            try:
                for suffix in ("", "-wal", "-shm"):
                    old = folder / (_DB_NAME + suffix)
                    if old.exists():
                        old.replace(folder / f"{_DB_NAME}{suffix}.corrupt-{stamp}")
                cache = cls._connect(str(folder))
            except (OSError, sqlite3.Error) as exc2:
                problem = f"holds a corrupt {_DB_NAME} ({exc}) that could not be replaced ({exc2})"
            else:
                warnings.warn(
                    f"cache folder {str(folder)!r}: {_DB_NAME} was corrupt ({exc}); moved it to "
                    f"{_DB_NAME}.corrupt-{stamp} and started an empty cache",
                    CacheWarning, stacklevel=3)
                return cache
        except OSError as exc:
            problem = f"cannot be used ({exc})"
        fallback = tempfile.mkdtemp(prefix="llmkit-cache-")
        warnings.warn(f"cache folder {str(folder)!r} {problem}; using an empty temporary cache "
                      f"in {fallback!r} instead", CacheWarning, stacklevel=3)
        return cls._connect(fallback)

    def _lookup(self, key: str) -> dict[str, Any] | None:
        """Read and decode one entry; None if absent or unusable (with a warning)."""
        if not isinstance(key, str):
            raise TypeError(f"cache keys must be str, not {type(key).__name__}")
        try:
            raw = self._cache.get(key, default=None, retry=True)
        except UnicodeEncodeError:  # a key with a lone surrogate: `set` never stores one
            return None
        except (sqlite3.Error, OSError) as exc:
            raise CacheError(f"cannot read cache folder {self.directory!r}: {exc}") from exc
        if raw is None:
            return None
        if isinstance(raw, _Refused):
            problem = f"is stored as {raw.what}, which llmkit refuses to load"
        else:
            try:
                value = _DECODER.decode(raw)
            except (ValueError, RecursionError):
                value = None
            if not isinstance(value, dict):
                problem = "is not a JSON object"
            elif (shape := _shape_problem(value)) is not None:
                problem = f"is {shape}"
            elif "\\ud" in raw and not _encodable(value):  # an escaped lone surrogate (1 µs scan)
                problem = "holds a lone surrogate (such as \\ud800), which is not valid Unicode"
            else:
                return value
        warnings.warn(f"cache entry {key!r} in {self.directory!r} {problem}; treated as a miss",
                      CacheWarning, stacklevel=3)
        return None

    def get(self, key: str) -> dict[str, Any] | None:
        """Return the answer stored under `key`, or None (a miss)."""
        value = self._lookup(key)
        with self._lock:
            if value is None:
                self.misses += 1
            else:
                self.hits += 1
        return value

    def set(self, key: str, value: dict[str, Any]) -> None:
        """Store `value` under `key`.  Raises `CacheError` (storing nothing) if it is not a chat
        answer or an embedding entry, nests more than 64 levels, takes more than 16 MiB as JSON,
        or cannot be written (disk full...).  Tuples come back as lists, as with any JSON."""
        if not isinstance(key, str):
            raise TypeError(f"cache keys must be str, not {type(key).__name__}")
        if not isinstance(value, dict):
            raise CacheError(f"cache values must be dicts, not {type(value).__name__}")
        try:
            row = _row(key, value)
        except ValueError as exc:
            raise CacheError(f"cannot cache {key!r}: {exc}") from None
        self._write([row], "write to")

    def _write(self, rows: list[tuple[str, str]], what: str) -> None:
        """Store `rows` all at once, or leave nothing half-written: on any failure the
        transaction is rolled back and the value files written for it are deleted (diskcache
        writes a value of 32 KiB or more to its file before the row, and leaves the file when
        the row fails, e.g. on a full disk)."""
        disk = self._cache.disk
        written: list[str] = []
        disk.new_files.names = written  # filled by `_JSONDisk.filename`
        try:
            if len(rows) == 1:  # no outer transaction: diskcache deletes the replaced value's
                self._cache.set(*rows[0], retry=True)  # file before the outer COMMIT
            else:
                with self._cache.transact(retry=True):
                    for key, text in rows:
                        self._cache.set(key, text, retry=True)
        except BaseException as exc:
            # Closing this thread's connection rolls back what a failed COMMIT may leave open
            # (diskcache would then retry BEGIN forever); the rows are gone, so are their files.
            self._cache.close()
            for name in written:
                disk.remove(name)
            if isinstance(exc, (sqlite3.Error, OSError)):
                raise CacheError(f"cannot {what} cache folder {self.directory!r}: {exc}") from exc
            raise
        finally:
            disk.new_files.names = None

    def __contains__(self, key: object) -> bool:
        """True if `get(key)` would hit (without counting or warning)."""
        if not isinstance(key, str):
            return False
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CacheWarning)
            return self._lookup(key) is not None

    def __len__(self) -> int:
        return len(self._cache)

    def stats(self) -> dict[str, Any]:
        """Counters of this instance plus the folder's entry count, size on disk and usable
        entries per kind (``kinds``: every name in `ENTRY_KINDS`, zero included).

        Counting kinds reads and parses every entry (measured: 0.4 s at 5,000 entries, half chat
        answers, half 576-number embeddings); ``entries`` counts rows, so it also includes rows
        that cannot be used (refused pickles, values of no known kind).
        """
        kinds = dict.fromkeys(ENTRY_KINDS, 0)
        for _, value in self._items():
            kinds[entry_kind(value)] += 1
        return {"hits": self.hits, "misses": self.misses, "entries": len(self), "kinds": kinds,
                "directory": self.directory, "size_bytes": int(self._cache.volume())}

    def clear(self) -> None:
        """Delete every entry and reset the counters."""
        try:
            self._cache.clear(retry=True)
        except (sqlite3.Error, OSError) as exc:
            raise CacheError(f"cannot clear cache folder {self.directory!r}: {exc}") from exc
        with self._lock:
            self.hits = self.misses = 0

    def _items(self) -> Iterator[tuple[str, dict[str, Any]]]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CacheWarning)
            for key in list(self._cache.iterkeys()):
                value = self._lookup(key) if isinstance(key, str) else None
                if value is not None:
                    yield key, value

    def export_jsonl(self, path: str | os.PathLike[str]) -> dict[str, int]:
        """Write every usable entry as a ``{"key": ..., "kind": ..., "value": ...}`` line,
        atomically (temporary file in the same folder, then `os.replace`).  Entries that
        `import_jsonl` would refuse are left out.

        Returns how many entries of each kind were written (every name in `ENTRY_KINDS`, zero
        included; ``sum(counts.values())`` is the total).
        """
        target = Path(path)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
        counts = dict.fromkeys(ENTRY_KINDS, 0)
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            with open(fd, "w", encoding="utf-8", newline="\n") as out:
                for key, value in self._items():
                    try:
                        _row(key, value)  # the checks `get` skips for speed (depth...)
                    except ValueError:
                        continue
                    kind = entry_kind(value)
                    out.write(_dumps({"key": key, "kind": kind, "value": value}) + "\n")
                    counts[kind] += 1
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, target)
        except (OSError, sqlite3.Error) as exc:
            tmp.unlink(missing_ok=True)
            raise CacheError(f"cannot export the cache to {str(target)!r}: {exc}") from exc
        return counts

    def import_jsonl(self, path: str | os.PathLike[str]) -> int:
        """Load a file written by `export_jsonl` (or a replay recording); returns the count.

        Every line is checked first (`read_entries`): on a bad line, `CacheError` names the
        file and line and nothing is imported.  The entries are then written in one transaction.
        """
        rows = [(key, _dumps(value)) for key, value in read_entries(path)]
        self._write(rows, "import into")
        return len(rows)

    def close(self) -> None:
        """Close the database connection (reopened automatically if used again)."""
        self._cache.close()

    def __enter__(self) -> ResponseCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ResponseCache({self.directory!r}, entries={len(self)})"


