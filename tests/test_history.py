"""The run history as a user sees it: every way of calling records one run per call (hit or
miss, answer or error), searchable with `llmkit.history`, against the real test server."""

from __future__ import annotations

import json
import sqlite3
import sys
import threading
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

import llmkit
from llmkit import LLMCall, LLMChat, OpenAIClient
from llmkit.base.errors import (
    ConfigError,
    HistoryError,
    HistoryWarning,
    OutputTypeError,
    ReplayMissError,
    ServerError,
)
from llmkit.base.history_db import HistoryDB
from llmkit.clients import recorder
from tests.conftest import SECRET
from tests.openai_server import OpenAITestServer


def runs(**filters: Any) -> llmkit.Runs:
    return llmkit.history(limit=None, **filters)


def default_path(tmp_path: Path) -> Path:
    return tmp_path / "cache" / "history.sqlite3"


# -- every path records ------------------------------------------------------------------------


def test_on_by_default_beside_the_cache_a_miss_then_a_hit(llm: OpenAITestServer, tmp_path: Path) -> None:
    call = LLMCall("Be brief.", "Say hi to {{ name }}", model="gpt-4o-mini", temperature=0)
    first = call.call(name="Ann")
    again = call.call(name="Ann")
    assert again == first
    miss, hit = reversed(runs())  # newest first
    assert default_path(tmp_path).exists()
    assert (miss.cached, hit.cached) == (False, True)
    assert miss.kind == "chat" and miss.api_type == "openai" and miss.model == "gpt-4o-mini"
    assert miss.host == f"127.0.0.1:{llm.port}"
    assert miss.messages == [{"role": "system", "content": "Be brief."},
                             {"role": "user", "content": "Say hi to Ann"}]
    assert miss.prompt == "Be brief.\n\nSay hi to Ann"
    assert miss.answer == hit.answer == "echo: Say hi to Ann"
    assert miss.params["temperature"] == 0
    assert miss.usage["total_tokens"] == first.usage["total_tokens"] > 0
    assert miss.cost is not None and miss.cost > 0
    assert hit.cost == 0
    assert miss.finish_reason == "stop" and miss.error is None
    assert miss.latency >= 0 and hit.latency >= 0
    assert miss.pid is not None and miss.id < hit.id
    assert miss.started <= hit.started <= datetime.now()
    assert "cached" in repr(hit) and "Say hi to Ann" in repr(hit)


def test_cached_tokens_are_recorded(llm: OpenAITestServer) -> None:
    usage = {"prompt_tokens": 20, "completion_tokens": 2, "total_tokens": 22,
             "prompt_tokens_details": {"cached_tokens": 16}}
    llm.reply("ok", usage=usage)
    OpenAIClient().complete([{"role": "user", "content": "long prompt"}], cache=False)
    (run,) = runs()
    assert run.usage == {"prompt_tokens": 20, "completion_tokens": 2, "total_tokens": 22,
                         "cached_tokens": 16}
    info = llmkit.model_info("gpt-4o-mini")
    assert info.cached_input_price is not None and info.input_price is not None
    assert run.cost == pytest.approx((4 * info.input_price + 16 * info.cached_input_price
                                      + 2 * (info.output_price or 0)) / 1e6)


def test_run_and_stream_record(llm: OpenAITestServer) -> None:
    call = LLMCall("s", "{{ q }}")
    assert call.run({"q": "plain"}) == "echo: plain"
    pieces: list[str] = []
    call.call(q="streamed words", stream=True, on_delta=pieces.append)
    assert "".join(pieces) == "echo: streamed words"
    streamed, plain = runs()
    assert plain.answer == "echo: plain" and not plain.cached
    assert streamed.answer == "echo: streamed words" and streamed.usage["total_tokens"] > 0
    assert streamed.params.get("stream") in (None, True)


def test_map_rows_share_a_batch_id_and_worker_threads_keep_the_experiment(llm: OpenAITestServer) -> None:
    call = LLMCall("s", "row {{ n }}")
    with llmkit.experiment("prompt-v2"):
        call.map([{"n": i} for i in range(6)], max_concurrency=3, progress=False)
    call.map([{"n": 1}], progress=False)  # a cache hit, another batch, no experiment
    recorded = runs()
    assert len(recorded) == 7
    first, second = recorded[1:], recorded[:1]
    assert {r.batch_id for r in first} != {None} and len({r.batch_id for r in first}) == 1
    assert second[0].batch_id not in (None, first[0].batch_id) and second[0].cached
    assert {r.experiment for r in first} == {"prompt-v2"} and second[0].experiment is None
    assert sorted(r.answer for r in first) == [f"echo: row {i}" for i in range(6)]
    assert len(runs(search="row", model="gpt-4o-mini")) == 7


def test_experiment_needs_a_name() -> None:
    with pytest.raises(ConfigError, match="experiment name"):
        llmkit.experiment("  ")


def test_experiment_reaches_threads_the_user_starts_in_its_context(llm: OpenAITestServer) -> None:
    import contextvars
    with llmkit.experiment("threads"):
        context = contextvars.copy_context()
    worker = threading.Thread(target=context.run, args=(LLMCall("s", "t").run,))
    worker.start()
    worker.join()
    assert runs()[0].experiment == "threads"


def test_each_chat_turn_carries_the_chat_id(llm: OpenAITestServer) -> None:
    chat = LLMChat(user_prompt="hello")
    chat.call()
    chat.continue_conversation("more")
    other = LLMChat(user_prompt="another")
    other.call()
    third, second, first = runs()
    assert first.chat_id == second.chat_id == chat.id
    assert third.chat_id == other.id != chat.id
    assert [m["content"] for m in second.messages] == ["hello", "echo: hello", "more"]
    assert first.batch_id is None and first.experiment is None


def test_the_llm_cell_magic_records(ip: Any, llm: OpenAITestServer) -> None:
    result = ip.run_cell("%%llm --format text --out answer\nmagic words\n")
    assert result.success
    (run,) = runs()
    assert run.answer == "echo: magic words" and run.prompt.endswith("magic words")


def test_in_a_kernel_the_notebook_and_cell_are_recorded(ip: Any, llm: OpenAITestServer,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("ipykernel")
    monkeypatch.setenv("JPY_SESSION_NAME", "/home/me/analysis.ipynb")

    class Kernel:
        def get_parent(self, channel: str = "shell") -> dict[str, Any]:
            return {"metadata": {"cellId": "cell-42"}}

    monkeypatch.setattr(ip, "kernel", Kernel(), raising=False)
    assert ip.run_cell("%%llm --format text\nin a notebook\n").success
    (run,) = runs()
    assert (run.notebook, run.cell_id) == ("/home/me/analysis.ipynb", "cell-42")
    assert [row["notebook"] for row in llmkit.spend(by="notebook")] == ["/home/me/analysis.ipynb"]


def test_embeddings_record_one_run_per_call(llm: OpenAITestServer) -> None:
    client = OpenAIClient()
    client.get_embedding(["alpha beta", "gamma"], model="text-embedding-3-small")
    client.get_embedding("alpha beta", model="text-embedding-3-small")  # from the cache
    hit, miss = runs()
    assert miss.kind == hit.kind == "embedding"
    assert miss.messages == [{"role": "input", "content": "alpha beta"},
                             {"role": "input", "content": "gamma"}]
    assert (miss.cached, hit.cached) == (False, True)
    assert miss.usage["prompt_tokens"] == 3 and miss.cost is not None and miss.cost > 0
    assert hit.cost == 0
    assert "vector" in miss.answer
    assert runs(search="gamma") == [miss]


class Person(BaseModel):
    name: str
    age: int


def test_a_typed_answer_records_its_text(llm: OpenAITestServer) -> None:
    llm.reply('{"name": "Ana", "age": 30}')
    assert LLMCall("Extract.", "{{ t }}", output_type=Person).run({"t": "Ana, 30"}) == Person(
        name="Ana", age=30)
    (run,) = runs()
    assert run.answer == '{"name": "Ana", "age": 30}' and run.error is None
    assert run.params["response_format"]["type"] == "json_schema"


def test_a_typed_answer_that_fails_keeps_the_paid_answer(llm: OpenAITestServer) -> None:
    llm.reply('{"name": "Ana", "age": "thirty"}')
    with pytest.raises(OutputTypeError):
        LLMCall("Extract.", "u", output_type=Person).run()
    (run,) = runs()
    assert run.error == "OutputTypeError" and "age" in (run.error_message or "")
    assert run.answer == '{"name": "Ana", "age": "thirty"}'
    assert run.cost is not None and run.cost > 0 and run.usage["total_tokens"] > 0
    assert runs(errors=True) == [run] and runs(errors=False) == []


def add(a: int, b: int) -> int:
    """Add two whole numbers."""
    return a + b


def test_a_tool_loop_records_every_step(llm: OpenAITestServer) -> None:
    llm.reply_tool_calls([("add", {"a": 2, "b": 3})])
    llm.reply("It is 5.")
    assert LLMCall("You add.", "{{ q }}", tools=[add]).run({"q": "2 + 3?"}) == "It is 5."
    answer, step = runs()
    assert step.finish_reason == "tool_calls" and step.answer == ""
    assert step.tool_calls == [{"id": "call_1", "type": "function",
                                "function": {"name": "add", "arguments": '{"a": 2, "b": 3}'}}]
    assert answer.answer == "It is 5." and answer.messages[-1]["role"] == "tool"
    assert step.params["tools"][0]["function"]["name"] == "add"
    assert step.completion.message["tool_calls"] == step.tool_calls


def test_a_server_error_after_retries_records_its_class_and_message(llm: OpenAITestServer) -> None:
    llm.fail(500, message="the model is on fire", times=5)
    with pytest.raises(ServerError):
        LLMCall("s", "u").run(max_attempts=2)
    (run,) = runs()
    assert run.error == "ServerError" and "the model is on fire" in (run.error_message or "")
    assert run.answer == "" and run.cost == 0 and not run.cached
    assert runs(errors=True) == [run]


def test_a_replay_miss_is_recorded(llm: OpenAITestServer, tmp_path: Path) -> None:
    recording = tmp_path / "rec.jsonl"
    recording.write_text("")
    llmkit.force_api_cache(True, replay=str(recording))
    with pytest.raises(ReplayMissError):
        LLMCall("s", "not recorded").run()
    (run,) = runs()
    assert run.error == "ReplayMissError" and llm.requests == []


def test_history_off_records_nothing(llm: OpenAITestServer, tmp_path: Path) -> None:
    llmkit.force_default_value("history", False)
    LLMCall("s", "u").run()
    OpenAIClient().get_embedding("x", model="text-embedding-3-small")
    recorder.flush()
    assert not default_path(tmp_path).exists()
    assert llmkit.history() == [] and llmkit.spend() == []


def test_history_path_is_honoured(llm: OpenAITestServer, tmp_path: Path,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "elsewhere" / "runs.db"
    monkeypatch.setenv("LLMKIT_HISTORY_PATH", str(target))
    LLMCall("s", "u").run()
    assert [r.answer for r in llmkit.history()] == ["echo: u"]
    assert target.exists() and not default_path(tmp_path).exists()
    assert [r.answer for r in llmkit.history(path=str(target))] == ["echo: u"]


def test_repeated_calls_store_their_request_and_answer_once(llm: OpenAITestServer,
                                                           tmp_path: Path) -> None:
    call = LLMCall("s", "{{ q }}")
    for _ in range(5):
        call.run({"q": "same question " * 50})  # a miss, then hits
    call.run({"q": "other"})
    recorded = runs()
    assert len(recorded) == 6 and [r.cached for r in recorded[1:]] == [True] * 4 + [False]
    assert {r.prompt for r in recorded[1:]} == {"s\n\n" + "same question " * 50}
    assert len(llmkit.history("same", cached=True)) == 4
    raw = sqlite3.connect(default_path(tmp_path))
    counts = [raw.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
              for t in ("runs", "prompts", "answers")]
    raw.close()
    assert counts == [6, 2, 2]


# -- search ------------------------------------------------------------------------------------


def test_search_finds_words_in_prompts_and_answers_newest_first(llm: OpenAITestServer) -> None:
    call = LLMCall("s", "{{ q }}")
    for q in ("the purple elephant", "a green frog", "purple rain falls"):
        call.run({"q": q})
    assert [r.prompt for r in llmkit.history("purple")] == ["s\n\npurple rain falls",
                                                             "s\n\nthe purple elephant"]
    assert [r.prompt for r in llmkit.history("PURPLE elephant")] == ["s\n\nthe purple elephant"]
    assert len(llmkit.history("echo")) == 3  # answers are searched too
    assert llmkit.history("purple giraffe") == []
    assert len(llmkit.history("purple", limit=1)) == 1 and len(llmkit.history(limit=0)) == 0


@pytest.mark.parametrize("text", ['"', "'", 'say "hi', "a AND", "OR", "NOT x", "(", ")", "*", "^a",
                                  "col:umn", "-x", "a - b", "NEAR(a b)", "{x}", "\\", "''", " ", "",
                                  "émoji 🎉", "a\x00b", "%", "_"])
def test_punctuation_and_quotes_in_search_never_raise(llm: OpenAITestServer, text: str) -> None:
    LLMCall("s", 'he said "hi" (twice) -- AND NOT* col:umn').run()
    assert isinstance(llmkit.history(text), llmkit.Runs)


def test_quoted_text_is_found(llm: OpenAITestServer) -> None:
    LLMCall("s", 'he said "hi there" to (them)').run()
    assert len(llmkit.history('"hi there"')) == 1
    assert len(llmkit.history("(them)")) == 1


def test_filters(llm: OpenAITestServer) -> None:
    call = LLMCall("s", "{{ q }}")
    call.run({"q": "one"})
    call.run({"q": "one"})  # hit
    call.run({"q": "two"}, model="gpt-4o")
    llm.fail(400, message="bad")
    with pytest.raises(llmkit.InvalidRequestError):
        call.run({"q": "three"})
    assert len(runs()) == 4
    assert [r.prompt for r in runs(model="gpt-4o")] == ["s\n\ntwo"]
    assert len(runs(cached=True)) == 1 and len(runs(cached=False)) == 3
    assert [r.error for r in runs(errors=True)] == ["InvalidRequestError"]
    assert len(runs(errors=False)) == 3
    assert len(runs(since="7d")) == 4 and len(runs(since="1h")) == 4
    assert len(runs(since=datetime.now() + timedelta(hours=1))) == 0
    assert len(runs(since=datetime.now() - timedelta(hours=1))) == 4
    assert len(runs(since=(datetime.now() + timedelta(days=1)).date().isoformat())) == 0
    assert len(runs(since=(datetime.now() - timedelta(days=1)).isoformat())) == 4
    assert len(runs(since=timedelta(minutes=5))) == 4
    assert len(runs(search="one", cached=True, model="gpt-4o-mini")) == 1
    assert len(llmkit.history(limit=2)) == 2


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"since": "yesterday"}, "since="), ({"since": "7 days"}, "since="), ({"limit": -1}, "limit="),
    ({"limit": 1.5}, "limit="), ({"search": 42}, "search must be text"),
])
def test_bad_arguments_say_what_was_expected(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        llmkit.history(**kwargs)


def test_spend_by_model_day_notebook(llm: OpenAITestServer) -> None:
    call = LLMCall("s", "{{ q }}")
    call.run({"q": "one"})
    call.run({"q": "one"})
    call.run({"q": "two"}, model="gpt-4o")
    by_model = llmkit.spend()
    assert [row["model"] for row in by_model] == ["gpt-4o", "gpt-4o-mini"]  # most expensive first
    mini = by_model[1]
    assert (mini["runs"], mini["cached_runs"], mini["errors"]) == (2, 1, 0)
    assert by_model.total["runs"] == 3
    assert by_model.cost == pytest.approx(sum(r.cost or 0 for r in runs()))
    assert by_model.total["total_tokens"] == sum(r.tokens for r in runs())
    (today,) = llmkit.spend(by="day", since="1d")
    assert today["day"] == datetime.now().strftime("%Y-%m-%d") and today["runs"] == 3
    assert [row["notebook"] for row in llmkit.spend(by="notebook")] == [""]
    assert llmkit.spend(since=datetime.now() + timedelta(minutes=1)) == []
    assert "total" in repr(by_model) and "gpt-4o" in repr(by_model)
    with pytest.raises(ConfigError, match="by="):
        llmkit.spend(by="week")


def test_export_round_trip_and_pandas(llm: OpenAITestServer, tmp_path: Path) -> None:
    call = LLMCall("s", "{{ q }}")
    call.run({"q": "unicode é 🎉"})
    llm.fail(400)
    with pytest.raises(llmkit.InvalidRequestError):
        call.run({"q": "x"})
    recorded = runs()
    text = recorded.to_jsonl(tmp_path / "out.jsonl")
    assert (tmp_path / "out.jsonl").read_text(encoding="utf-8") == text
    lines = [json.loads(line) for line in text.splitlines()]
    assert [llmkit.Run(**line) for line in lines] == list(recorded)
    import pandas
    frame = recorded.to_pandas()
    assert list(frame["answer"]) == [r.answer for r in recorded]
    assert frame["error"].iloc[0] == "InvalidRequestError"
    assert pandas.api.types.is_datetime64_any_dtype(frame["time"])


def test_a_run_rebuilds_its_completion(llm: OpenAITestServer) -> None:
    LLMCall("s", "show me").run()
    (run,) = runs()
    completion = run.completion
    assert completion.text == "echo: show me" and completion.request["messages"] == run.messages
    assert completion.usage["total_tokens"] == run.tokens


# -- a database that cannot be written -----------------------------------------------------------


def calls_go_on(n: int = 3) -> list[str]:
    """Calls made one after another (each written, or not, before the next): their answers."""
    answers = []
    for i in range(n):
        answers.append(LLMCall("s", f"question {i}").run())
        recorder.flush()
    return answers


def history_warnings(record: pytest.WarningsRecorder) -> list[str]:
    return [str(w.message) for w in record if issubclass(w.category, HistoryWarning)]


def test_a_garbage_file_gives_one_warning_and_calls_go_on(llm: OpenAITestServer, tmp_path: Path) -> None:
    target = default_path(tmp_path)
    target.parent.mkdir(parents=True)
    target.write_bytes(b"this is not a database" * 100)
    with pytest.warns(HistoryWarning) as record:
        assert calls_go_on() == [f"echo: question {i}" for i in range(3)]
    (message,) = history_warnings(record)
    assert "HISTORY_PATH" in message and "HISTORY=False" in message
    with pytest.raises(HistoryError, match="cannot be used"):
        llmkit.history()


def test_a_path_that_is_a_folder_gives_one_warning_and_calls_go_on(
        llm: OpenAITestServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file that cannot be written, even by root (who writes read-only files anyway)."""
    target = tmp_path / "history-is-a-folder"
    target.mkdir()
    monkeypatch.setenv("LLMKIT_HISTORY_PATH", str(target))
    with pytest.warns(HistoryWarning) as record:
        assert calls_go_on() == [f"echo: question {i}" for i in range(3)]
    assert len(history_warnings(record)) == 1


def test_a_locked_database_gives_one_warning_and_calls_go_on(llm: OpenAITestServer, tmp_path: Path) -> None:
    target = default_path(tmp_path)
    HistoryDB(target).close()
    holder = sqlite3.connect(target, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.warns(HistoryWarning) as record:
            answers = [LLMCall("s", "while locked").run()]
            recorder.flush(30)  # the writer gives up after its busy timeout
            answers.append(LLMCall("s", "still locked").run())
            recorder.flush(30)
        assert answers == ["echo: while locked", "echo: still locked"]
        (message,) = history_warnings(record)
        assert "locked" in message
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_a_newer_schema_is_a_clear_error(tmp_path: Path) -> None:
    target = default_path(tmp_path)
    target.parent.mkdir(parents=True)
    db = sqlite3.connect(target)
    db.execute("PRAGMA user_version = 99")
    db.close()
    with pytest.raises(HistoryError, match=r"newer llmkit.*upgrade llmkit"):
        llmkit.history()
    with pytest.raises(HistoryError, match="newer llmkit"):
        llmkit.spend()


def test_no_file_yet_means_no_runs(tmp_path: Path) -> None:
    assert llmkit.history() == [] and llmkit.spend().total == {"runs": 0, "cost": 0.0}
    assert not default_path(tmp_path).exists()


# -- secrets -----------------------------------------------------------------------------------


def stored_bytes(path: Path) -> bytes:
    recorder.flush()
    return b"".join(p.read_bytes() for p in (path, path.with_name(path.name + "-wal"),
                                             path.with_name(path.name + "-shm")) if p.exists())


OTHER_TOKEN = "tok-EXTRA-HEADER-777"
BODY_TOKEN = "tok-EXTRA-BODY-555"


def test_secrets_are_never_stored(llm: OpenAITestServer, tmp_path: Path) -> None:
    call = LLMCall("s", "{{ q }}")
    call.run({"q": "plain"})
    call.run({"q": "headers"}, extra_headers={"Authorization": f"Bearer {OTHER_TOKEN}"},
             extra_body={"api_key": BODY_TOKEN, "note": f"contains {SECRET}"})
    llm.echo_key(401)
    with pytest.raises(llmkit.AuthenticationError):
        call.run({"q": "echoed"})
    llm.echo_key(400)
    with pytest.raises(llmkit.InvalidRequestError) as raised:
        call.run({"q": "echoed header"}, extra_headers={"Authorization": f"Bearer {OTHER_TOKEN}"})
    assert OTHER_TOKEN not in str(raised.value) and "<hidden>" in str(raised.value)
    assert [r.headers["authorization"] for r in llm.requests[-2:]] == [f"Bearer {SECRET}",
                                                                       f"Bearer {OTHER_TOKEN}"]
    recorded = runs()
    assert len(recorded) == 4 and [r.error for r in recorded[:2]] == ["InvalidRequestError",
                                                                       "AuthenticationError"]
    assert all("Incorrect API key provided: <hidden>" in (r.error_message or "")
               for r in recorded[:2])
    assert recorded[2].params["extra_headers"] == {"Authorization": "<hidden>"}
    data = stored_bytes(default_path(tmp_path))
    export = recorded.to_jsonl()
    for secret in (SECRET, OTHER_TOKEN, BODY_TOKEN):
        assert secret.encode() not in data, secret
        assert secret not in export, secret


def test_a_password_in_the_base_url_is_never_stored(llm: OpenAITestServer, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import base64
    monkeypatch.setenv("OPENAI_BASE_URL", llm.base_url.replace("http://", "http://me:pw-URL-9999@"))
    LLMCall("s", "u").run()
    llm.echo_key(400)  # the SDK sends the URL's user:password as Basic auth; the server quotes it
    with pytest.raises(llmkit.InvalidRequestError) as raised:
        LLMCall("s", "v").run()
    basic = base64.b64encode(b"me:pw-URL-9999").decode()
    assert llm.requests[-1].headers["authorization"] == f"Basic {basic}"
    recorded = runs()
    assert {r.host for r in recorded} == {f"127.0.0.1:{llm.port}"}
    data, export = stored_bytes(default_path(tmp_path)), recorded.to_jsonl()
    for secret in ("pw-URL-9999", "me:", basic):
        assert secret not in str(raised.value), secret
        assert secret.encode() not in data, secret
        assert secret not in export, secret


# -- two processes at once ---------------------------------------------------------------------


WRITER = """
import os, sys
sys.path.insert(0, {root!r})
import llmkit
from llmkit.clients import recorder
ready, go = sys.argv[1], sys.argv[2]
client = llmkit.OpenAIClient()
messages = [{{"role": "user", "content": "same question"}}]
client.complete(messages)  # a miss: fills the cache; the rest are hits
open(ready, "w").close()
while not os.path.exists(go):
    pass
for i in range({n} - 1):
    client.complete(messages)
    if i % 50 == 0:
        recorder.flush()
recorder.flush()
print(os.getpid())
"""


def test_two_processes_writing_at_once_lose_nothing(llm: OpenAITestServer, tmp_path: Path) -> None:
    import os
    import subprocess
    import time
    target = tmp_path / "shared-history.sqlite3"
    env = {**os.environ, "OPENAI_BASE_URL": llm.base_url, "OPENAI_API_KEY": SECRET,
           "LLMKIT_HISTORY_PATH": str(target), "LLMKIT_CACHE_DIR": str(tmp_path / "shared-cache")}
    code = WRITER.format(root=str(Path(__file__).resolve().parents[1]), n=200)
    go = tmp_path / "go"
    procs = []
    for i in range(2):
        procs.append((tmp_path / f"ready{i}", subprocess.Popen(
            [sys.executable, "-c", code, str(tmp_path / f"ready{i}"), str(go)], env=env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)))
    deadline = time.monotonic() + 120
    while not all(ready.exists() for ready, _ in procs) and time.monotonic() < deadline:
        assert all(p.poll() is None for _, p in procs), [p.communicate() for _, p in procs]
        time.sleep(0.05)
    go.touch()
    pids = set()
    for _, proc in procs:
        out, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err
        pids.add(int(out.split()[-1]))
    recorded = llmkit.history(limit=None, path=str(target))
    assert len(recorded) == 400
    assert len({r.id for r in recorded}) == 400
    assert {r.pid for r in recorded} == pids and len(pids) == 2
    assert sorted(sum(r.pid == pid for r in recorded) for pid in pids) == [200, 200]
    assert llmkit.spend(path=str(target)).total["runs"] == 400
