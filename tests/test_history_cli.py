"""``python -m llmkit history export|stats|prune`` on a history written by real calls and by
`HistoryDB` directly (old runs), run as a user runs it: in another process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import llmkit
from llmkit import LLMCall
from llmkit.base.history_db import HistoryDB
from llmkit.clients import recorder
from tests.openai_server import OpenAITestServer
from tests.test_history_db import DAY, row


class Done:
    """What a finished command printed, and its exit status."""

    def __init__(self, done: subprocess.CompletedProcess[str]) -> None:
        self.code, self.out, self.err = done.returncode, done.stdout, done.stderr


def main(argv: list[str], **env: str) -> Done:
    """``python -m llmkit history ARGV`` in a new process, with this test's environment (its
    cache folder and working directory) and ``env``."""
    recorder.flush()  # this process's calls are in the file before the command reads it
    return Done(subprocess.run([sys.executable, "-m", "llmkit", "history", *argv],
                               env={**os.environ, **env}, capture_output=True, text=True,
                               timeout=120))


@pytest.fixture
def recorded(llm: OpenAITestServer, tmp_path: Path) -> Path:
    """A history with two old runs (40 and 31 days ago) and three made now."""
    path = tmp_path / "cache" / "history.sqlite3"
    now = time.time()
    db = HistoryDB(path)
    db.insert([row(now - 40 * DAY, answer="ancient answer", cost=8.0),
               row(now - 31 * DAY, answer="old answer", cost=4.0)])
    db.close()
    call = LLMCall("s", "{{ q }}")
    call.run({"q": "purple elephant"})
    call.run({"q": "green frog"}, model="gpt-4o")
    llm.fail(400, message="nope")
    with pytest.raises(llmkit.InvalidRequestError):
        call.run({"q": "purple failure"})
    return path


def test_export_to_stdout_oldest_first(recorded: Path) -> None:
    done = main(["export"])
    assert done.code == 0, done.err
    out, err = done.out, done.err
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line["answer"] for line in lines] == ["ancient answer", "old answer",
                                                  "echo: purple elephant", "echo: green frog", ""]
    assert [llmkit.Run(**line) for line in reversed(lines)] == list(llmkit.history())
    assert "exported 5 runs" in err


def test_export_to_a_file_with_filters(recorded: Path, tmp_path: Path) -> None:
    out_file = tmp_path / "purple.jsonl"
    done = main(["export", "purple", "--out", str(out_file)])
    assert done.code == 0 and done.out == "" and f"exported 2 runs to {out_file}" in done.err
    lines = [json.loads(line) for line in out_file.read_text(encoding="utf-8").splitlines()]
    assert [line["messages"][-1]["content"] for line in lines] == ["purple elephant", "purple failure"]
    assert not out_file.with_name("purple.jsonl.partial").exists()
    done = main(["export", "--errors"])
    assert [json.loads(line)["error"] for line in done.out.splitlines()] == ["InvalidRequestError"]
    done = main(["export", "--model", "gpt-4o", "--since", "7d"])
    assert [json.loads(line)["answer"] for line in done.out.splitlines()] == ["echo: green frog"]
    assert len(main(["export", "--since", "35d"]).out.splitlines()) == 4


def test_stats(recorded: Path) -> None:
    done = main(["stats"])
    assert done.code == 0, done.err
    assert "5 runs" in done.out and "bytes per run" in done.out and str(recorded) in done.out
    assert "gpt-4o-mini" in done.out and "gpt-4o " in done.out and "$12.00" in done.out
    done = main(["stats", "--since", "7d", "--by", "day"])
    assert done.code == 0, done.err
    assert time.strftime("%Y-%m-%d") in done.out and "$12" not in done.out


def test_prune_removes_old_runs_and_their_spend(recorded: Path) -> None:
    assert llmkit.spend().cost > 12
    done = main(["prune", "--older-than", "30d"])
    assert done.code == 0 and "pruned 2 runs" in done.out
    assert len(llmkit.history(limit=None)) == 3
    assert llmkit.spend().cost < 1 and llmkit.spend().total["runs"] == 3
    assert llmkit.history("ancient") == []
    done = main(["prune", "--older-than", "2w"])
    assert done.code == 0 and "pruned 0 runs" in done.out


@pytest.mark.parametrize("age", ["30", "soon", "2026-01-01", "-3d", "30 days", "d"])
def test_a_bad_age_is_a_clear_error(recorded: Path, age: str) -> None:
    done = main(["prune", f"--older-than={age}"])
    assert done.code == 2 and done.out == ""
    err = done.err
    assert err.startswith("error: ") and "30d" in err and len(err.strip().splitlines()) == 1
    assert len(llmkit.history(limit=None)) == 5


def test_another_path_and_history_off(recorded: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "none.sqlite3"
    done = main(["--path", str(elsewhere), "export"])
    assert done.code == 0 and done.out == "" and not elsewhere.exists()
    done = main(["stats"], LLMKIT_HISTORY="False")
    assert done.code == 1 and "off" in done.err


@pytest.mark.parametrize("action", ["stats", "export", "prune --older-than 30d"])
def test_a_newer_schema_is_one_line(tmp_path: Path, action: str) -> None:
    import sqlite3
    path = tmp_path / "new.sqlite3"
    raw = sqlite3.connect(path)
    raw.execute("PRAGMA user_version = 99")
    raw.close()
    done = main(["--path", str(path), *action.split()])
    assert done.code == 2 and done.out == ""
    assert done.err.startswith("error: ") and "newer llmkit" in done.err
    assert len(done.err.strip().splitlines()) == 1


def test_usage_mistakes_say_what_is_expected(recorded: Path) -> None:
    done = main(["prune"])
    assert done.code == 2 and "--older-than" in done.err
    done = main(["stats", "--by", "week"])
    assert done.code == 2 and "model" in done.err and "notebook" in done.err


def test_help_lists_the_commands() -> None:
    done = subprocess.run([sys.executable, "-m", "llmkit", "--help"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0 and done.stderr == ""
    assert "{history,replay}" in done.stdout and "history export" in done.stdout
    assert "replay record" in done.stdout
    done = subprocess.run([sys.executable, "-m", "llmkit"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2 and "history" in done.stderr


def test_llmkit_history_is_the_function(recorded: Path) -> None:
    from llmkit.clients.history import history
    assert llmkit.history is history
    assert [r.answer for r in llmkit.history("purple", errors=False)] == ["echo: purple elephant"]


@pytest.mark.parametrize("argv", [["export", "--out", "no/such/folder/runs.jsonl"],
                                  ["export", "bad \udcff search"]])
def test_bad_export_arguments_are_one_line_errors(recorded: Path, argv: list[str]) -> None:
    done = main(argv)
    assert done.code == 2 and done.err.startswith("error: ") and len(done.err.splitlines()) == 1, done.err
    assert "Traceback" not in done.err
