"""Keyless replay: recording calls, answering from a recording, and clear misses."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import llmkit
from llmkit import LLMCall, OpenAIClient
from llmkit.base.cache import read_entries
from llmkit.base.errors import LLMKitWarning, ReplayMissError
from llmkit.clients.replay import RecordingWarning
from llmkit.clients.store import open_cache
from tests.conftest import SECRET
from tests.openai_server import OpenAITestServer

HELLO = [{"role": "user", "content": "hello replay"}]


def test_record_then_replay_without_key_or_network(llm: OpenAITestServer, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    recording = tmp_path / "rec.jsonl"
    llmkit.force_default_value("record", str(recording))
    call = LLMCall("Be brief.", "Say {{ word }}", temperature=0)
    first = call.call(word="hi")
    vector = OpenAIClient().get_embedding("a sentence")
    call.call(word="hi")  # a cache hit is recorded once, not twice
    lines = [json.loads(line) for line in recording.read_text().splitlines()]
    assert len(lines) == 2
    assert lines[0]["request"]["messages"][-1]["content"] == "Say hi"
    assert SECRET not in recording.read_text()

    llmkit.force_default_value("record", None)
    monkeypatch.delenv("OPENAI_API_KEY")
    open_cache().clear()
    llmkit.force_api_cache(True, replay=str(recording))
    sent = len(llm.requests)
    again = call.call(word="hi")
    assert again == first and again.cached is True
    assert OpenAIClient().get_embedding("a sentence") == vector
    assert len(llm.requests) == sent  # nothing went to the server


def test_miss_says_which_call_and_how_to_run_for_real(llm: OpenAITestServer, tmp_path: Path) -> None:
    recording = tmp_path / "rec.jsonl"
    recording.write_text("")
    llmkit.force_api_cache(True, replay=str(recording))
    with pytest.raises(ReplayMissError) as info:
        LLMCall("s", "What is {{ x }}?").call(x="the answer")
    text = str(info.value)
    assert "What is the answer?" in text and "gpt-4o-mini" in text
    assert "OPENAI_API_KEY" in text and "%llm_api local" in text
    assert llm.requests == []
    with pytest.raises(ReplayMissError, match="not in the recording"):
        OpenAIClient().get_embedding("unseen")


def test_replay_off_again(llm: OpenAITestServer, tmp_path: Path) -> None:
    recording = tmp_path / "rec.jsonl"
    recording.write_text("")
    llmkit.force_api_cache(True, replay=str(recording))
    llmkit.force_api_cache(True, replay=None)
    assert OpenAIClient().send_message(HELLO)["content"] == "echo: hello replay"


def test_missing_or_bad_recording_is_a_clear_error(llm: OpenAITestServer, tmp_path: Path) -> None:
    llmkit.force_api_cache(True, replay=str(tmp_path / "nope.jsonl"))
    with pytest.raises(ReplayMissError, match=r"nope\.jsonl.*cannot be read"):
        OpenAIClient().send_message(HELLO)
    bad = tmp_path / "bad.jsonl"
    answer = {"choices": [{"message": {"role": "assistant", "content": "hi"}}]}
    bad.write_text(json.dumps({"key": "k", "value": answer}) + "\nnot json\n")
    llmkit.force_api_cache(True, replay=str(bad))
    with pytest.warns(RecordingWarning, match="line 2"), pytest.raises(ReplayMissError):
        OpenAIClient().send_message(HELLO)  # the bad line is skipped; the good one is not this call


def test_recording_imports_into_a_cache(llm: OpenAITestServer, tmp_path: Path) -> None:
    recording = tmp_path / "rec.jsonl"
    llmkit.force_default_value("record", str(recording))
    OpenAIClient().send_message(HELLO)
    llmkit.force_default_value("record", None)
    fresh = llmkit.base.cache.ResponseCache(tmp_path / "other")
    assert fresh.import_jsonl(recording) == 1
    fresh.close()


# --- a bad line in a recording, or a RECORD that cannot be written, never costs a paid answer ---

CONFLICT = "<<<<<<< HEAD\n=======\n>>>>>>> other-branch\n"
WRONG_SHAPE = json.dumps({"key": "k", "value": {"not": "an answer"}}) + "\n"
TRUNCATED = '{"key": "cut", "request": {"model": "gpt-4o-mini"}, "value": {"choi'  # no newline


@pytest.mark.parametrize(("junk", "bad_lines"), [(CONFLICT, 3), (WRONG_SHAPE, 1), (TRUNCATED, 1)],
                         ids=["conflict", "shape", "cut"])
def test_bad_line_in_record_file_warns_once_and_the_answer_is_kept(
        llm: OpenAITestServer, tmp_path: Path, junk: str, bad_lines: int) -> None:
    recording = tmp_path / "rec.jsonl"
    recording.write_text(junk)
    llmkit.force_default_value("record", str(recording))
    with pytest.warns(RecordingWarning) as caught:
        answer = OpenAIClient().send_message(HELLO)
        again = OpenAIClient().send_message([{"role": "user", "content": "second"}])
    assert answer["content"] == "echo: hello replay" and again["content"] == "echo: second"
    assert len(caught) == 1  # one warning per file, naming it and its bad lines
    assert str(recording) in str(caught[0].message) and "line 1" in str(caught[0].message)
    sent = len(llm.requests)
    assert OpenAIClient().send_message(HELLO)["content"] == "echo: hello replay"
    assert len(llm.requests) == sent  # cached
    bad: list[str] = []
    kept = read_entries(recording, bad=bad)  # the new lines are whole, after the bad ones
    assert [value["choices"][0]["message"]["content"] for _, value in kept] == [
        "echo: hello replay", "echo: second"]
    assert len(bad) == bad_lines


def test_cache_hit_with_a_bad_record_file_is_answered(llm: OpenAITestServer, tmp_path: Path) -> None:
    OpenAIClient().send_message(HELLO)  # paid and cached
    recording = tmp_path / "rec.jsonl"
    recording.write_text(CONFLICT)
    llmkit.force_default_value("record", str(recording))
    with pytest.warns(RecordingWarning, match="line 3"):
        assert OpenAIClient().send_message(HELLO)["content"] == "echo: hello replay"
    assert len(llm.requests) == 1
    assert len(read_entries(recording, bad=[])) == 1  # and recorded


def test_record_path_that_cannot_be_written_warns_and_returns_the_answer(
        llm: OpenAITestServer, tmp_path: Path) -> None:
    folder = tmp_path / "a-folder"
    folder.mkdir()
    llmkit.force_default_value("record", str(folder))
    with pytest.warns(RecordingWarning) as caught:
        assert OpenAIClient().send_message(HELLO)["content"] == "echo: hello replay"
    text = str(caught[0].message)
    assert str(folder) in text and "directory" in text.lower() and "not recorded" in text
    assert issubclass(caught[0].category, LLMKitWarning)
    with pytest.warns(RecordingWarning):
        assert OpenAIClient().send_message(HELLO)["content"] == "echo: hello replay"
    assert len(llm.requests) == 1  # the paid answer was cached


def test_replay_file_with_a_bad_line_answers_from_the_good_ones(
        llm: OpenAITestServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    recording = tmp_path / "rec.jsonl"
    llmkit.force_default_value("record", str(recording))
    first = OpenAIClient().send_message(HELLO)
    llmkit.force_default_value("record", None)
    good = recording.read_text()
    recording.write_text("not json at all\n" + good)
    monkeypatch.delenv("OPENAI_API_KEY")
    open_cache().clear()
    llmkit.force_api_cache(True, replay=str(recording))
    with pytest.warns(RecordingWarning) as caught:
        assert OpenAIClient().send_message(HELLO) == first
        assert OpenAIClient().send_message(HELLO) == first
    assert len(caught) == 1
    assert str(recording) in str(caught[0].message) and "line 1" in str(caught[0].message)
    assert len(llm.requests) == 1  # only the recorded call went out
def replay_command(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "llmkit", "replay", *args], capture_output=True,
                          text=True, timeout=300)


def test_the_command_line_records_a_notebook(llm: OpenAITestServer, tmp_path: Path) -> None:
    import nbformat
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "import llmkit\nprint(llmkit.LLMCall('s', 'from a notebook').run())")])
    path = tmp_path / "one.ipynb"
    nbformat.write(notebook, path)
    recording = tmp_path / "rec.jsonl"
    done = replay_command("record", str(path), "--out", str(recording))
    assert done.returncode == 0, done.stderr
    assert f"{recording}: 1 recorded calls" in done.stdout
    assert "RuntimeWarning" not in done.stderr
    (line,) = [json.loads(line) for line in recording.read_text().splitlines()]
    assert line["request"]["messages"][-1]["content"] == "from a notebook"
    assert SECRET not in recording.read_text()


def test_the_command_line_says_what_is_wrong_in_one_line(tmp_path: Path) -> None:
    done = replay_command("record", str(tmp_path / "missing.ipynb"), "--out", str(tmp_path / "r"))
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith("error: ") and "missing.ipynb" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    done = replay_command("record", "x.ipynb")
    assert done.returncode == 2 and "--out" in done.stderr
