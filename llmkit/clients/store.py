"""Where answers are kept: the response cache, replay recordings and the RECORD file.

`lookup` answers a `Prepared` call without the network (replay, else the cache); `keep` stores a
complete, validated answer. Both read only the `Prepared` record.
"""

from __future__ import annotations

import os
import threading
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..base.errors import CacheError
from . import answers, replay
from .prepare import Prepared, default_cache_dir

__all__ = ["cached_parts", "default_cache_dir", "keep", "lookup", "open_cache"]

if TYPE_CHECKING:
    from ..base.cache import ResponseCache

_lock = threading.Lock()
_caches: dict[Path, ResponseCache] = {}
_by_name: dict[str, ResponseCache] = {}


def open_cache(directory: str | os.PathLike[str] | None = None) -> ResponseCache:
    """The process-wide `ResponseCache` of a folder (the configured one by default)."""
    if isinstance(directory, str):
        found = _by_name.get(directory)  # every call asks: skip the path arithmetic
        if found is not None:
            return found
    if directory is None:
        from ..base.config import resolve
        directory = resolve().cache_dir
    folder = Path(directory or default_cache_dir()).expanduser()
    from ..base.cache import ResponseCache  # diskcache and sqlite3 load with the first cache use
    with _lock:
        store = _caches.get(folder)
        if store is None:
            store = _caches[folder] = ResponseCache(folder)
        if isinstance(directory, str):
            _by_name[directory] = store
        return store


def lookup(p: Prepared) -> dict[str, Any] | None:
    """A replayed or cached answer (None: ask the model). In replay mode a miss raises.

    An embeddings call is answered when every one of its texts is (`Prepared.parts`): the answer
    is then an embeddings list assembled from their vectors, with no usage (nothing was paid)."""
    if p.parts:
        found = [_get(part) for part in p.parts]
        if any(answer is None for answer in found):
            return None
        for part, answer in zip(p.parts, found, strict=True):
            _record(part, answer)  # type: ignore[arg-type]
        return {"object": "list", "model": p.request["model"], "usage": None,
                "data": [{"object": "embedding", "index": i,
                          "embedding": a.get("embedding") if isinstance(a, dict) else None}
                         for i, a in enumerate(found)]}
    answer = _get(p)
    if answer is not None:
        _record(p, answer)
    return answer


def cached_parts(p: Prepared) -> dict[int, Any]:
    """The vectors already kept for the texts of an embeddings call, by position (not recorded:
    `keep` records the whole answer once it is complete)."""
    found = {}
    for i, part in enumerate(p.parts):
        answer = _get(part)
        if isinstance(answer, dict):
            found[i] = answer.get("embedding")
    return found


def _get(p: Prepared) -> dict[str, Any] | None:
    if p.key is None:
        return None
    if p.replay:
        recording = replay.open_recording(p.replay)
        answer = recording.get(p.key)
        if answer is None:
            raise recording.miss(p.public, p.api_type)
        return answer
    return open_cache(p.cache_dir).get(p.key) if p.use_cache else None


def keep(p: Prepared, answer: dict[str, Any]) -> None:
    """Cache a complete answer, and add it to the recording when RECORD is set. An embeddings
    answer is kept as one vector per text."""
    if p.parts:
        for part, vector in zip(p.parts, answers.embedding_vectors(answer, len(p.parts)), strict=True):
            keep(part, {"embedding": vector})
        return
    if p.key is None:
        return
    if p.use_cache:
        try:
            open_cache(p.cache_dir).set(p.key, answer)
        except CacheError as exc:  # a paid answer is returned, whatever the disk says
            from ..base.cache import CacheWarning
            warnings.warn(f"the answer could not be cached, and is returned anyway: {exc}",
                          CacheWarning, stacklevel=4)
    _record(p, answer)


def _record(p: Prepared, answer: dict[str, Any]) -> None:
    """Append to RECORD when set; a failure warns and never costs the caller the answer."""
    if not p.record or p.key is None:
        return
    try:
        replay.append_recording(p.record, p.key, p.public, answer)
    except CacheError as exc:
        warnings.warn(f"{exc}; the answer is returned, but not recorded",
                      replay.RecordingWarning, stacklevel=4)


def _close_caches() -> None:
    """Close every open cache (tests use this between cache folders)."""
    with _lock:
        for store in _caches.values():
            store.close()
        _caches.clear()
        _by_name.clear()
