"""Tests for llmkit.base.cache."""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from contextlib import closing
from pathlib import Path
from typing import Any

import diskcache
import pytest

from llmkit.base.cache import ENTRY_KINDS, CacheWarning, ResponseCache, cache_key, entry_kind, read_entries
from llmkit.base.errors import CacheError

ANSWER = {"choices": [{"message": {"role": "assistant", "content": "Bonjour — ça va?"}}],
          "usage": {"total_tokens": 12}}
VECTOR = {"embedding": [0.25, -1.5, 3.0]}
EMPTY_KINDS = {"chat": 0, "responses": 0, "embedding": 0, "tool": 0, "other": 0}


def chat(text: Any) -> dict[str, Any]:
    return {"choices": [{"message": {"role": "assistant", "content": text}}]}


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
    assert stats["kinds"] == EMPTY_KINDS | {"chat": 1}
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
        cache.set(f"k{i}", chat(i))
    cache.get("k0")
    cache.get("missing")
    cache.clear()
    assert len(cache) == 0 and (cache.hits, cache.misses) == (0, 0)
    assert cache.get("k0") is None
    cache.close()


def test_entry_kind_is_told_from_the_value_shape() -> None:
    assert ENTRY_KINDS == ("chat", "responses", "embedding", "tool", "other")
    assert entry_kind(ANSWER) == "chat"
    assert entry_kind({"choices": [], "embedding": [1.0]}) == "chat"
    assert entry_kind(VECTOR) == "embedding" and entry_kind({"embedding": []}) == "embedding"
    for other in ({}, {"i": 1}, {"choices": "not a list"}, {"embedding": "not a list"}):
        assert entry_kind(other) == "other", other


def test_stats_count_entries_per_kind(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path)
    assert cache.stats()["kinds"] == EMPTY_KINDS
    for i in range(3):
        cache.set(f"chat{i}", ANSWER)
    cache.set("vec0", VECTOR)
    cache.set("vec1", {"embedding": [1.0]})
    with pytest.raises(CacheError, match="neither a chat answer"):
        cache.set("odd", {"i": 1})  # "other" values are not cached
    stats = cache.stats()
    assert stats["entries"] == 5 and stats["kinds"] == EMPTY_KINDS | {"chat": 3, "embedding": 2}
    assert list(stats["kinds"]) == list(ENTRY_KINDS)
    assert (cache.hits, cache.misses) == (0, 0)  # counting kinds is not a lookup
    cache.close()


def test_export_import_round_trip(tmp_path: Path) -> None:
    src = ResponseCache(tmp_path / "src")
    entries: dict[str, dict[str, Any]] = {
        cache_key({"i": i}): {**chat(f"answer {i} ✓"), "i": i} for i in range(20)}
    entries[cache_key({"chat": 1})] = ANSWER
    entries[cache_key({"embedding": 1})] = VECTOR
    entries[cache_key({"embedding": 2})] = {"embedding": [0.5]}
    for key, value in entries.items():
        src.set(key, value)
    out = tmp_path / "export.jsonl"
    assert src.export_jsonl(out) == EMPTY_KINDS | {"chat": 21, "embedding": 2}
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
                    + "\n" + json.dumps({"key": "c", "kind": "chat", "value": chat("x")}) + "\n",
                    encoding="utf-8")
    assert read_entries(path) == [("a", ANSWER), ("b", VECTOR), ("c", chat("x"))]


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
    good = [json.dumps({"key": f"k{i}", "value": chat(i)}) for i in range(4)]
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
    cache.set("good", chat("ok"))
    plain = diskcache.Cache(str(folder))  # someone else, writing pickles
    plain.set("evil", _Evil(str(marker)))
    plain.close()
    with pytest.warns(CacheWarning, match="pickle"):
        assert cache.get("evil") is None
    assert not marker.exists()
    assert "evil" not in cache and not marker.exists()
    out = tmp_path / "export.jsonl"
    assert cache.export_jsonl(out) == EMPTY_KINDS | {"chat": 1}
    assert not marker.exists()
    assert cache.stats()["kinds"]["chat"] == 1 and not marker.exists()
    assert (cache.hits, cache.misses) == (0, 1) and cache.get("good") == chat("ok")
    cache.close()
    plain = diskcache.Cache(str(folder))  # the test is meaningful: plain diskcache would run it
    plain.get("evil")
    plain.close()
    assert marker.is_dir()


def _write_many(folder: str, prefix: str, barrier: Any) -> None:
    cache = ResponseCache(folder)
    barrier.wait(timeout=60)  # start writing at the same moment
    for i in range(200):
        cache.set(f"{prefix}-{i}", {**chat("x" * 500), "writer": prefix, "i": i})
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
    assert all(cache.get(f"{p}-{i}") == {**chat("x" * 500), "writer": p, "i": i}
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
    cache.set("k", ANSWER)
    assert cache.get("k") == ANSWER
    cache.close()


def test_path_is_a_file_falls_back_to_temp(tmp_path: Path) -> None:
    path = tmp_path / "not-a-folder"
    path.write_text("hello")
    with pytest.warns(CacheWarning, match="temporary") as record:
        cache = ResponseCache(path)
    assert str(path) in str(record[0].message)
    assert cache.directory != str(path) and Path(cache.directory).is_dir()
    cache.set("k", ANSWER)
    assert cache.get("k") == ANSWER
    assert path.read_text() == "hello"
    cache.close()
    shutil.rmtree(cache.directory)


# -- the cache folder is untrusted input ---------------------------------------------------------

def _plant(folder: Path, key: str, **columns: Any) -> None:
    """Write the row of `key` straight into cache.db, as anyone who can write the folder can."""
    row = {"key": key, "raw": 1, "store_time": 0.0, "expire_time": None, "access_time": 0.0,
           "access_count": 0, "tag": None, "size": 0, "mode": 1, "filename": None, "value": None,
           **columns}
    with closing(sqlite3.connect(folder / "cache.db")) as con, con:
        con.execute("DELETE FROM Cache WHERE key = ?", (key,))
        con.execute(f"INSERT INTO Cache ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                    tuple(row.values()))


def _leftovers(folder: Path) -> list[str]:
    """Everything in a cache folder but the database: value files and their hex folders."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")
                  if not p.name.startswith("cache.db"))


BIG = chat("y" * 40_000)  # over diskcache's 32 KiB: stored in a value file of its own
HEX = "ab/cd/" + "e" * 28 + ".val"  # a name diskcache could have made


@pytest.mark.parametrize("how", ["absolute", "dotdot", "linked folder", "linked file", "cache.db"])
def test_a_planted_filename_never_reads_writes_or_deletes_outside_the_folder(
        tmp_path: Path, how: str) -> None:
    folder = tmp_path / "deep" / "cache"
    victims = tmp_path / "victims"
    victim = victims / ("cd/" + "e" * 28 + ".val" if how == "linked folder" else "thesis.tex")
    victim.parent.mkdir(parents=True)
    victim.write_text(json.dumps(chat("secret")), encoding="utf-8")  # would even parse as an answer
    cache = ResponseCache(folder)
    cache.set("good", BIG)
    filename = {"absolute": str(victim), "dotdot": "../../victims/thesis.tex",
                "linked folder": HEX, "linked file": HEX, "cache.db": "cache.db"}[how]
    if how == "linked folder":
        (folder / "ab").symlink_to(victims, target_is_directory=True)
    elif how == "linked file":
        (folder / "ab" / "cd").mkdir(parents=True)
        (folder / HEX).symlink_to(victim)
    for key in ("k", "old", "other"):
        _plant(folder, key, mode=3, filename=filename, size=10,
               expire_time=1.0 if key == "old" else None)  # "old": evicted as expired by a write
    with pytest.warns(CacheWarning, match="a file outside the cache folder's value files") as record:
        assert cache.get("k") is None
    assert len(record) == 1 and "k" not in cache
    cache.set("k", ANSWER)  # replaces the row: diskcache deletes the file it named
    cache.set("k2", BIG)  # culls "old": diskcache deletes the file it named
    assert cache.get("k") == ANSWER and "old" not in cache and len(cache) == 4
    cache.clear()  # deletes the file of every row
    assert victim.read_text(encoding="utf-8") == json.dumps(chat("secret"))
    assert len(cache) == 0 and (folder / "cache.db").is_file()
    cache.set("again", BIG)
    assert cache.get("again") == BIG
    cache.close()


@pytest.mark.parametrize(("key", "value", "warns"), [
    ("size_limit", "zzz", True),
    ("cull_limit", "zzz", True),  # every write: "datatype mismatch"
    ("eviction_policy", "bogus", False),  # overridden by llmkit's own, nothing to warn about
    ("statistics", "zzz", True),
    ("count", "zzz", True),
    ("size", -5, True),
    ("sqlite_mmap_size", "1; DROP TABLE Cache", True),  # run as a PRAGMA by each connection
    ("sqlite_query_only", 1, True),  # makes the database read-only
    ("sqlite_synchronous", 0, False),  # a setting llmkit overrides: reset quietly
    ("disk_min_file_size", "zzz", True),  # raw TypeError on every set
    ("disk_foo", 1, True),  # raw TypeError on open
    ("_directory", "ELSEWHERE", True),  # moved the database into another folder
])
def test_planted_settings_are_repaired_on_open(tmp_path: Path, key: str, value: Any, warns: bool) -> None:
    folder, elsewhere = tmp_path / "c", tmp_path / "elsewhere"
    elsewhere.mkdir()
    with ResponseCache(folder) as cache:
        cache.set("a", ANSWER)
        cache.set("big", BIG)
    with closing(sqlite3.connect(folder / "cache.db")) as con, con:
        con.execute("INSERT OR REPLACE INTO Settings VALUES (?, ?)",
                    (key, str(elsewhere) if value == "ELSEWHERE" else value))
    if warns:
        with pytest.warns(CacheWarning, match=rf"unusable settings \({key}\); reset them"):
            cache = ResponseCache(folder)
    else:
        cache = ResponseCache(folder)
    assert cache.get("a") == ANSWER and cache.get("big") == BIG  # repaired, not moved aside
    cache.set("b", VECTOR)
    assert len(cache) == 3 and cache.stats()["kinds"] == EMPTY_KINDS | {"chat": 2, "embedding": 1}
    cache.clear()
    assert len(cache) == 0 and list(elsewhere.iterdir()) == [] and not list(folder.glob("*.corrupt-*"))
    cache.close()
    ResponseCache(folder).close()  # repaired for good: no second warning


@pytest.mark.parametrize("sql", [
    "CREATE TRIGGER evil AFTER INSERT ON Cache BEGIN UPDATE Cache SET filename = '/etc/passwd'; END",
    "DROP TRIGGER Settings_count_insert; CREATE TRIGGER Settings_count_insert AFTER INSERT ON Cache "
    "BEGIN UPDATE Settings SET value = 'zzz' WHERE key = 'count'; END",
    "DROP INDEX Cache_key_raw; CREATE INDEX Cache_key_raw ON Cache(key)",  # duplicates allowed
])
def test_a_planted_schema_is_moved_aside(tmp_path: Path, sql: str) -> None:
    folder = tmp_path / "c"
    ResponseCache(folder).close()
    with closing(sqlite3.connect(folder / "cache.db")) as con:
        con.executescript(sql)
    with pytest.warns(CacheWarning, match=r"was corrupt \(its schema is not diskcache's"):
        cache = ResponseCache(folder)
    assert len(list(folder.glob("cache.db.corrupt-*"))) == 1
    cache.set("k", ANSWER)
    assert cache.get("k") == ANSWER and len(cache) == 1
    cache.close()


# -- values: imported, set and read back ---------------------------------------------------------

DEEP = "[" * 100_000 + "]" * 100_000  # RecursionError in json
NESTED_70 = "[" * 70 + "]" * 70  # parsed, but deeper than llmkit stores


@pytest.mark.parametrize(("line", "message"), [
    ('{"key": "k", "value": {"choices": ' + DEEP + "}}", "the value is nested more than 64 levels deep"),
    ('{"key": "k", "value": {"choices": [{"message": {"content": ' + NESTED_70 + "}}]}}",
     "the value is nested more than 64 levels deep"),
    ('{"key": "k", "value": {"choices": [{"message": {"content": "\\ud800"}}]}}',
     r"the value holds a lone surrogate \(such as \\ud800\)"),
    ('{"key": "k\\udc00", "value": {"embedding": [1.0]}}', "the key holds a lone surrogate"),
    ('{"key": "k", "value": {"choices": "zzz"}}', "the value is neither a chat answer"),
    ('{"key": "k", "value": {}}', "the value is neither a chat answer .* the only kinds llmkit caches"),
    ('{"key": "k", "kind": "other", "value": {"i": 1}}', "the value is neither a chat answer"),
    ('{"key": "k", "value": {"choices": []}}', "the value is a malformed chat answer"),
    ('{"key": "k", "value": {"choices": [{"message": "hi"}]}}', "the value is a malformed chat answer"),
    ('{"key": "k", "value": {"choices": [{}, {"message": {}}]}}', "the value is a malformed chat answer"),
    ('{"key": "k", "value": {"embedding": [1.0, "a"]}}', "the value is a malformed embedding entry"),
    ('{"key": "k", "value": {"embedding": [true]}}', "the value is a malformed embedding entry"),
    ('{"key": "k", "value": {"embedding": []}}', "the value is a malformed embedding entry"),
    ('{"key": "k", "value": {"embedding": [1.0], "extra": 1}}', "the value is a malformed embedding entry"),
    ('{"key": "k", "value": {"embedding": [NaN]}}', r"not JSON \(NaN is not a JSON number\)"),
    (b'{"key": "k", "value": {"choices": "\xff"}}', "not JSON .*utf-8"),
    ('{"key": "k", "value": {"choices": [{"message": {"content": "' + "x" * 2**24 + '"}}]}}',
     "the line is longer than 16 MiB"),
], ids=["100000 deep", "70 deep", "surrogate", "surrogate key", "choices zzz", "empty", "other",
        "no choices", "message text", "choice without message", "string in vector", "bool in vector",
        "empty vector", "extra key", "NaN", "not UTF-8", "over 16 MiB"])
def test_import_refuses_hostile_lines_naming_file_and_line(
        tmp_path: Path, line: str | bytes, message: str) -> None:
    path = tmp_path / "hostile.jsonl"
    path.write_bytes(json.dumps({"key": "good", "value": ANSWER}).encode() + b"\n"
                     + (line if isinstance(line, bytes) else line.encode()) + b"\n")
    cache = ResponseCache(tmp_path / "c")
    with pytest.raises(CacheError, match=rf"hostile\.jsonl, line 2: {message}"):
        cache.import_jsonl(path)
    assert len(cache) == 0  # all or nothing
    cache.close()


def test_set_refuses_what_import_would_refuse(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path)
    nested: Any = ["end"]
    for _ in range(70):
        nested = [nested]
    for value, message in [
            ({"i": 1}, "neither a chat answer"),
            ({"choices": [{"message": None}]}, "a malformed chat answer"),
            ({"embedding": [1.0, None]}, "a malformed embedding entry"),
            (chat(nested), "nested more than 64 levels deep"),
            (chat("\ud800"), "lone surrogate"),
            (chat("\udc00" * 40_000), "lone surrogate")]:  # a file value: nothing half-written
        with pytest.raises(CacheError, match=f"cannot cache 'k': the value .*{message}"):
            cache.set("k", value)
    with pytest.raises(CacheError, match="the key holds a lone surrogate"):
        cache.set("k\ud800", ANSWER)
    assert len(cache) == 0 and _leftovers(Path(cache.directory)) == []
    assert cache.get("k\ud800") is None  # a key that cannot be stored is a plain miss
    cache.close()


@pytest.mark.parametrize(("text", "problem"), [
    ('{"choices": "zzz"}', "is neither a chat answer"),
    ("{}", "is neither a chat answer"),
    ('{"i": 1}', "is neither a chat answer"),
    ('{"choices": [{"message": "hi"}]}', "is a malformed chat answer"),
    ('{"embedding": ["a"]}', "is a malformed embedding entry"),
    ('{"embedding": [NaN]}', "is not a JSON object"),
    ("[1]", "is not a JSON object"),
    ('{"choices": ' + DEEP + "}", "is not a JSON object"),  # RecursionError when parsed
    ('{"choices": [{"message": {"content": "\\ud800"}}]}', "holds a lone surrogate"),
], ids=["choices zzz", "empty", "other", "message text", "string in vector", "NaN", "list", "deep",
        "surrogate"])
def test_a_planted_value_of_no_known_shape_is_a_miss(tmp_path: Path, text: str, problem: str) -> None:
    cache = ResponseCache(tmp_path)
    cache.set("good", ANSWER)
    _plant(tmp_path, "k", value=text)
    with pytest.warns(CacheWarning, match=f"cache entry 'k' in .* {problem}") as record:
        assert cache.get("k") is None
    assert len(record) == 1 and (cache.hits, cache.misses) == (0, 1) and "k" not in cache
    assert cache.stats()["kinds"] == EMPTY_KINDS | {"chat": 1}
    assert cache.export_jsonl(tmp_path / "out.jsonl") == EMPTY_KINDS | {"chat": 1}
    cache.close()


def test_a_planted_value_deeper_than_import_allows_is_not_exported(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path / "c")
    _plant(tmp_path / "c", "k",
           value='{"choices": [{"message": {"content": ' + NESTED_70 + "}}]}")
    assert cache.get("k") is not None  # `get` checks the top levels only, for speed
    out = tmp_path / "out.jsonl"
    assert cache.export_jsonl(out) == EMPTY_KINDS
    assert out.read_text() == ""
    cache.close()


_DISK_FULL = """
import os, resource, signal, sys
from pathlib import Path
from llmkit.base.cache import ResponseCache
from llmkit.base.errors import CacheError

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
folder = Path(sys.argv[1])
cache = ResponseCache(folder)
for i in range(20):  # stored in the row: the journal grows, no value file
    cache.set(f"fill{i}", {"choices": [{"message": {"content": str(i) * 8000}}]})
journal = (folder / "cache.db-wal").stat().st_size
assert journal > 300_000, journal
big = {"choices": [{"message": {"content": "y" * 100_000}}]}  # its own value file
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
# 16 KB: the value file fails half-written.  150 KB: the value file is written whole, then
# SQLite fails to append to its journal, so the row is rolled back.
for limit in (16_000, 150_000):
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        cache.set("big", big)
    except CacheError as exc:
        print(limit, exc)
    else:
        raise AssertionError("no CacheError at %d" % limit)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    left = sorted(str(p) for p in folder.rglob("*") if not p.name.startswith("cache.db"))
    assert left == [], left
    assert "big" not in cache and len(cache) == 20
cache.set("big", big)  # the cache still works
assert cache.get("big") == big and cache.get("fill3")["choices"][0]["message"]["content"][0] == "3"
cache.close()
print("ok")
"""


def test_a_full_disk_during_set_leaves_nothing_half_written(tmp_path: Path) -> None:
    """A real failing write: RLIMIT_FSIZE in a child process makes writes fail with EFBIG."""
    pytest.importorskip("resource")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(_DISK_FULL), str(tmp_path / "c")],
                          capture_output=True, text=True, env=env, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("16000 cannot write to cache folder") and "File too large" in lines[0]
    assert lines[1].startswith("150000 cannot write to cache folder") and lines[-1] == "ok"


def test_read_entries_can_skip_bad_lines_and_say_which(tmp_path: Path) -> None:
    path = tmp_path / "merged.jsonl"
    good = [json.dumps({"key": k, "value": chat(k)}) for k in ("a", "b", "c", "d")]
    huge = '{"key": "h", "value": {"choices": [{"message": {"content": "' + "x" * 2**24 + '"}}]}}'
    path.write_text("\n".join([
        good[0], "<<<<<<< HEAD", good[1], "=======", huge, good[2],
        '{"key": "w", "value": {"not": "an answer"}}', ">>>>>>> theirs", good[3], '{"key": "cut", "val',
    ]), encoding="utf-8")
    with pytest.raises(CacheError, match=r"merged\.jsonl, line 2: not JSON"):
        read_entries(path)  # strict by default: an import is all or nothing
    bad: list[str] = []
    assert read_entries(path, bad=bad) == [(k, chat(k)) for k in "abcd"]
    assert [problem.split(":")[0] for problem in bad] == [
        f"{path}, line {n}" for n in (2, 4, 5, 7, 8, 10)]
    assert "longer than 16 MiB" in bad[2] and "neither a chat answer" in bad[3]
