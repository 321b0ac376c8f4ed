"""The run history from the command line (in Python: ``llmkit.history()`` and ``llmkit.spend()``).

    python -m llmkit.history export [SEARCH] [--since 7d] [--model M] [--errors] [--out FILE]
    python -m llmkit.history stats [--since 7d] [--by model|day|notebook]
    python -m llmkit.history prune --older-than 30d

``export`` writes JSON Lines (one run per line, oldest first); ``stats`` prints the number of
runs, the file's size and spend; ``prune`` deletes runs older than the age given. ``--path``
picks another history file than the configured one (HISTORY_PATH).

This module is only run, never imported by llmkit: ``llmkit.history`` is the function.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
import types
from collections.abc import Sequence
from typing import Any

from llmkit.base.errors import LLMKitError
from llmkit.base.history_db import HistoryDB
from llmkit.clients.history import flush, history, history_file, since_time, spend


def _export(db: HistoryDB, args: argparse.Namespace) -> int:
    filters = (args.search, args.since, args.model, args.errors)
    if any(f is not None for f in filters):
        runs = reversed(db.search(args.search, model=args.model, since=since_time(args.since),
                                  errors=args.errors, limit=None))
    else:
        runs = db.runs()  # read in pages: a million runs never sit in memory at once
    out = open(args.out + ".partial", "w", encoding="utf-8") if args.out else sys.stdout
    count = 0
    try:
        for run in runs:
            out.write(run.to_json() + "\n")
            count += 1
    except BaseException:
        if args.out:
            out.close()
            os.unlink(args.out + ".partial")  # no half-written export
        raise
    if args.out:
        out.close()
        os.replace(args.out + ".partial", args.out)
    print(f"exported {count} runs" + (f" to {args.out}" if args.out else ""), file=sys.stderr)
    return 0


def _stats(db: HistoryDB, args: argparse.Namespace, path: str) -> int:
    count = db.count()
    size = sum(os.path.getsize(p) for p in (path, path + "-wal") if os.path.exists(p))
    print(f"{path}: {count:,} runs, {size / 1e6:.1f} MB"
          + (f" ({size / count:,.0f} bytes per run)" if count else ""))
    print(repr(spend(args.since, args.by, path=path)))
    return 0


def _prune(db: HistoryDB, args: argparse.Namespace) -> int:
    if not re.fullmatch(r"\s*\d+(\.\d+)?\s*[smhdw]\s*", args.older_than):
        raise LLMKitError(f"--older-than {args.older_than!r}: expected an age like 30d, 12h or 2w")
    before = since_time(args.older_than)
    assert before is not None
    gone = db.prune(before)
    print(f"pruned {gone:,} runs recorded before {time.strftime('%Y-%m-%d %H:%M', time.localtime(before))}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m llmkit.history", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--path", help="the history file (default: HISTORY_PATH)")
    sub = parser.add_subparsers(dest="command", required=True)
    export = sub.add_parser("export", help="write runs as JSON Lines")
    export.add_argument("search", nargs="?", help="words every exported prompt or answer holds")
    export.add_argument("--since", help="an age (7d, 12h) or an ISO date")
    export.add_argument("--model")
    export.add_argument("--errors", action="store_const", const=True, help="failed runs only")
    export.add_argument("--out", help="a file to write (default: standard output)")
    stats = sub.add_parser("stats", help="runs, size and spend")
    stats.add_argument("--since", help="an age (7d, 12h) or an ISO date")
    stats.add_argument("--by", choices=("model", "day", "notebook"), default="model")
    prune = sub.add_parser("prune", help="delete old runs")
    prune.add_argument("--older-than", required=True, help="an age: 30d, 12h, 2w")
    args = parser.parse_args(argv)
    path = history_file(args.path)
    flush()  # called from Python: this process's calls are in the file first
    if path is None:
        print("the run history is off (HISTORY=False)", file=sys.stderr)
        return 1
    try:
        db = HistoryDB(path, create=args.command != "export" and args.command != "stats")
        try:
            if args.command == "export":
                return _export(db, args)
            if args.command == "stats":
                return _stats(db, args, path)
            return _prune(db, args)
        finally:
            db.close()
    except LLMKitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


class _CallableModule(types.ModuleType):
    """Importing this module binds it to ``llmkit.history``, hiding the function of that name;
    calling the module calls the function, so ``llmkit.history(...)`` works either way."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return history(*args, **kwargs)


if __name__ == "__main__":
    raise SystemExit(main())
sys.modules[__name__].__class__ = _CallableModule
