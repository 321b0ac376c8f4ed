"""The magics that look at and change llmkit's settings and records: ``%llm_api``, ``%llm_cache``,
``%llm_config``, ``%llm_history`` and ``%llm_cost`` (``%%llm`` itself is in `llmkit.notebook.magics`)."""

from __future__ import annotations

import html
import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from IPython.core import magic_arguments
from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_magic, magics_class
from IPython.display import display

from ..base import config
from ..base.errors import CacheError, ConfigError, LLMKitError
from ..base.secrets import HIDDEN, SECRET_KEYS
from ..clients import registry
from ..clients.store import open_cache
from .magic_kit import one_line_errors, parse
from .runs_display import cost_summary

__all__ = ["SettingsMagics"]


def _status(client: Any) -> str:
    """Credentials for an api type, and for a server on this machine whether it answers: a
    configured URL with nothing listening is not "configured" (a short connect, no request)."""
    if not client.credentials_configured():
        return "missing"
    try:
        url = urlsplit(str(client.endpoint(client.settings())))
    except LLMKitError:
        return "missing"
    if url.hostname not in ("localhost", "127.0.0.1", "::1") or client.api_type == "local":
        return "configured"
    try:
        with socket.create_connection((url.hostname, url.port or 80), timeout=0.3):
            return "configured, server answers"
    except OSError:
        return "configured, no server answering"


def _by_kind(counts: dict[str, int]) -> str:
    """`` (chat: 3, embedding: 6)``: the kinds present, for ``%llm_cache``; empty if none."""
    present = [f"{kind}: {count}" for kind, count in counts.items() if count]
    return f" ({', '.join(present)})" if present else ""


class _ApiTable:
    """The registered api types: active or not, credentials configured or not (never shown)."""

    def __init__(self, rows: list[tuple[str, bool, str]]) -> None:
        self.rows = rows

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        head = ("api type", "active", "credentials")
        cells = [(name, "yes" if active else "", status) for name, active, status in self.rows]
        widths = [max(len(row[i]) for row in [head, *cells]) for i in range(3)]
        text = "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                         for row in [head, *cells])
        body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
                       for row in cells)
        heading = "".join(f"<th>{h}</th>" for h in head)
        return {"text/plain": text,
                "text/html": f"<table><thead><tr>{heading}</tr></thead><tbody>{body}</tbody></table>"}


@magics_class
class SettingsMagics(Magics):
    """``%llm_api``, ``%llm_cache``, ``%llm_config``, ``%llm_history`` and ``%llm_cost``."""

    @magic_arguments.magic_arguments()
    @magic_arguments.argument("name", nargs="?", help="api type to make active")
    @line_magic
    def llm_api(self, line: str) -> None:
        """Show the registered api types, or make one the active client: ``%llm_api azure``."""
        args = parse(self.llm_api, line)
        with one_line_errors():
            if args.name:
                registry.force_api_type(args.name)
                configured = registry.client().credentials_configured()
                print(f"active API type: {args.name.strip().lower()}"
                      + ("" if configured else " (no credentials configured)"))
                return
            try:
                active = registry.client()
            except LLMKitError:  # e.g. API_TYPE names an unknown type: show the table anyway
                active = None
            rows = []
            for name in registry.registered():
                client = registry.client(name)
                rows.append((name, client is active, _status(client)))
        display(_ApiTable(rows))

    @magic_arguments.magic_arguments()
    @magic_arguments.argument("action", nargs="?", default="stats",
                              choices=("stats", "clear", "export", "import"))
    @magic_arguments.argument("path", nargs="?", help="JSON Lines file for export and import")
    @line_magic
    def llm_cache(self, line: str) -> None:
        """The answer cache: ``stats`` (default), ``clear``, ``export PATH``, ``import PATH``."""
        args = parse(self.llm_cache, line)
        with one_line_errors():
            if args.action in ("export", "import") and not args.path:
                raise CacheError(f"%llm_cache {args.action} needs a PATH, e.g. "
                                 f"%llm_cache {args.action} answers.jsonl")
            if args.action not in ("export", "import") and args.path:
                raise CacheError(f"%llm_cache {args.action} takes no PATH")
            store = open_cache()
            path = Path(args.path).expanduser() if args.path else None
            if args.action == "stats":
                s = store.stats()
                print(f"entries: {s['entries']}{_by_kind(s['kinds'])}  size: "
                      f"{s['size_bytes'] / 1024:.1f} KiB  hits: {s['hits']}  misses: {s['misses']}  "
                      f"folder: {s['directory']}")
            elif args.action == "clear":
                count = len(store)
                store.clear()
                print(f"cleared {count} entries from {store.directory}")
            elif args.action == "export" and path:
                kinds = store.export_jsonl(path)
                print(f"exported {sum(kinds.values())} entries{_by_kind(kinds)} to {path}")
            elif path:
                print(f"imported {store.import_jsonl(path)} entries from {path}")

    @magic_arguments.magic_arguments()
    @magic_arguments.argument("key", nargs="?", help="configuration key, e.g. model")
    @magic_arguments.argument("value", nargs="?", help="new value for this session")
    @line_magic
    def llm_config(self, line: str) -> None:
        """Show the configuration, one key, or set a key for this session: ``%llm_config model gpt-4o``.

        API keys are hidden, and cannot be set here (they would be saved in the notebook).
        """
        args = parse(self.llm_config, line)
        with one_line_errors():
            key = args.key.lower() if args.key else None
            if key in SECRET_KEYS and args.value is not None:
                where = ", ".join(config.ENV_VARS.get(key) or (f"LLMKIT_{key.upper()}",))
                raise ConfigError(f"%llm_config does not set {key.upper()}: a key typed into a cell "
                                  f"is saved in the notebook; set an environment variable instead "
                                  f"({where})")
            if key is not None:  # an unknown key or a bad value fails here, saying what is expected
                config.parse_value(key, args.value, "%llm_config")
            if key is not None and args.value is not None:
                config.force_default_value(key, args.value)
            active = registry.client()
            settings = active.settings()  # what the active client uses (local: its model)
        endpoint_key = getattr(active, "endpoint_key", None)  # the key it sends, to where
        secret = getattr(active, "secret_key", None) if key and key == endpoint_key else None
        if secret and args.value and settings.get(secret):
            print(f"note: calls now send your {secret.upper()} to {args.value}")
        for name in [key] if key else list(settings):
            value = settings[name]
            shown = "(not set)" if value is None else HIDDEN if name in SECRET_KEYS else value
            print(f"{name.upper()} = {shown}")

    @magic_arguments.magic_arguments()
    @magic_arguments.argument("search", nargs="*", help="words that must all appear in the prompt "
                              "or the answer")
    @magic_arguments.argument("--model", "-m", help="only runs of this model")
    @magic_arguments.argument("--errors", action="store_true", help="only failed runs")
    @magic_arguments.argument("--cached", action="store_true", help="only answers from the cache")
    @magic_arguments.argument("--since", help="only runs since: an age like 12h or 7d, or a date "
                              "like 2026-11-24")
    @magic_arguments.argument("--limit", type=int, default=100, help="at most this many runs, "
                              "newest first (default 100)")
    @line_magic
    def llm_history(self, line: str) -> Any:
        """Browse the run history: search, filter, select a run to see it in full, open it in the
        playground or copy it as code. A saved notebook keeps the table as static output."""
        args = parse(self.llm_history, line)
        with one_line_errors():
            from .history_browser import show  # ipywidgets loads with the first browser
            return show(" ".join(args.search) or None, model=args.model, since=args.since,
                        errors=args.errors or None, cached=args.cached or None, limit=args.limit)

    @line_magic
    def llm_cost(self, line: str) -> None:
        """Spend today (every process, from the run history), this kernel's, and what is left of
        BUDGET_USD and DAILY_BUDGET_USD when they are set."""
        if line.strip():
            raise UsageError("%llm_cost takes no arguments")
        with one_line_errors():
            display(cost_summary())
