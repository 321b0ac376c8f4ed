"""`Run`: one recorded call, as the run history keeps it; `Runs`, a list of them; `Spend`, totals.

A run is a plain, immutable record (no credentials: the request is the public one, the endpoint
only its host). ``run.completion`` rebuilds the `Completion`, so a run shows, replays into the
playground and copies as code like the call it records.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from pathlib import Path
from typing import Any

from . import hooks
from .money import format_cost
from .result import Completion

__all__ = ["BY", "Run", "Runs", "Spend"]


@dataclass(frozen=True)
class Run:
    """One call: when, where, what was asked and answered, what it cost, and what it belongs to.

    ``time`` is seconds since the epoch (``started`` gives a local `datetime`). ``cost`` is USD
    (0 for an answer from the cache or a recording, and for the local model; None when the model
    has no known price).
    ``error`` is the exception's class name and ``error_message`` its text with secrets removed.
    ``batch_id``, ``chat_id`` and ``experiment`` link a run to its batch, conversation and
    experiment; ``notebook`` and ``cell_id`` to where it ran, inside a kernel.
    """

    id: int
    time: float
    kind: str  # "chat", "responses" or "embedding" (`Prepared.kind`)
    api_type: str
    host: str
    model: str
    messages: list[dict[str, Any]]
    answer: str
    params: dict[str, Any]
    usage: dict[str, int]
    cost: float | None
    latency: float
    cached: bool
    finish_reason: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    error: str | None = None
    error_message: str | None = None
    notebook: str | None = None
    cell_id: str | None = None
    batch_id: str | None = None
    chat_id: str | None = None
    experiment: str | None = None
    pid: int | None = None

    @property
    def api(self) -> str:
        """Which API answered: ``"chat"``, ``"responses"`` or ``"embeddings"``."""
        return "embeddings" if self.kind == "embedding" else self.kind

    @property
    def started(self) -> datetime:
        return datetime.fromtimestamp(self.time)

    @property
    def prompt(self) -> str:
        """The text of every message, one after another (what full-text search looks at)."""
        return prompt_text(self.messages)

    @property
    def tokens(self) -> int:
        return int(self.usage.get("total_tokens", 0))

    @property
    def completion(self) -> Completion:
        """The call as a `Completion` (request and the API-shaped response), for displays."""
        message: dict[str, Any] = {"role": "assistant", "content": self.answer}
        if self.tool_calls:
            message["tool_calls"] = self.tool_calls
        response = {"model": self.model, "usage": dict(self.usage),
                    "choices": [{"message": message, "finish_reason": self.finish_reason}]}
        request = {"model": self.model, "messages": self.messages, **self.params}
        return Completion(request, response, self.latency, self.cached, self.api_type)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        """One line of JSON (JSON Lines export)."""
        return json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":"))

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        return hooks.mimebundle(self)

    def __repr__(self) -> str:
        shown = " ".join(self.prompt.split())
        shown = shown if len(shown) <= 60 else shown[:59] + "…"
        state = self.error or ("cached" if self.cached else "sent")
        return (f"Run(id={self.id}, {self.started:%Y-%m-%d %H:%M:%S}, {self.model!r}, {state}, "
                f"prompt={shown!r})")


FIELDS = tuple(f.name for f in fields(Run))


class Runs(list[Run]):
    """Runs, newest first: a list with exports (JSON Lines, pandas) and a table display."""

    def to_jsonl(self, path: str | Path | None = None) -> str:
        """The runs as JSON Lines; written to ``path`` (whole, or not at all) when given."""
        text = "".join(run.to_json() + "\n" for run in self)
        if path is not None:
            target = Path(path)
            partial = target.with_name(target.name + ".partial")
            partial.write_text(text, encoding="utf-8")
            partial.replace(target)
        return text

    def to_pandas(self) -> Any:
        """A pandas DataFrame, one row per run (pandas is not a dependency: install it)."""
        try:
            import pandas
        except ImportError:
            raise ImportError("Runs.to_pandas() needs pandas: pip install pandas") from None
        frame = pandas.DataFrame([run.to_dict() for run in self], columns=list(FIELDS))
        frame["time"] = pandas.to_datetime(frame["time"], unit="s")
        return frame

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        return hooks.mimebundle(self)


def prompt_text(messages: list[dict[str, Any]]) -> str:
    """The text parts of the messages, in order (images and tool calls left out)."""
    parts: list[str] = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts.extend(str(p.get("text")) for p in content
                         if isinstance(p, dict) and p.get("type") == "text")
    return "\n\n".join(parts)


BY = ("model", "day", "notebook")
"""What spend is totalled by (`Spend.by`): the store keeps its totals per model, day and notebook."""


class Spend(list[dict[str, Any]]):
    """Spend totals, one dict per model, day or notebook (``by``), most expensive first: runs,
    cached_runs, errors, unpriced (runs of models with no known price), tokens and cost (USD)."""

    def __init__(self, rows: list[dict[str, Any]], by: str) -> None:
        super().__init__(sorted(rows, key=lambda r: (-(r.get("cost") or 0), str(r.get(by)))))
        self.by = by

    @property
    def total(self) -> dict[str, Any]:
        """Every row added up."""
        keys = [k for k in (self[0] if self else {}) if k != self.by]
        return {k: sum(row[k] for row in self) for k in keys} or {"runs": 0, "cost": 0.0}

    @property
    def cost(self) -> float:
        return float(self.total.get("cost", 0.0))

    def __repr__(self) -> str:
        lines = [f"{row[self.by] or '(none)'!s:<32} {row['runs']:>7} runs "
                 f"{row['total_tokens']:>12,} tokens  {format_cost(row['cost'])}" for row in self]
        return "\n".join([*lines, f"{'total':<32} {self.total['runs']:>7} runs "
                                  f"{'':>19}{format_cost(self.cost)}"])

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        return hooks.mimebundle(self)
