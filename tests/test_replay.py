"""Keyless replay: recording calls, answering from a recording, and clear misses."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import llmkit
from llmkit import LLMCall, OpenAIClient
from llmkit.base.errors import CacheError, ReplayMissError
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
    with pytest.raises(CacheError, match="line 2"):
        OpenAIClient().send_message(HELLO)


def test_recording_imports_into_a_cache(llm: OpenAITestServer, tmp_path: Path) -> None:
    recording = tmp_path / "rec.jsonl"
    llmkit.force_default_value("record", str(recording))
    OpenAIClient().send_message(HELLO)
    llmkit.force_default_value("record", None)
    fresh = llmkit.base.cache.ResponseCache(tmp_path / "other")
    assert fresh.import_jsonl(recording) == 1
    fresh.close()


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
