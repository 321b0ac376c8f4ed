"""``python -m llmkit.history export|stats|prune`` on a history written by real calls and by
`HistoryDB` directly (old runs)."""

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
from llmkit.history import main
from tests.openai_server import OpenAITestServer
from tests.test_history_db import DAY, row

ROOT = Path(__file__).resolve().parents[1]


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


def test_export_to_stdout_oldest_first(recorded: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export"]) == 0
    out, err = capsys.readouterr()
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line["answer"] for line in lines] == ["ancient answer", "old answer",
                                                  "echo: purple elephant", "echo: green frog", ""]
    assert [llmkit.Run(**line) for line in reversed(lines)] == list(llmkit.history())
    assert "exported 5 runs" in err


def test_export_to_a_file_with_filters(recorded: Path, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    out_file = tmp_path / "purple.jsonl"
    assert main(["export", "purple", "--out", str(out_file)]) == 0
    lines = [json.loads(line) for line in out_file.read_text(encoding="utf-8").splitlines()]
    assert [line["messages"][-1]["content"] for line in lines] == ["purple elephant", "purple failure"]
    assert not out_file.with_name("purple.jsonl.partial").exists()
    assert capsys.readouterr().out == ""
    assert main(["export", "--errors"]) == 0
    assert [json.loads(line)["error"] for line in capsys.readouterr().out.splitlines()] == [
        "InvalidRequestError"]
    assert main(["export", "--model", "gpt-4o", "--since", "7d"]) == 0
    assert [json.loads(line)["answer"] for line in capsys.readouterr().out.splitlines()] == [
        "echo: green frog"]
    assert main(["export", "--since", "35d"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 4


def test_stats(recorded: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["stats"]) == 0
    out = capsys.readouterr().out
    assert "5 runs" in out and "bytes per run" in out and str(recorded) in out
    assert "gpt-4o-mini" in out and "gpt-4o " in out and "$12.00" in out
    assert main(["stats", "--since", "7d", "--by", "day"]) == 0
    out = capsys.readouterr().out
    assert time.strftime("%Y-%m-%d") in out and "$12" not in out


def test_prune_removes_old_runs_and_their_spend(recorded: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert llmkit.spend().cost > 12
    assert main(["prune", "--older-than", "30d"]) == 0
    assert "pruned 2 runs" in capsys.readouterr().out
    assert len(llmkit.history(limit=None)) == 3
    assert llmkit.spend().cost < 1 and llmkit.spend().total["runs"] == 3
    assert llmkit.history("ancient") == []
    assert main(["prune", "--older-than", "2w"]) == 0
    assert "pruned 0 runs" in capsys.readouterr().out


@pytest.mark.parametrize("age", ["30", "soon", "2026-01-01", "-3d", "30 days", "d"])
def test_a_bad_age_is_a_clear_error(recorded: Path, age: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["prune", f"--older-than={age}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "30d" in err and len(err.strip().splitlines()) == 1
    assert len(llmkit.history(limit=None)) == 5


def test_another_path_and_history_off(recorded: Path, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    elsewhere = tmp_path / "none.sqlite3"
    assert main(["--path", str(elsewhere), "export"]) == 0
    assert capsys.readouterr().out == "" and not elsewhere.exists()
    llmkit.force_default_value("history", False)
    assert main(["stats"]) == 1
    assert "off" in capsys.readouterr().err


def test_a_newer_schema_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import sqlite3
    path = tmp_path / "new.sqlite3"
    raw = sqlite3.connect(path)
    raw.execute("PRAGMA user_version = 7")
    raw.close()
    assert main(["--path", str(path), "stats"]) == 2
    assert "newer llmkit" in capsys.readouterr().err


def test_run_as_a_module(recorded: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "llmkit.history", "stats"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "5 runs" in done.stdout
    done = subprocess.run([sys.executable, "-m", "llmkit.history", "prune"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "--older-than" in done.stderr


def test_importing_the_command_keeps_llmkit_history_callable(recorded: Path) -> None:
    import llmkit.history  # binds the module to llmkit.history, where the function was
    assert [r.answer for r in llmkit.history("purple", errors=False)] == ["echo: purple elephant"]
    assert llmkit.history.main is main
