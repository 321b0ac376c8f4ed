"""llmkit's command line: ``python -m llmkit COMMAND ...``.

    python -m llmkit history export [SEARCH] [--since 7d] [--model M] [--errors] [--out FILE]
    python -m llmkit history stats [--since 7d] [--by model|day|notebook]
    python -m llmkit history prune --older-than 30d
    python -m llmkit replay record NOTEBOOK... --out FILE

``history export`` writes JSON Lines (one run per line, oldest first); ``history stats`` prints
the number of runs, the file's size and spend; ``history prune`` deletes runs older than the age
given; ``history --path FILE`` reads another file than the configured one (HISTORY_PATH).
``replay record`` runs notebooks top to bottom with RECORD set, so their calls can be replayed
without a key (in Python: ``llmkit.history()``, ``llmkit.spend()``, ``force_api_cache(replay=)``).
An error prints one line, ``error: ...``, and exits with status 2.
"""
# The one command line sits above every layer, so it may import from any of them.

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from collections.abc import Sequence

from llmkit.base.errors import LLMKitError
from llmkit.base.history_db import HistoryDB
from llmkit.base.runs import BY
from llmkit.clients.history import history_file, since_time, spend
from llmkit.clients.recorder import flush

__all__ = ["main", "parser"]


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


def _history(args: argparse.Namespace) -> int:
    path = history_file(args.path)
    flush()  # called from Python: this process's calls are in the file first
    if path is None:
        print("the run history is off (HISTORY=False)", file=sys.stderr)
        return 1
    db = HistoryDB(path, create=args.action == "prune")
    try:
        if args.action == "export":
            return _export(db, args)
        if args.action == "stats":
            return _stats(db, args, path)
        return _prune(db, args)
    finally:
        db.close()


def _replay(args: argparse.Namespace) -> int:
    from llmkit.clients.replay import record_notebooks  # nbclient loads only for this command
    count = record_notebooks(args.notebooks, args.out)
    print(f"{args.out}: {count} recorded calls")
    return 0


def parser() -> argparse.ArgumentParser:
    """The command line's parser: one subcommand per concept (``history``, ``replay``)."""
    top = argparse.ArgumentParser(prog="python -m llmkit", description=__doc__,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = top.add_subparsers(dest="command", required=True, metavar="{history,replay}")

    history = commands.add_parser("history", help="export, summarize or prune the run history")
    history.add_argument("--path", help="the history file (default: HISTORY_PATH)")
    actions = history.add_subparsers(dest="action", required=True)
    export = actions.add_parser("export", help="write runs as JSON Lines")
    export.add_argument("search", nargs="?", help="words every exported prompt or answer holds")
    export.add_argument("--since", help="an age (7d, 12h) or an ISO date")
    export.add_argument("--model")
    export.add_argument("--errors", action="store_const", const=True, help="failed runs only")
    export.add_argument("--out", help="a file to write (default: standard output)")
    stats = actions.add_parser("stats", help="runs, size and spend")
    stats.add_argument("--since", help="an age (7d, 12h) or an ISO date")
    stats.add_argument("--by", choices=BY, default="model")
    prune = actions.add_parser("prune", help="delete old runs")
    prune.add_argument("--older-than", required=True, help="an age: 30d, 12h, 2w")
    history.set_defaults(run=_history)

    replay = commands.add_parser("replay", help="record notebooks' calls for keyless replay")
    replay_actions = replay.add_subparsers(dest="action", required=True)
    record = replay_actions.add_parser("record", help="run notebooks and record their calls")
    record.add_argument("notebooks", nargs="+")
    record.add_argument("--out", required=True, help="the recording (JSON Lines) to append to")
    replay.set_defaults(run=_replay)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; its exit status (2 and one ``error:`` line for an llmkit error)."""
    args = parser().parse_args(argv)
    try:
        return int(args.run(args))
    except (LLMKitError, OSError) as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
