"""IPython magics: ``%load_ext llmkit`` adds ``%%llm``, ``%llm_api``, ``%llm_cache``, ``%llm_config``,
``%llm_chat``, ``%llm_history`` and ``%llm_cost``.

``%%llm`` and ``%llm_chat`` live here, the settings and records magics in
`llmkit.notebook.settings_magics`. A thin layer: the work is done by `LLMCall`, the client
registry, the cache and `config`. Settings
are traitlets (``%config LLMMagics.default_format = 'text'``). llmkit's errors are shown as one line
(no traceback) and still fail the cell, so "Run all" stops there.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from typing import TYPE_CHECKING, Any

from IPython.core import magic_arguments
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.display import DisplayHandle, display
from traitlets import Bool, Enum, Float, Unicode

from ..base.errors import ConfigError, LLMKitError, TemplateError
from ..base.result import Result
from ..base.templates import Template
from ..calls.chat import LLMChat
from ..calls.llmcall import LLMCall
from ..clients import registry
from . import warning_line
from .kit import BOX_STYLE
from .magic_kit import one_line_errors, parse
from .renderers import answer_html
from .settings_magics import SettingsMagics

if TYPE_CHECKING:
    from IPython.core.interactiveshell import InteractiveShell

__all__ = ["LLMMagics", "load_ipython_extension", "unload_ipython_extension"]

FORMATS = ("markdown", "text", "json", "code")
_FENCE = re.compile(r"```[^\n`]*\n(.*?)```", re.DOTALL)


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


@magics_class
class LLMMagics(Magics):
    """``%%llm`` and ``%llm_chat``."""

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
    @magic_arguments.argument("--responses", action="store_true",
                              help="send to the Responses API (/v1/responses) even where Chat "
                              "Completions could answer; default: RESPONSES_API")
    @cell_magic
    def llm(self, line: str, cell: str) -> None:
        """Send the cell to the model and show the answer.

        The cell is a Jinja2 template rendered with the notebook's variables (``{{ name }}``);
        single braces, as in JSON or code, pass through untouched. The answer (a str with
        ``.usage``, ``.latency``, ``.cached``) is stored in ``_llm`` and in ``--out VAR``.
        """
        args = parse(self.llm, line)
        fmt = args.format or self.default_format
        stream = self.stream if args.stream is None else args.stream
        with one_line_errors():
            if not cell.strip():
                raise TemplateError("the %%llm cell is empty: write the prompt below the %%llm line")
            params = {k: v for k, v in {"model": args.model, "temperature": args.temperature,
                                        "max_tokens": args.max_tokens,
                                        "responses_api": "always" if args.responses else None,
                                        }.items() if v is not None}
            output = self._type(args.output_type)
            ns = self.shell.user_ns
            live = _Live(fmt, self.stream_interval) if stream and output is None else None
            if args.chat:
                prompt = Template(cell.strip())
                prompt.hint_single_braces(n for n in prompt.single_braced if n in ns)  # {x}: {{ x }}?
                text = prompt.render(**{n: ns[n] for n in prompt.variables if n in ns})
                chat = self.chats.get(args.chat)
                if chat is None:
                    chat = self.chats[args.chat] = LLMChat(system_prompt=args.system or self.system,
                                                           **params)
                result = chat.continue_conversation(text, output_type=output)
            else:
                call = LLMCall(args.system or self.system, cell.strip(), **params)
                if call.user_template is not None:  # {x} in the cell, x in the notebook: {{ x }}?
                    cell_template = call.user_template
                    cell_template.hint_single_braces(n for n in cell_template.single_braced if n in ns)
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
        args = parse(self.llm_chat, line)
        with one_line_errors():
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

# magic_arguments names every magic "%name" in its help; this one is a cell magic.
LLMMagics.llm.__doc__ = (LLMMagics.llm.__doc__ or "").replace("%llm ", "%%llm ", 1)
LLMMagics.llm.parser.prog = "%%llm"


def load_ipython_extension(ipython: Any) -> None:
    """Register the magics with ``ipython`` (``%load_ext llmkit``; ``%reload_ext`` replaces them)
    and say in one line what will answer, and how to run without a key."""
    ipython.configurables[:] = [c for c in ipython.configurables
                                if type(c).__name__ not in (LLMMagics.__name__, SettingsMagics.__name__)]
    ipython.register_magics(LLMMagics(ipython))
    ipython.register_magics(SettingsMagics(ipython))
    warning_line.install()
    try:
        client = registry.client()
        line = f"llmkit: api type {client.api_type}, model {client.settings()['model']}"
        if not client.credentials_configured():
            line += " (no API key configured: %llm_api local runs a model on this machine, no key)"
    except LLMKitError as exc:
        line = f"llmkit: the configuration has a problem: {exc}"
    print(line)


def unload_ipython_extension(ipython: Any) -> None:
    """``%unload_ext llmkit``: warnings are shown as Python shows them again (the magics stay
    registered, as IPython has no way to remove them)."""
    warning_line.uninstall()
