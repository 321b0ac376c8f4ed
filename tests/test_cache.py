"""Tests for llmkit.base.cache."""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
from pathlib import Path
from typing import Any

import diskcache
import pytest

from llmkit.base.cache import ENTRY_KINDS, CacheWarning, ResponseCache, cache_key, entry_kind, read_entries
from llmkit.base.errors import CacheError

ANSWER = {"choices": [{"message": {"role": "assistant", "content": "Bonjour — ça va?"}}],
          "usage": {"total_tokens": 12}}
VECTOR = {"embedding": [0.25, -1.5, 3.0]}


def test_cache_key_canonical() -> None:
    a = cache_key({"model": "m", "messages": [{"role": "user", "content": "hi"}], "t": 0.5})
    b = cache_key({"t": 0.5, "messages": [{"content": "hi", "role": "user"}], "model": "m"})
    assert a == b
    assert len(a) == 64 and int(a, 16) >= 0
    assert cache_key({"model": "m", "t": 0.5}) != cache_key({"model": "m", "t": 0.7})
    assert cache_key({"content": "é"}) != cache_key({"content": "e"})


def test_round_trip_and_counters(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path / "c")
    key = cache_key({"prompt": "hello"})
    assert cache.get(key) is None
    assert key not in cache
    cache.set(key, ANSWER)
    assert key in cache
    assert cache.get(key) == ANSWER
    assert cache.get(key) == ANSWER
    assert (cache.hits, cache.misses) == (2, 1)
    stats = cache.stats()
    assert stats["hits"] == 2 and stats["misses"] == 1 and stats["entries"] == 1
    assert stats["kinds"] == {"chat": 1, "embedding": 0, "other": 0}
    assert stats["directory"] == str(tmp_path / "c") and stats["size_bytes"] > 0
    assert len(cache) == 1 and "entries=1" in repr(cache) and str(tmp_path / "c") in repr(cache)
    cache.close()
    reopened = ResponseCache(tmp_path / "c")  # persisted; counters are per instance
    assert reopened.get(key) == ANSWER and (reopened.hits, reopened.misses) == (1, 0)
    reopened.close()


def test_non_serialisable_value_rejected(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path)
    with pytest.raises(CacheError, match=r"not JSON-serialisable.*object"):
        cache.set("k", {"when": object()})
    with pytest.raises(CacheError, match="not JSON-serialisable"):
        cache.set("k", {"x": float("nan")})
    assert len(cache) == 0 and "k" not in cache
    cache.close()


def test_clear_resets_entries_and_counters(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path)
    for i in range(5):
        cache.set(f"k{i}", {"i": i})
    cache.get("k0")
    cache.get("missing")
    cache.clear()
    assert len(cache) == 0 and (cache.hits, cache.misses) == (0, 0)
    assert cache.get("k0") is None
    cache.close()


def test_entry_kind_is_told_from_the_value_shape() -> None:
    assert ENTRY_KINDS == ("chat", "embedding", "other")
    assert entry_kind(ANSWER) == "chat"
    assert entry_kind({"choices": [], "embedding": [1.0]}) == "chat"
    assert entry_kind(VECTOR) == "embedding" and entry_kind({"embedding": []}) == "embedding"
    for other in ({}, {"i": 1}, {"choices": "not a list"}, {"embedding": "not a list"}):
        assert entry_kind(other) == "other", other


def test_stats_count_entries_per_kind(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path)
    assert cache.stats()["kinds"] == {"chat": 0, "embedding": 0, "other": 0}
    for i in range(3):
        cache.set(f"chat{i}", ANSWER)
    cache.set("vec0", VECTOR)
    cache.set("vec1", {"embedding": [1.0]})
    cache.set("odd", {"i": 1})
    stats = cache.stats()
    assert stats["entries"] == 6 and stats["kinds"] == {"chat": 3, "embedding": 2, "other": 1}
    assert list(stats["kinds"]) == list(ENTRY_KINDS)
    assert (cache.hits, cache.misses) == (0, 0)  # counting kinds is not a lookup
    cache.close()


def test_export_import_round_trip(tmp_path: Path) -> None:
    src = ResponseCache(tmp_path / "src")
    entries: dict[str, dict[str, Any]] = {
        cache_key({"i": i}): {"i": i, "text": f"answer {i} ✓"} for i in range(20)}
    entries[cache_key({"chat": 1})] = ANSWER
    entries[cache_key({"embedding": 1})] = VECTOR
    entries[cache_key({"embedding": 2})] = {"embedding": [0.5]}
    for key, value in entries.items():
        src.set(key, value)
    out = tmp_path / "export.jsonl"
    assert src.export_jsonl(out) == {"chat": 1, "embedding": 2, "other": 20}
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(lines) == 23 and all(list(line) == ["key", "kind", "value"] for line in lines)
    assert {line["key"]: (line["kind"], line["value"]) for line in lines} == {
        key: (entry_kind(value), value) for key, value in entries.items()}
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
    dst = ResponseCache(tmp_path / "dst")
    assert dst.import_jsonl(out) == 23
    assert len(dst) == 23 and dst.stats()["kinds"] == src.stats()["kinds"]
    assert all(dst.get(key) == value for key, value in entries.items())
    src.close()
    dst.close()


def test_import_accepts_lines_without_kind_and_recordings(tmp_path: Path) -> None:
    path = tmp_path / "old.jsonl"
    path.write_text(json.dumps({"key": "a", "value": ANSWER}) + "\n"
                    + json.dumps({"key": "b", "request": {"model": "m", "input": "hi"}, "value": VECTOR})
                    + "\n" + json.dumps({"key": "c", "kind": "other", "value": {"i": 1}}) + "\n",
                    encoding="utf-8")
    assert read_entries(path) == [("a", ANSWER), ("b", VECTOR), ("c", {"i": 1})]


@pytest.mark.parametrize(("kind", "value", "shape"), [
    ("embedding", ANSWER, "chat"),
    ("chat", VECTOR, "embedding"),
    ("chat", {"i": 1}, "other"),
    ("tool_step", {"i": 1}, "other"),  # a kind this version does not know
    (None, VECTOR, "embedding"),
])
def test_import_refuses_a_kind_that_contradicts_the_value(
        tmp_path: Path, kind: Any, value: dict[str, Any], shape: str) -> None:
    path = tmp_path / "mixed.jsonl"
    good = json.dumps({"key": "k0", "kind": "chat", "value": ANSWER})
    path.write_text(good + "\n" + json.dumps({"key": "k1", "kind": kind, "value": value}) + "\n",
                    encoding="utf-8")
    cache = ResponseCache(tmp_path / "c")
    with pytest.raises(CacheError, match=rf"mixed\.jsonl, line 2: \"kind\" is {kind!r} but the "
                                         rf"value is of kind '{shape}'"):
        cache.import_jsonl(path)
    assert len(cache) == 0  # all or nothing
    cache.close()


def test_import_bad_line_imports_nothing(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    good = [json.dumps({"key": f"k{i}", "value": {"i": i}}) for i in range(4)]
    path.write_text("\n".join([good[0], good[1], '{"key": "k2", "value": ', good[3]]) + "\n",
                    encoding="utf-8")
    cache = ResponseCache(tmp_path / "c")
    with pytest.raises(CacheError, match=r"bad\.jsonl, line 3"):
        cache.import_jsonl(path)
    assert len(cache) == 0
    path.write_text("\n".join([good[0], good[1], '{"key": "k2", "value": [1]}']), encoding="utf-8")
    with pytest.raises(CacheError, match="line 3"):
        cache.import_jsonl(path)
    assert len(cache) == 0
    cache.close()


class _Evil:
    """Unpickling this creates a folder: the side effect the cache must never trigger."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.mkdir, (self.marker,))


def test_pickle_rows_are_refused(tmp_path: Path) -> None:
    folder = tmp_path / "shared"
    marker = tmp_path / "unpickled"
    cache = ResponseCache(folder)
    cache.set("good", {"ok": True})
    plain = diskcache.Cache(str(folder))  # someone else, writing pickles
    plain.set("evil", _Evil(str(marker)))
    plain.close()
    with pytest.warns(CacheWarning, match="pickle"):
        assert cache.get("evil") is None
    assert not marker.exists()
    assert "evil" not in cache and not marker.exists()
    out = tmp_path / "export.jsonl"
    assert cache.export_jsonl(out) == {"chat": 0, "embedding": 0, "other": 1}
    assert not marker.exists()
    assert cache.stats()["kinds"]["other"] == 1 and not marker.exists()
    assert (cache.hits, cache.misses) == (0, 1) and cache.get("good") == {"ok": True}
    cache.close()
    plain = diskcache.Cache(str(folder))  # the test is meaningful: plain diskcache would run it
    plain.get("evil")
    plain.close()
    assert marker.is_dir()


def _write_many(folder: str, prefix: str, barrier: Any) -> None:
    cache = ResponseCache(folder)
    barrier.wait(timeout=60)  # start writing at the same moment
    for i in range(200):
        cache.set(f"{prefix}-{i}", {"writer": prefix, "i": i, "pad": "x" * 500})
    cache.close()


def test_two_processes_write_concurrently(tmp_path: Path) -> None:
    folder = str(tmp_path / "shared")
    ResponseCache(folder).close()
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=_write_many, args=(folder, name, barrier)) for name in "ab"]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=120)
        assert proc.exitcode == 0
    cache = ResponseCache(folder)
    assert len(cache) == 400
    assert all(cache.get(f"{p}-{i}") == {"writer": p, "i": i, "pad": "x" * 500}
               for p in ("a", "b") for i in range(200))
    cache.close()


def test_corrupt_db_is_moved_aside(tmp_path: Path) -> None:
    folder = tmp_path / "c"
    ResponseCache(folder).close()
    (folder / "cache.db").write_bytes(b"this is not a sqlite database\x00" * 300)
    with pytest.warns(CacheWarning, match="corrupt") as record:
        cache = ResponseCache(folder)
    assert str(folder) in str(record[0].message)
    assert cache.directory == str(folder)
    assert len(list(folder.glob("cache.db.corrupt-*"))) == 1
    cache.set("k", {"v": 1})
    assert cache.get("k") == {"v": 1}
    cache.close()


def test_path_is_a_file_falls_back_to_temp(tmp_path: Path) -> None:
    path = tmp_path / "not-a-folder"
    path.write_text("hello")
    with pytest.warns(CacheWarning, match="temporary") as record:
        cache = ResponseCache(path)
    assert str(path) in str(record[0].message)
    assert cache.directory != str(path) and Path(cache.directory).is_dir()
    cache.set("k", {"v": 1})
    assert cache.get("k") == {"v": 1}
    assert path.read_text() == "hello"
    cache.close()
    shutil.rmtree(cache.directory)
