"""Response cache: JSON values in a SQLite-backed `diskcache` folder.

Replaces TinyTroupe's whole-file pickle, which rewrote the entire file on every miss.
Each entry is one row, so a write costs the same at 200 or 5,000 entries, and several
processes may share one folder (SQLite locking, WAL journal).

Values are stored as JSON text, never pickled, and rows that someone else stored as
pickles are refused (a miss plus a `CacheWarning`): opening a shared cache folder can
therefore never run code.

Entries have a *kind*, told from the stored value's shape by `entry_kind`: ``chat`` (an API chat
completion, with ``choices``), ``embedding`` (``{"embedding": [...]}``) or ``other``. `stats`
counts them, and exports carry the kind on every line, so that a reader can handle each kind
for what it is.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import diskcache
from diskcache.core import MODE_PICKLE, MODE_RAW, MODE_TEXT, UNKNOWN

from .errors import CacheError

__all__ = ["ENTRY_KINDS", "CacheWarning", "ResponseCache", "cache_key", "entry_kind", "read_entries"]

_DB_NAME = "cache.db"
# eviction_policy "none": a response cache doubles as a recording, so nothing is
# evicted behind the user's back (use clear()).  sqlite_synchronous=2 (FULL; diskcache's
# default is NORMAL): each commit is fsynced, so a paid-for answer survives a power loss
# too.  Measured (benchmarks/cache_bench.py): 0.3-4 ms per write against 0.1 ms with
# NORMAL, nothing next to the API call that produced it, and the same at any size.
_SETTINGS: dict[str, Any] = {"eviction_policy": "none", "sqlite_synchronous": 2}


# Every kind `entry_kind` can return, in the order stats and exports list them.
ENTRY_KINDS = ("chat", "embedding", "other")


def entry_kind(value: Mapping[str, Any]) -> str:
    """The kind of a stored value, from its shape: ``"chat"`` for a chat completion (it has a
    ``choices`` list), ``"embedding"`` for ``{"embedding": [...]}``, else ``"other"``."""
    if isinstance(value.get("choices"), list):
        return "chat"
    if isinstance(value.get("embedding"), list):
        return "embedding"
    return "other"


class CacheWarning(UserWarning):
    """The cache folder or an entry in it could not be used; llmkit carried on without it."""


class _Refused:
    """What `_JSONDisk` returns instead of unpickling a row."""

    def __init__(self, what: str) -> None:
        self.what = what


class _JSONDisk(diskcache.Disk):  # type: ignore[misc]
    """A `diskcache.Disk` that stores and reads only str keys and str (JSON text) values.

    It never calls pickle: pickled keys or values found in the database come back as
    `_Refused` markers.
    """

    def put(self, key: Any) -> tuple[Any, bool]:
        if type(key) is not str:
            raise TypeError(f"cache keys must be str, not {type(key).__name__}")
        return key, True

    def get(self, key: Any, raw: bool) -> Any:
        return key if raw and type(key) is str else _Refused("a non-text key")

    def store(self, value: Any, read: bool, key: Any = UNKNOWN) -> tuple[Any, ...]:
        if read or type(value) is not str:
            raise TypeError("only JSON text is stored in a ResponseCache")
        return super().store(value, read, key=key)  # type: ignore[no-any-return]

    def fetch(self, mode: int, filename: str | None, value: Any, read: bool) -> Any:
        inside = filename is None or (not os.path.isabs(filename)
                                      and ".." not in Path(filename).parts)
        if mode in (MODE_RAW, MODE_TEXT) and not read and inside:
            result = super().fetch(mode, filename, value, read)
            if type(result) is str:
                return result
        return _Refused("a pickle" if mode == MODE_PICKLE else "not JSON text")


def cache_key(payload: Mapping[str, Any]) -> str:
    """Return the sha256 hex digest of `payload` as canonical JSON.

    Key order does not matter.  The caller chooses what goes in `payload` (model,
    messages, parameters...) and must leave secrets such as API keys out of it: the
    payload is not stored, but anyone can test a guess against the key.
    """
    try:
        text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise CacheError(f"cache key payload is not JSON-serialisable: {exc}") from exc
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


class ResponseCache:
    """A persistent mapping from `cache_key` strings to JSON-serialisable dicts.

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
        except (sqlite3.Error, OSError) as exc:
            raise CacheError(f"cannot read cache folder {self.directory!r}: {exc}") from exc
        if raw is None:
            return None
        if isinstance(raw, _Refused):
            problem = f"is stored as {raw.what}, which llmkit refuses to load"
        else:
            try:
                value = json.loads(raw)
            except ValueError:
                value = None
            if isinstance(value, dict):
                return value
            problem = "is not a JSON object"
        warnings.warn(f"cache entry {key!r} in {self.directory!r} {problem}; treated as a miss",
                      CacheWarning, stacklevel=3)
        return None

    def get(self, key: str) -> dict[str, Any] | None:
        """Return the dict stored under `key`, or None (a miss)."""
        value = self._lookup(key)
        with self._lock:
            if value is None:
                self.misses += 1
            else:
                self.hits += 1
        return value

    def set(self, key: str, value: dict[str, Any]) -> None:
        """Store `value` under `key`.  Raises `CacheError` (storing nothing) if it is not a
        JSON-serialisable dict.  Tuples come back as lists, as with any JSON."""
        if not isinstance(key, str):
            raise TypeError(f"cache keys must be str, not {type(key).__name__}")
        if not isinstance(value, dict):
            raise CacheError(f"cache values must be dicts, not {type(value).__name__}")
        try:
            text = _dumps(value)
        except (TypeError, ValueError, RecursionError) as exc:
            raise CacheError(f"cache value for {key!r} is not JSON-serialisable: {exc}") from exc
        try:
            self._cache.set(key, text, retry=True)
        except (sqlite3.Error, OSError) as exc:
            raise CacheError(f"cannot write to cache folder {self.directory!r}: {exc}") from exc

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
        that cannot be used (refused pickles, values that are not JSON objects).
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
        atomically (temporary file in the same folder, then `os.replace`).

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

        Every line is checked first: on a bad line, `CacheError` names the file and line
        and nothing is imported.  The entries are then written in one transaction.
        """
        rows = [(key, _dumps(value)) for key, value in read_entries(path)]
        try:
            with self._cache.transact(retry=True):
                for key, text in rows:
                    self._cache.set(key, text, retry=True)
        except (sqlite3.Error, OSError) as exc:
            raise CacheError(f"cannot import into cache folder {self.directory!r}: {exc}") from exc
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


_ENTRY_FIELDS = ({"key", "value"}, {"key", "value", "kind", "request"})  # required, allowed


def read_entries(path: str | os.PathLike[str]) -> list[tuple[str, dict[str, Any]]]:
    """The ``(key, value)`` pairs of a JSON Lines export or recording, all checked first.

    Each line is ``{"key": <string>, "value": <object>}``, optionally with ``"kind"`` (as
    `export_jsonl` writes it; it must be the `entry_kind` of the value) and ``"request"`` (what
    was asked, kept for people reading a recording).  A bad line raises `CacheError` naming the
    file and line.
    """
    rows: list[tuple[str, dict[str, Any]]] = []
    try:
        with open(path, encoding="utf-8") as src:
            for number, line in enumerate(src, start=1):
                if not line.strip():
                    continue
                where = f"{os.fspath(path)}, line {number}"
                try:
                    item = json.loads(line)
                except ValueError as exc:
                    raise CacheError(f"{where}: not JSON ({exc})") from exc
                if (not isinstance(item, dict) or not _ENTRY_FIELDS[0] <= set(item) <= _ENTRY_FIELDS[1]
                        or not isinstance(item["key"], str) or not isinstance(item["value"], dict)):
                    raise CacheError(f"{where}: expected an object "
                                     '{"key": <string>, "kind": <string>, "value": <object>} '
                                     '("kind" optional)')
                if "kind" in item and item["kind"] != (shape := entry_kind(item["value"])):
                    raise CacheError(f"{where}: \"kind\" is {item['kind']!r} but the value is "
                                     f"of kind {shape!r} (a chat answer has \"choices\", an "
                                     'embedding is {"embedding": [...]})')
                try:
                    _dumps(item["value"])
                except (ValueError, RecursionError) as exc:  # NaN, too deep
                    raise CacheError(f"{where}: {exc}") from exc
                rows.append((item["key"], item["value"]))
    except (OSError, UnicodeDecodeError) as exc:
        raise CacheError(f"cannot read {os.fspath(path)!r}: {exc}") from exc
    return rows
