"""The run history's SQLite store (`llmkit.base.history_db`) on its own: rows read back are
untrusted, spend totals agree with the runs, prune keeps them in step."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from llmkit.base.errors import HistoryError
from llmkit.base.history_db import ASKED, RUN_COLUMNS, VERSION, HistoryDB, day_of
from llmkit.base.runs import Run, Runs, Spend

DAY = 86400.0


def row(t: float | None = None, **values: Any) -> dict[str, Any]:
    """A recorded row as the recorder builds it."""
    t = time.time() if t is None else t
    base: dict[str, Any] = {
        "time": t, "day": day_of(t), "kind": "chat", "api_type": "openai", "host": "api.example",
        "model": "gpt-4o-mini", "messages": json.dumps([{"role": "user", "content": "hello"}]),
        "prompt": "hello", "answer": "hi there", "params": "{}", "prompt_tokens": 10,
        "completion_tokens": 5, "cached_tokens": None, "total_tokens": 15, "cost": 0.001,
        "latency": 0.2, "cached": 0, "finish_reason": "stop", "tool_calls": None, "error": None,
        "error_message": None, "notebook": None, "cell_id": None, "batch_id": None,
        "chat_id": None, "experiment": None, "pid": 1}
    base.update(values)
    if "messages" in values and "prompt" not in values and isinstance(values["messages"], str):
        base["prompt"] = " ".join(m.get("content", "") for m in json.loads(values["messages"]))
    return base


@pytest.fixture
def db(tmp_path: Path) -> Iterator[HistoryDB]:
    store = HistoryDB(tmp_path / "h.sqlite3")
    yield store
    store.close()


def test_rows_come_back_as_runs_newest_first(db: HistoryDB) -> None:
    now = time.time()
    db.insert([row(now - 10, answer="older"), row(now, answer="newer", error="ServerError",
                                                   error_message="boom", cost=None)])
    newer, older = db.search()
    assert isinstance(newer, Run) and (newer.answer, older.answer) == ("newer", "older")
    assert newer.usage == {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
    assert newer.cost is None and newer.error == "ServerError" and newer.cached is False
    assert db.count() == 2
    assert [r.answer for r in db.runs()] == ["older", "newer"]  # export: oldest first


def test_the_database_is_wal(db: HistoryDB, tmp_path: Path) -> None:
    db.insert([row()])
    mode = sqlite3.connect(tmp_path / "h.sqlite3").execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_runs_are_read_in_pages(db: HistoryDB) -> None:
    db.insert([row(answer=f"answer {i}") for i in range(2500)])
    exported = list(db.runs())
    assert len(exported) == 2500 and exported[-1].answer == "answer 2499"
    assert len({r.id for r in exported}) == 2500


@pytest.mark.parametrize("bad", [
    {"messages": "not json"}, {"messages": '{"a": 1}'}, {"messages": "[1, 2]"},
    {"params": "[]"}, {"params": "{broken"}, {"tool_calls": '"text"'}, {"model": b"m"},
    {"answer": b"a"}, {"time": "yesterday"}, {"latency": "slow"}, {"cost": "free"},
    {"host": b"h"}, {"cached": "yes"}, {"cached": 2.5}, {"error": b"e"}, {"finish_reason": b"f"},
    {"batch_id": b"b"}, {"messages": b"[]"}, {"pid": "me"}, {"prompt_tokens": "many"},
])
def test_rows_of_the_wrong_shape_are_left_out(db: HistoryDB, tmp_path: Path, bad: dict[str, Any]) -> None:
    db.insert([row(answer="good one")])
    db.insert([row(answer="bad one", messages=json.dumps([{"role": "user", "content": "bad"}]))])
    raw = sqlite3.connect(tmp_path / "h.sqlite3", isolation_level=None)
    ((run_id, answer_id, prompt_id),) = raw.execute(
        "SELECT r.id, a.id, a.prompt_id FROM runs r JOIN answers a ON a.id = r.answer_id "
        "WHERE a.answer = 'bad one'").fetchall()
    (name, value), = bad.items()
    table, where = (("prompts", prompt_id) if name in ASKED else ("answers", answer_id)
                    if name == "answer" else ("runs", run_id))
    raw.execute(f"UPDATE {table} SET {name} = ? WHERE id = ?", (value, where))
    raw.close()
    assert [r.answer for r in db.search()] == ["good one"]
    if "answer" not in bad:
        assert [r.answer for r in db.search("one")] == ["good one"]
    assert [r.answer for r in db.runs()] == ["good one"]


def test_a_run_whose_prompt_or_answer_is_gone_is_left_out(db: HistoryDB, tmp_path: Path) -> None:
    db.insert([row(answer="kept"), row(answer="orphan one", messages='[{"content": "x"}]'),
               row(answer="orphan two", messages='[{"content": "y"}]')])
    raw = sqlite3.connect(tmp_path / "h.sqlite3", isolation_level=None)
    raw.execute("DELETE FROM answers WHERE answer = 'orphan one'")
    raw.execute("DELETE FROM prompts WHERE messages = '[{\"content\": \"y\"}]'")
    raw.close()
    assert [r.answer for r in db.search()] == ["kept"] and db.count() == 3


def test_a_request_is_stored_once_and_each_answer_to_it_once(db: HistoryDB, tmp_path: Path) -> None:
    """Hits repeat a request and its answer: a run is then a small row (its messages are not
    even read: the recorder encodes them only when asked)."""
    class Lazy(dict[str, Any]):
        asked = 0

        def __missing__(self, name: str) -> Any:
            Lazy.asked += 1
            return row()[name]

    def lazy(answer: str) -> Lazy:
        values = Lazy({k: v for k, v in row(answer=answer).items() if k not in ASKED})
        values["key"] = "k1"
        return values

    db.insert([lazy("first")])
    asked = Lazy.asked
    assert asked == len(ASKED)
    db.insert([lazy("first"), lazy("first")])
    db.insert([lazy("second")])  # another answer to the same request (sampling, cache off)
    assert Lazy.asked == asked
    db.insert([row(answer="first")])  # no key: keyed by its messages and parameters
    db.insert([row(answer="first")])
    raw = sqlite3.connect(tmp_path / "h.sqlite3")
    counts = [raw.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
              for t in ("runs", "prompts", "answers")]
    raw.close()
    assert counts == [6, 2, 3]
    assert [r.answer for r in db.search("first")] == ["first"] * 5
    assert [r.answer for r in db.search("second")] == ["second"]
    assert {tuple(r.messages) == ({"role": "user", "content": "hello"},) for r in db.search()} == {True}
    reader = HistoryDB(tmp_path / "h.sqlite3")  # another process: nothing remembered
    reader.insert([lazy("first")])
    assert Lazy.asked == asked and reader.count() == 7
    reader.close()


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "new.sqlite3"
    raw = sqlite3.connect(path)
    raw.execute(f"PRAGMA user_version = {VERSION + 1}")
    raw.close()
    with pytest.raises(HistoryError, match=r"newer llmkit.*upgrade llmkit, or set HISTORY_PATH"):
        HistoryDB(path)


OLD_COLUMNS = (*RUN_COLUMNS[:6], "messages", "prompt", "answer", "params", *RUN_COLUMNS[6:-1])  # no "asked"


@pytest.mark.parametrize("version", [1, 2])
def test_an_old_file_is_upgraded(tmp_path: Path, version: int) -> None:
    """Versions 1 and 2 kept each run's messages, prompt and answer in its own row (version 1
    kept the index in step with triggers): they move into prompts and answers, once."""
    path = tmp_path / "old.sqlite3"
    raw = sqlite3.connect(path, isolation_level=None)
    raw.executescript(f'''
        CREATE TABLE runs (id INTEGER PRIMARY KEY, {", ".join(OLD_COLUMNS)});
        CREATE INDEX runs_time ON runs(time);
        CREATE TABLE spend (day TEXT NOT NULL, model TEXT NOT NULL, notebook TEXT NOT NULL,
            runs INTEGER NOT NULL DEFAULT 0, cached_runs INTEGER NOT NULL DEFAULT 0,
            errors INTEGER NOT NULL DEFAULT 0, unpriced INTEGER NOT NULL DEFAULT 0,
            prompt_tokens INTEGER NOT NULL DEFAULT 0, completion_tokens INTEGER NOT NULL DEFAULT 0,
            cached_tokens INTEGER NOT NULL DEFAULT 0, total_tokens INTEGER NOT NULL DEFAULT 0,
            cost REAL NOT NULL DEFAULT 0, PRIMARY KEY (day, model, notebook));
        CREATE VIRTUAL TABLE runs_fts USING fts5(prompt, answer, content='runs', content_rowid='id');
        CREATE TRIGGER runs_fts_insert AFTER INSERT ON runs BEGIN
            INSERT INTO runs_fts(rowid, prompt, answer) VALUES (new.id, new.prompt, new.answer);
        END;
        PRAGMA user_version = {version};''')
    old = [row(time.time() - 40 * DAY, answer="written by an old version", cost=8.0),
           row(time.time() - 1 * DAY, answer="recent old words", error="ServerError")]
    for values in old:
        raw.execute(f"INSERT INTO runs ({', '.join(OLD_COLUMNS)}) "
                    f"VALUES ({', '.join('?' * len(OLD_COLUMNS))})", tuple(values[c] for c in OLD_COLUMNS))
    raw.execute("INSERT INTO spend (day, model, notebook, runs, cost) VALUES (?, 'gpt-4o-mini', '', 2, 8)",
                (old[0]["day"],))
    raw.close()
    db = HistoryDB(path)
    db.insert([row(answer="written by this version")])
    assert [r.answer for r in db.search("written")] == ["written by this version",
                                                        "written by an old version"]
    assert [(r.answer, r.error, r.messages) for r in db.runs()][:2] == [
        ("written by an old version", None, [{"role": "user", "content": "hello"}]),
        ("recent old words", "ServerError", [{"role": "user", "content": "hello"}])]
    assert db.prune(time.time() - 30 * DAY) == 1
    assert [r.answer for r in db.search("written")] == ["written by this version"]
    assert [r.answer for r in db.search("old")] == ["recent old words"]
    db.close()
    raw = sqlite3.connect(path)
    assert raw.execute("PRAGMA user_version").fetchone()[0] == VERSION
    raw.execute("INSERT INTO texts_fts(texts_fts) VALUES ('integrity-check')")
    assert raw.execute("SELECT COUNT(*) FROM prompts").fetchone()[0] == 2
    raw.close()
    HistoryDB(path).close()  # opened again: nothing to do


def test_prune_leaves_no_unused_prompts_or_answers(db: HistoryDB, tmp_path: Path) -> None:
    now = time.time()
    db.insert([row(now - 40 * DAY, answer="old"), row(now - 40 * DAY, answer="shared"),
               row(now, answer="shared")])
    assert db.prune(now - 30 * DAY) == 2
    raw = sqlite3.connect(tmp_path / "h.sqlite3")
    assert [a for (a,) in raw.execute("SELECT answer FROM answers")] == ["shared"]
    assert raw.execute("SELECT COUNT(*) FROM prompts").fetchone()[0] == 1
    raw.execute("INSERT INTO texts_fts(texts_fts) VALUES ('integrity-check')")
    raw.close()
    assert db.search("old") == [] and [r.answer for r in db.search("shared")] == ["shared"]
    db.insert([row(answer="old")])  # ids this writer remembered from before the prune are not used
    assert [r.answer for r in db.search("old")] == ["old"]


def test_a_missing_file_is_not_created_for_reading(tmp_path: Path) -> None:
    path = tmp_path / "none" / "h.sqlite3"
    reader = HistoryDB(path, create=False)
    assert reader.search() == [] and reader.spend() == [] and reader.count() == 0
    assert list(reader.runs()) == []
    assert not path.parent.exists()


def test_garbage_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "garbage.sqlite3"
    path.write_bytes(b"\x00garbage" * 1000)
    with pytest.raises(HistoryError, match=r"cannot be used.*HISTORY_PATH"):
        HistoryDB(path)


def totals(store: HistoryDB, since: float | None = None, by: str = "model") -> dict[Any, dict[str, Any]]:
    return {r[by]: r for r in store.spend(since, by)}


def test_spend_agrees_with_the_runs(db: HistoryDB) -> None:
    now = time.time()
    db.insert([row(now, cost=0.5, notebook="a.ipynb"),
               row(now, cost=0.25, model="gpt-4o", cached_tokens=3),
               row(now, cost=0.0, cached=1),
               row(now, cost=None, model="local-thing", error="ServerError"),
               row(now - 3 * DAY, cost=1.0)])
    by_model = totals(db)
    assert by_model["gpt-4o-mini"]["runs"] == 3 and by_model["gpt-4o-mini"]["cost"] == 1.5
    assert by_model["gpt-4o-mini"]["cached_runs"] == 1
    assert by_model["gpt-4o"]["cached_tokens"] == 3
    assert by_model["local-thing"]["unpriced"] == 1 and by_model["local-thing"]["errors"] == 1
    assert by_model["local-thing"]["cost"] == 0
    assert totals(db, by="notebook")["a.ipynb"]["cost"] == 0.5
    assert totals(db, by="notebook")[""]["runs"] == 4
    assert set(totals(db, by="day")) == {day_of(now), day_of(now - 3 * DAY)}
    recent = totals(db, now - DAY)
    assert recent["gpt-4o-mini"]["runs"] == 2 and recent["gpt-4o-mini"]["cost"] == 0.5
    assert totals(db, now + 1) == {}
    with pytest.raises(ValueError):
        db.spend(None, "week")
    table = Spend(db.spend(None, "model"), "model")
    assert table.cost == pytest.approx(1.75) and table[0]["model"] == "gpt-4o-mini"


def test_spend_since_part_of_a_day_counts_only_the_runs_after(db: HistoryDB) -> None:
    midnight = time.mktime(time.strptime(day_of(time.time()), "%Y-%m-%d"))
    db.insert([row(midnight + 60, cost=1.0), row(midnight + 120, cost=2.0),
               row(midnight + DAY + 60, cost=4.0)])
    assert totals(db, midnight)["gpt-4o-mini"]["cost"] == 7.0
    assert totals(db, midnight + 90)["gpt-4o-mini"]["cost"] == 6.0
    assert totals(db, midnight + 90, "notebook")[""]["cost"] == 6.0
    assert totals(db, midnight + 90, "day") == {
        day_of(midnight + 90): pytest.approx({**totals(db, midnight + 90, "day")[day_of(midnight)],
                                              "cost": 2.0}),
        day_of(midnight + DAY + 60): totals(db, midnight + DAY, "day")[day_of(midnight + DAY + 60)]}


def test_prune_removes_old_runs_and_their_spend(db: HistoryDB) -> None:
    now = time.time()
    db.insert([row(now - 40 * DAY, answer="ancient words", cost=8.0),
               row(now - 31 * DAY, answer="old words", cost=4.0),
               row(now - 1 * DAY, answer="recent words", cost=2.0), row(now, cost=1.0)])
    assert db.prune(now - 30 * DAY) == 2
    assert [r.answer for r in db.search()] == ["hi there", "recent words"]
    assert [r.answer for r in db.search("words")] == ["recent words"]  # gone from the index too
    assert totals(db)["gpt-4o-mini"]["cost"] == 3.0 and totals(db)["gpt-4o-mini"]["runs"] == 2


def test_prune_inside_a_day_keeps_the_rest_of_that_day(db: HistoryDB) -> None:
    midnight = time.mktime(time.strptime(day_of(time.time() - 5 * DAY), "%Y-%m-%d"))
    db.insert([row(midnight + 60, cost=1.0), row(midnight + 7200, cost=2.0, notebook="n")])
    assert db.prune(midnight + 3600) == 1
    assert totals(db)["gpt-4o-mini"] == {**totals(db)["gpt-4o-mini"], "runs": 1, "cost": 2.0}
    assert totals(db, by="notebook") == {"n": totals(db, by="notebook")["n"]}


def test_search_words_are_literal(db: HistoryDB) -> None:
    db.insert([row(answer='he said "NEAR" AND left'), row(answer="col:umn -x (y)"),
               row(answer="nothing")])
    assert len(db.search("NEAR AND")) == 1
    assert len(db.search('"NEAR"')) == 1
    assert len(db.search("col:umn")) == 1 and len(db.search("(y)")) == 1
    assert len(db.search("-x")) == 1
    assert isinstance(db.search('"'), Runs)


def test_two_connections_write_without_losing_rows(tmp_path: Path) -> None:
    import threading
    path = tmp_path / "h.sqlite3"
    HistoryDB(path).close()

    def write(tag: str) -> None:
        store = HistoryDB(path)
        for i in range(50):
            store.insert([row(answer=f"{tag} {i}"), row(answer=f"{tag} {i}b")])
        store.close()

    threads = [threading.Thread(target=write, args=(t,)) for t in ("left", "right")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    reader = HistoryDB(path, create=False)
    assert reader.count() == 200 and len(reader.search("left", limit=None)) == 100
    assert totals(reader)["gpt-4o-mini"]["runs"] == 200
    reader.close()
