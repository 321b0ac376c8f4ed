"""IPython magics: ``%load_ext llmkit`` adds ``%%llm``, ``%llm_api``, ``%llm_cache``, ``%llm_config``,
``%llm_chat``, ``%llm_history`` and ``%llm_cost``.

A thin layer: the work is done by `LLMCall`, the client registry, the cache and `config`. Settings
are traitlets (``%config LLMMagics.default_format = 'text'``). llmkit's errors are shown as one line
(no traceback) and still fail the cell, so "Run all" stops there.
"""

from __future__ import annotations

import argparse
import difflib
import html
import json
import re
import shlex
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from IPython.core import magic_arguments
from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.display import DisplayHandle, display
from traitlets import Bool, Enum, Float, Unicode

from ..base import config
from ..base.errors import CacheError, ConfigError, LLMKitError, MissingVariableError, TemplateError
from ..base.result import Result
from ..base.secrets import HIDDEN, SECRET_KEYS
from ..base.templates import Template
from ..calls.chat import LLMChat
from ..calls.llmcall import LLMCall
from ..clients import registry
from ..clients.store import open_cache
from .kit import BOX_STYLE
from .renderers import answer_html
from .runs_display import cost_summary

if TYPE_CHECKING:
    from IPython.core.interactiveshell import InteractiveShell

__all__ = ["LLMMagics", "load_ipython_extension"]

FORMATS = ("markdown", "text", "json", "code")
_FENCE = re.compile(r"```[^\n`]*\n(.*?)```", re.DOTALL)


@contextmanager
def _one_line_errors() -> Iterator[None]:
    """Let an llmkit error fail the cell, shown by IPython as one line instead of a traceback."""
    try:
        yield
    except LLMKitError as exc:
        line = f"{type(exc).__name__}: {exc}"
        if isinstance(exc, MissingVariableError):
            line = (f"MissingVariableError: the prompt uses {{{{ {exc.variable} }}}} but no variable "
                    f"{exc.variable!r} is defined in the notebook; define it in a cell above")
        exc._render_traceback_ = lambda: [line]  # type: ignore[attr-defined]  # IPython shows this
        raise


def _parse(magic: Any, line: str) -> argparse.Namespace:
    """Parse with the magic's ``magic_arguments`` parser, removing quotes as a shell does
    (IPython's own splitting keeps them); backslashes stay, for Windows paths."""
    lexer = shlex.shlex(line, posix=True)
    lexer.whitespace_split, lexer.escape = True, ""
    try:
        argv = list(lexer)
    except ValueError as exc:
        raise UsageError(f"{line!r}: {exc}") from None
    try:
        return magic.parser.parse_args(argv)  # type: ignore[no-any-return]
    except UsageError as exc:
        found = re.search(r"unrecognized arguments: (\S+)", str(exc))
        options = [o for action in magic.parser._actions for o in action.option_strings]
        close = difflib.get_close_matches(found.group(1), options, n=1) if found else []
        if close:
            raise UsageError(f"{exc} (did you mean {close[0]}?)") from None
        raise


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


def _identifier(text: str) -> str:
    if not text.isidentifier():
        raise argparse.ArgumentTypeError(f"{text!r} is not a Python variable name")
    return text


def unfence(text: str) -> str:
    """The content of the first ```fenced``` block of ``text``, else the whole text, stripped."""
    found = _FENCE.search(text)
    return (found.group(1) if found else text).strip()


class _Live:
    """Shows a streaming answer growing in place, at most one update per ``interval`` seconds."""

    def __init__(self, fmt: str, interval: float) -> None:
        self.text, self.fmt, self.interval = "", fmt, interval
        self.handle: DisplayHandle | None = None
        if fmt != "text":  # text is printed as it arrives
            self.handle = display(self.bundle(), raw=True, display_id=True)
        self.last = time.monotonic()

    def bundle(self) -> dict[str, str]:
        """The answer so far: plain, and for markdown the answer box of the final view (rendered,
        raw HTML shown as text), so the answer stays where it is when the final view arrives."""
        if self.fmt != "markdown":
            return {"text/plain": self.text}
        return {"text/plain": self.text,
                "text/html": f'<div class="llmkit-call" style="{BOX_STYLE}">{answer_html(self.text)}</div>'}

    def __call__(self, delta: str) -> None:
        self.text += delta
        if self.handle is None:
            print(delta, end="", flush=True)
        elif time.monotonic() - self.last >= self.interval:
            self.last = time.monotonic()
            self.handle.update(self.bundle(), raw=True)


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
class LLMMagics(Magics):
    """``%%llm``, ``%llm_api``, ``%llm_cache``, ``%llm_config``, ``%llm_chat``, ``%llm_history``
    and ``%llm_cost``."""

    shell: InteractiveShell

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        super().__init__(shell, **kwargs)
        self.chats: dict[str, LLMChat] = {}  # %%llm --chat NAME: this kernel's conversations

    default_format = Enum(FORMATS, "markdown", help="How %%llm shows the answer when --format is "
                          "not given: markdown, text, json or code.").tag(config=True)
    stream = Bool(False, help="Whether %%llm streams the answer when neither --stream nor "
                  "--no-stream is given.").tag(config=True)
    system = Unicode("You are a helpful assistant.", help="The system prompt of %%llm when "
                     "--system is not given (text or a template file name).").tag(config=True)
    stream_interval = Float(0.05, min=0.0, help="Least seconds between two updates of a streaming "
                            "answer (0.05: at most 20 updates per second).").tag(config=True)

    @magic_arguments.magic_arguments()
    @magic_arguments.argument("--model", "-m", help="model (Azure: deployment); default: MODEL")
    @magic_arguments.argument("--temperature", "-t", type=float, help="sampling temperature, 0 to 2")
    @magic_arguments.argument("--max-tokens", type=int, help="answer length limit in tokens")
    @magic_arguments.argument("--system", "-s", help="system prompt (text or template file name); "
                              "default: LLMMagics.system")
    @magic_arguments.argument("--out", "-o", type=_identifier,
                              help="also store the answer in this variable (it is always in _llm)")
    @magic_arguments.argument("--format", "-f", choices=FORMATS, help="markdown (rich display), "
                              "text (printed), json (parsed and shown), code (put into a new cell)")
    @magic_arguments.argument("--no-cache", action="store_true",
                              help="send even if the answer is cached, and do not cache it")
    @magic_arguments.argument("--stream", action=argparse.BooleanOptionalAction, default=None,
                              help="show the answer as it arrives; default: LLMMagics.stream")
    @magic_arguments.argument("--type", dest="output_type", metavar="TYPE",
                              help="the answer's type: int, float, bool, list, dict, options like "
                              "'yes|no', or a Python expression such as Person or list[Person]")
    @magic_arguments.argument("--chat", metavar="NAME",
                              help="continue conversation NAME: the cell is its next user message")
    @cell_magic
    def llm(self, line: str, cell: str) -> None:
        """Send the cell to the model and show the answer.

        The cell is a Jinja2 template rendered with the notebook's variables (``{{ name }}``);
        single braces, as in JSON or code, pass through untouched. The answer (a str with
        ``.usage``, ``.latency``, ``.cached``) is stored in ``_llm`` and in ``--out VAR``.
        """
        args = _parse(self.llm, line)
        fmt = args.format or self.default_format
        stream = self.stream if args.stream is None else args.stream
        with _one_line_errors():
            if not cell.strip():
                raise TemplateError("the %%llm cell is empty: write the prompt below the %%llm line")
            params = {k: v for k, v in {"model": args.model, "temperature": args.temperature,
                                        "max_tokens": args.max_tokens}.items() if v is not None}
            output = self._type(args.output_type)
            ns = self.shell.user_ns
            live = _Live(fmt, self.stream_interval) if stream and output is None else None
            if args.chat:
                prompt = Template(cell.strip())
                text = prompt.render(**{n: ns[n] for n in prompt.variables if n in ns})
                chat = self.chats.get(args.chat)
                if chat is None:
                    chat = self.chats[args.chat] = LLMChat(system_prompt=args.system or self.system,
                                                           **params)
                result = chat.continue_conversation(text, output_type=output)
            else:
                call = LLMCall(args.system or self.system, cell.strip(), **params)
                variables = {name: ns[name] for name in call.variables if name in ns}
                result = call.run(variables, stream=live is not None, on_delta=live,
                                  cache=False if args.no_cache else None, output_type=output)
        ns["_llm"] = result
        if args.out:
            ns[args.out] = result
        self._show(result, fmt, live)

    def _type(self, spec: str | None) -> Any:
        """``--type``: a builtin name, options ``a|b|c``, or an expression in the notebook."""
        if spec is None:
            return None
        if "|" in spec and all(part.strip().isidentifier() for part in spec.split("|")):
            return [part.strip() for part in spec.split("|")]
        builtin = {"str": str, "int": int, "float": float, "bool": bool, "list": list, "dict": dict}
        if spec in builtin:
            return builtin[spec]
        try:
            return self.shell.ev(spec)
        except Exception as exc:
            raise ConfigError(f"--type {spec}: not a type llmkit knows, nor a name in the notebook "
                              f"({type(exc).__name__}: {exc}); use int, float, bool, list, dict, "
                              f"'a|b|c', or a pydantic model defined above") from None

    @magic_arguments.magic_arguments()
    @magic_arguments.argument("name", help="the conversation (as in %%llm --chat NAME)")
    @magic_arguments.argument("action", nargs="?", choices=("show", "reset"), default="show")
    @line_magic
    def llm_chat(self, line: str) -> None:
        """Show conversation NAME as a transcript, or ``reset`` it: ``%llm_chat tutor reset``."""
        args = _parse(self.llm_chat, line)
        with _one_line_errors():
            chat = self.chats.get(args.name)
            if chat is None:
                known = ", ".join(sorted(self.chats)) or "none yet"
                raise ConfigError(f"no conversation {args.name!r} (conversations: {known}); start "
                                  f"one with %%llm --chat {args.name}")
        if args.action == "reset":
            chat.reset_conversation()
            print(f"conversation {args.name!r} reset")
        else:
            display(chat)

    def _show(self, result: Any, fmt: str, live: _Live | None) -> None:
        """Display the answer; a streamed one replaces its live display, so both end the same."""
        if not isinstance(result, Result):  # a typed value: its own repr
            display(result)
            return
        if fmt == "text":
            print("" if live else result)  # a streamed answer is already printed
            return
        shown: Any = result
        if fmt == "code":
            self.shell.set_next_input(unfence(result), replace=False)
            shown = {}
        elif fmt == "json":
            try:
                parsed = json.loads(unfence(result))
            except ValueError as exc:
                print(f"--format json: the answer is not valid JSON ({exc}); showing it as it is",
                      file=sys.stderr)
            else:
                shown = {"text/plain": json.dumps(parsed, indent=2, ensure_ascii=False)}
                if isinstance(parsed, (dict, list)):
                    shown["application/json"] = parsed
        raw = isinstance(shown, dict)
        if live is not None and live.handle is not None:
            live.handle.update(shown, raw=raw)
        elif fmt != "code":
            display(shown, raw=raw)

    @magic_arguments.magic_arguments()
    @magic_arguments.argument("name", nargs="?", help="api type to make active")
    @line_magic
    def llm_api(self, line: str) -> None:
        """Show the registered api types, or make one the active client: ``%llm_api azure``."""
        args = _parse(self.llm_api, line)
        with _one_line_errors():
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
        args = _parse(self.llm_cache, line)
        with _one_line_errors():
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
        args = _parse(self.llm_config, line)
        with _one_line_errors():
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
        args = _parse(self.llm_history, line)
        with _one_line_errors():
            from .history_browser import show  # ipywidgets loads with the first browser
            return show(" ".join(args.search) or None, model=args.model, since=args.since,
                        errors=args.errors or None, cached=args.cached or None, limit=args.limit)

    @line_magic
    def llm_cost(self, line: str) -> None:
        """Spend today (every process, from the run history), this kernel's, and what is left of
        BUDGET_USD and DAILY_BUDGET_USD when they are set."""
        if line.strip():
            raise UsageError("%llm_cost takes no arguments")
        with _one_line_errors():
            display(cost_summary())


# magic_arguments names every magic "%name" in its help; this one is a cell magic.
LLMMagics.llm.__doc__ = (LLMMagics.llm.__doc__ or "").replace("%llm ", "%%llm ", 1)
LLMMagics.llm.parser.prog = "%%llm"  # type: ignore[attr-defined]


def load_ipython_extension(ipython: Any) -> None:
    """Register the magics with ``ipython`` (``%load_ext llmkit``; ``%reload_ext`` replaces them)
    and say in one line what will answer, and how to run without a key."""
    ipython.configurables[:] = [c for c in ipython.configurables
                                if type(c).__name__ != LLMMagics.__name__]
    ipython.register_magics(LLMMagics(ipython))
    try:
        client = registry.client()
        line = f"llmkit: api type {client.api_type}, model {client.settings()['model']}"
        if not client.credentials_configured():
            line += " (no API key configured: %llm_api local runs a model on this machine, no key)"
    except LLMKitError as exc:
        line = f"llmkit: the configuration has a problem: {exc}"
    print(line)
