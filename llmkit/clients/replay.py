"""Keyless replay: recordings of calls (JSON Lines) that answer in place of a model.

A recording holds one line per call: ``{"key": ..., "request": {...}, "value": {...}}`` — the
cache key, what was asked (model, messages, parameters: never credentials) and the answer. With
``REPLAY`` set (config key, ``LLMKIT_REPLAY``, or ``force_api_cache(..., replay=PATH)``) every
call is answered from the recording and a call that is not in it raises `ReplayMissError`.
With ``RECORD`` set, every answered call is appended to that file.

A recording is untrusted input (a merge can leave conflict markers in it, a crash a cut line):
bad lines are skipped with one `RecordingWarning` naming them, and the good ones still answer.

Record notebooks from the command line::

    python -m llmkit replay record notebooks/*.ipynb --out notebooks/recording.jsonl
"""

from __future__ import annotations

import json
import os
import threading
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..base.errors import CacheError, LLMKitWarning, ReplayMissError

__all__ = ["Recording", "RecordingWarning", "append_recording", "open_recording", "record_notebooks"]

_lock = threading.Lock()
_recordings: dict[tuple[Path, float], Recording] = {}
_written: dict[Path, set[str]] = {}


class RecordingWarning(LLMKitWarning):
    """A recording had bad lines (skipped), or an answer could not be appended to ``RECORD``
    (the call still returned it)."""


def _good_entries(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """The good lines of a recording; the bad ones are named in one `RecordingWarning`."""
    from ..base.cache import read_entries  # diskcache and sqlite3 load with the first use
    bad: list[str] = []
    rows = read_entries(path, bad=bad)
    if bad:
        shown = "; ".join(bad[:3]) + (f"; and {len(bad) - 3} more" if len(bad) > 3 else "")
        warnings.warn(f"recording {str(path)!r}: skipped {len(bad)} bad line(s), using the other "
                      f"{len(rows)}: {shown}", RecordingWarning, stacklevel=5)
    return rows


class Recording:
    """A read-only recording loaded from a JSON Lines file (bad lines skipped, with a warning)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._answers = dict(_good_entries(self.path))

    def __len__(self) -> int:
        return len(self._answers)

    def get(self, key: str) -> dict[str, Any] | None:
        return self._answers.get(key)

    def miss(self, request: Mapping[str, Any], api_type: str) -> ReplayMissError:
        """The error for a call that is not in the recording, saying how to run it for real."""
        asked = request.get("input") if "input" in request else (
            (request.get("messages") or [{}])[-1].get("content"))
        shown = " ".join(str(asked).split())
        shown = shown if len(shown) <= 80 else shown[:79] + "…"
        return ReplayMissError(
            f"replay: this call is not in the recording {str(self.path)!r} (api type {api_type!r}, "
            f"model {request.get('model')!r}, asking {shown!r}). To run it for real, turn replay off "
            "(llmkit.force_api_cache(True, replay=None), or unset REPLAY / LLMKIT_REPLAY)"
            + (" and the local model will answer." if api_type == "local" else
               " and set OPENAI_API_KEY, or switch to the local model with %llm_api local."))

    def __repr__(self) -> str:
        return f"Recording({str(self.path)!r}, calls={len(self)})"


def open_recording(path: str | os.PathLike[str]) -> Recording:
    """The recording at ``path``, loaded once and reloaded when the file changes."""
    resolved = Path(path).expanduser().resolve()
    try:
        stamp = resolved.stat().st_mtime
    except OSError as exc:
        raise ReplayMissError(f"replay: recording {str(path)!r} cannot be read ({exc.strerror}); "
                              "check the REPLAY setting") from None
    with _lock:
        if (resolved, stamp) not in _recordings:
            _recordings[(resolved, stamp)] = Recording(resolved)
        return _recordings[(resolved, stamp)]


def append_recording(path: str | os.PathLike[str], key: str, request: Mapping[str, Any],
                     value: Mapping[str, Any]) -> None:
    """Add one call to a recording (once per key), as a single line written in one call.

    The file's keys are read once per process (bad lines skipped, with a `RecordingWarning`).
    A file whose last line was cut off gets a line break first, so the new line stays whole.
    Raises `CacheError` naming the file and the reason when it cannot be read or written.
    """
    target = Path(path).expanduser().resolve()
    try:
        line = (json.dumps({"key": key, "request": request, "value": value}, ensure_ascii=False,
                           separators=(",", ":")) + "\n").encode("utf-8")
        with _lock:
            seen = _written.get(target)
            if seen is None:
                seen = {k for k, _ in _good_entries(target)} if target.exists() else set()
                _written[target] = seen
            if key in seen:
                return
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(target, "ab+") as out:  # O_APPEND: one write, one whole line
                if out.seek(0, os.SEEK_END):
                    out.seek(-1, os.SEEK_END)
                    if out.read(1) != b"\n":
                        line = b"\n" + line
                out.write(line)
            seen.add(key)
    except (OSError, ValueError) as exc:  # ValueError: text that is not valid Unicode
        raise CacheError(f"cannot append to the recording {str(target)!r}: {exc}") from exc


def record_notebooks(notebooks: Sequence[str | os.PathLike[str]], out: str | os.PathLike[str],
                     timeout: int = 600) -> int:
    """Execute notebooks top to bottom with recording on; returns the calls in ``out``."""
    import nbformat
    from nbclient import NotebookClient

    from ..base.cache import read_entries

    target = Path(out).resolve()
    previous = {k: os.environ.get(k) for k in ("LLMKIT_RECORD", "LLMKIT_REPLAY")}
    os.environ["LLMKIT_RECORD"] = str(target)
    os.environ.pop("LLMKIT_REPLAY", None)
    try:
        for path in notebooks:
            notebook = nbformat.read(path, as_version=4)
            NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                           resources={"metadata": {"path": str(Path(path).parent)}}).execute()
            print(f"recorded {path}")
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return len(read_entries(target)) if target.exists() else 0
