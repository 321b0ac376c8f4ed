"""The "tool" entry kind: a pure tool's result, memoised by the tool-calling loop."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from llmkit.base.cache import ENTRY_KINDS, ResponseCache, cache_key, entry_kind, read_entries
from llmkit.base.errors import CacheError

RESULT = {"tool_result": '{"temperature": 21, "sky": "clear — ça va"}'}
KEY = cache_key({"kind": "tool", "name": "weather", "arguments": '{"city":"Paris"}'})
ANSWER = {"choices": [{"message": {"role": "assistant", "content": "hi"}}]}


def test_tool_is_a_kind() -> None:
    assert "tool" in ENTRY_KINDS and ENTRY_KINDS[-1] == "other"
    assert entry_kind(RESULT) == "tool" and entry_kind({"tool_result": 3}) == "tool"
    assert entry_kind({"choices": [], "tool_result": "x"}) == "chat"  # a chat answer stays one
    assert entry_kind({"result": "x"}) == "other"


def test_set_get_and_stats(tmp_path: Path) -> None:
    with ResponseCache(tmp_path) as cache:
        cache.set(KEY, RESULT)
        cache.set("chat", ANSWER)
        assert cache.get(KEY) == RESULT
        assert cache.stats()["kinds"] == {"chat": 1, "embedding": 0, "responses": 0, "tool": 1, "other": 0}


@pytest.mark.parametrize("bad", [
    {"tool_result": 3},
    {"tool_result": None},
    {"tool_result": ["a"]},
    {"tool_result": "x", "extra": 1},
])
def test_malformed_tool_entries_are_refused(tmp_path: Path, bad: dict[str, Any]) -> None:
    with ResponseCache(tmp_path) as cache:
        with pytest.raises(CacheError, match="malformed tool result"):
            cache.set(KEY, bad)
        assert KEY not in cache


def test_export_and_import_carry_tool_entries(tmp_path: Path) -> None:
    with ResponseCache(tmp_path / "src") as src:
        src.set(KEY, RESULT)
        src.set("chat", ANSWER)
        counts = src.export_jsonl(tmp_path / "out.jsonl")
    assert counts == {"chat": 1, "embedding": 0, "responses": 0, "tool": 1, "other": 0}
    lines = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text("utf-8").splitlines()]
    assert {"key": KEY, "kind": "tool", "value": RESULT} in lines
    assert dict(read_entries(tmp_path / "out.jsonl"))[KEY] == RESULT
    with ResponseCache(tmp_path / "dst") as dst:
        assert dst.import_jsonl(tmp_path / "out.jsonl") == 2
        assert dst.get(KEY) == RESULT


@pytest.mark.parametrize(("line", "problem"), [
    ({"key": "k", "kind": "chat", "value": RESULT}, "of kind 'tool'"),
    ({"key": "k", "kind": "tool", "value": {"tool_result": 1}}, "malformed tool result"),
    ({"key": "k", "value": {"tool_result": "x", "more": "y"}}, "malformed tool result"),
])
def test_import_checks_tool_lines(tmp_path: Path, line: dict[str, Any], problem: str) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text(json.dumps({"key": "ok", "value": RESULT}) + "\n" + json.dumps(line) + "\n", "utf-8")
    with ResponseCache(tmp_path / "c") as cache:
        with pytest.raises(CacheError, match=rf"line 2: .*{problem}"):
            cache.import_jsonl(path)
        assert len(cache) == 0  # nothing written


def test_a_stored_row_of_the_wrong_shape_is_a_miss(tmp_path: Path) -> None:
    with ResponseCache(tmp_path) as cache:
        cache._cache.set(KEY, json.dumps({"tool_result": 5}))  # written behind the cache's back
        with pytest.warns(UserWarning, match="malformed tool result"):
            assert cache.get(KEY) is None
