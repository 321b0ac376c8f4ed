"""Jinja2 templates: files on the template path, or inline strings, rendered in a sandbox.

Templates are untrusted input: every failure, at construction or while rendering, comes out as
`TemplateError` (or `MissingVariableError` for a variable not given) naming the template.
"""

from __future__ import annotations

import inspect
import os
import re
import threading
import types
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .errors import LLMKitError, LLMKitWarning, MissingVariableError, TemplateError
from .template_sandbox import CallableOutput, Refused, environment, short

__all__ = ["Template", "shown_path", "template_path"]

PACKAGE_TEMPLATES = Path(__file__).with_name("templates")
_SINGLE_BRACED = re.compile(r"(?<!\{)\{\s*([A-Za-z_]\w*)\s*\}(?!\})")
_HINT_LOCK = threading.Lock()
_FILE_NAME = re.compile(r"^[\w./\\-]+\.[A-Za-z0-9]+$")


def template_path() -> list[Path]:
    """Folders searched for template files: TEMPLATE_PATH from config, ./templates, the package's."""
    from .config import resolve
    extra = resolve().template_path or ""
    folders = [Path(p).expanduser() for p in extra.split(os.pathsep) if p]
    return [*folders, Path.cwd() / "templates", PACKAGE_TEMPLATES]


class Template:
    """A template given by file name, as a `pathlib.Path`, or as inline text.

    A string that names a file on `template_path` is loaded from it; a string that looks like a
    file name (``persona.md``) but is not found raises `TemplateError`; anything else is inline.
    File names are looked up inside the template path folders only (no absolute paths, no
    ``..``, no symbolic links out of the folder); a `pathlib.Path` loads exactly that file.
    """

    def __init__(self, spec: str | Path) -> None:
        self.spec = spec
        self.path: Path | None = None
        if isinstance(spec, Path):
            self.path = spec
            if not spec.is_file():
                raise TemplateError(f"template file {shown_path(spec)} not found" if not spec.exists()
                                    else f"template {shown_path(spec)} is not a file")
            self.source = _read(spec)
        elif not isinstance(spec, str):
            raise TemplateError(f"a template must be a file name, a pathlib.Path or a Jinja2 "
                                f"string, got {type(spec).__name__}")
        else:
            self.source = spec
            if "\n" not in spec and _FILE_NAME.match(spec.strip()):
                self.path = _find(spec.strip())
                self.source = _read(self.path)
        self.name = str(self.path.name) if self.path else "<inline>"
        self._rendered: dict[tuple[Any, ...], str] = {}
        # {name} in single braces: sent as written (f-string and jinja-ai habit); `render` says so
        self.single_braced = frozenset(_SINGLE_BRACED.findall(self.source))
        self._hinted: set[str] = set()  # single-braced names already warned about (once each)
        if not self.source.isascii():
            _check_encodable(self.source, f"template {self.label}: the template text", "text")
        from jinja2 import TemplateSyntaxError, meta, nodes
        env = environment()
        try:
            tree = env.parse(self.source)
            for node in tree.find_all((nodes.Extends, nodes.Include, nodes.Import,
                                       nodes.FromImport)):
                tag = {nodes.Extends: "extends", nodes.Include: "include"}.get(type(node), "import")
                raise TemplateError(
                    f"template {self.label}: line {node.lineno}: {{% {tag} %}} is not supported: "
                    f"llmkit templates cannot include, import or extend other template files; "
                    f"pass the other text as a variable instead (e.g. {{{{ context }}}} with "
                    f"context=Path('other.md').read_text())")
            self._compiled = env.from_string(self.source)
            undeclared = meta.find_undeclared_variables(tree)
            # In the order they first appear (the playground shows fields in this order).
            self.variables: tuple[str, ...] = tuple(dict.fromkeys(
                n.name for n in tree.find_all(nodes.Name) if n.name in undeclared))
        except TemplateSyntaxError as exc:
            raise TemplateError(f"template {self.label}: line {exc.lineno}: {exc.message}") from None
        except TemplateError:
            raise
        except RecursionError:
            raise TemplateError(f"template {self.label}: nested too deeply to compile (brackets "
                                f"or blocks inside one another thousands deep)") from None
        except Exception as exc:  # untrusted input: nothing raw escapes
            raise TemplateError(f"template {self.label} could not be compiled: "
                                f"{type(exc).__name__}: {exc}") from None

    @property
    def label(self) -> str:
        return shown_path(self.path) if self.path else repr(short(str(self.spec)))

    def render(self, **variables: Any) -> str:
        """Render with ``variables``; a missing one raises `MissingVariableError` naming it.

        Renders of plain values (str, numbers, None) are remembered: rendering is deterministic
        in the sandbox, and Jinja's render (about 10 µs) would otherwise be most of a cache hit.
        """
        if self.single_braced:
            self.hint_single_braces(variables)
        key = _plain_key(variables, self.variables)
        if key is not None:
            done = self._rendered.get(key)
            if done is not None:
                return done
        text = self._render(variables)
        if key is not None:
            if len(self._rendered) >= _REMEMBERED:
                self._rendered.pop(next(iter(self._rendered)))  # the oldest
            self._rendered[key] = text
        return text

    def hint_single_braces(self, names: Iterable[str]) -> None:
        """Warn once per name (`LLMKitWarning`) when ``{name}`` in single braces, sent as written,
        names one of ``names`` (the variables given, or a notebook's names): the author meant
        ``{{ name }}``. Without the warning the model gets "{country}" and nobody is told."""
        meant = [n for n in names if n in self.single_braced and n not in self.variables]
        with _HINT_LOCK:
            new = [n for n in meant if n not in self._hinted]
            self._hinted.update(new)
        for name in new:
            warnings.warn(f"template {self.label}: {{{name}}} is sent as written, in single braces; "
                          f"to fill in the variable {name!r}, write {{{{ {name} }}}}", LLMKitWarning,
                          stacklevel=3)

    def _render(self, variables: dict[str, Any]) -> str:
        for name in self.variables:
            value = variables.get(name)
            if isinstance(value, str) and not value.isascii():
                _check_encodable(value, f"template {self.label}: variable {name!r}", name)
        try:
            text: str = self._compiled.render(**variables)
        except Exception as exc:  # untrusted input: nothing raw escapes
            raise self._error(exc, variables) from None
        if not text.isascii():  # O(1) in CPython; a lone surrogate from a list, dict, object...
            _check_encodable(text, f"template {self.label}: the rendered text (from a string in a "
                                   f"list, dict or object given to it?)", "text")
        return text

    def _error(self, exc: Exception, variables: dict[str, Any]) -> TemplateError:
        """The `TemplateError` for an exception that escaped a render."""
        from jinja2 import TemplateError as JinjaError
        from jinja2 import UndefinedError
        from jinja2.sandbox import MAX_RANGE
        if isinstance(exc, UndefinedError):
            found = re.fullmatch(r"'([^']+)' is undefined", str(exc))
            if found:
                return MissingVariableError(found.group(1), self.label)
        line = _template_line(exc)
        where = f"template {self.label}: " + (f"line {line}: " if line else "")
        if isinstance(exc, CallableOutput):
            return TemplateError(where + self._callable_message(exc.value, variables))
        if isinstance(exc, (Refused, JinjaError)):
            return TemplateError(where + str(exc))
        if isinstance(exc, OverflowError) and "MAX_RANGE" in str(exc):
            return TemplateError(f"{where}range() is too big: the template sandbox allows at most "
                                 f"{MAX_RANGE:,} items; use a smaller range")
        if isinstance(exc, MemoryError):
            return TemplateError(f"{where}out of memory while rendering: something in the "
                                 f"template makes a value too large")
        if isinstance(exc, RecursionError):
            return TemplateError(f"{where}too much recursion while rendering (a macro that calls "
                                 f"itself without end?)")
        return TemplateError(f"{where}{type(exc).__name__}: {exc}")

    def _callable_message(self, value: Any, variables: dict[str, Any]) -> str:
        """``{{ topic.title }} is a method; did you mean topic.title()?`` (or as near as known)."""
        from jinja2 import nodes
        from jinja2.runtime import Macro
        if isinstance(value, type):
            kind = "a class"
        elif isinstance(value, Macro):
            kind = "a macro"
        elif inspect.ismethod(value) or inspect.ismethoddescriptor(value) or (
                isinstance(value, types.BuiltinMethodType)  # "ab".title, but not len
                and value.__self__ is not None and not isinstance(value.__self__, types.ModuleType)):
            kind = "a method"
        elif inspect.isfunction(value) or isinstance(value, types.BuiltinFunctionType):
            kind = "a function"
        else:
            kind = f"a callable {type(value).__name__} object"
        name = getattr(value, "__name__", None) or getattr(value, "name", None)
        env = environment()
        for output in env.parse(self.source).find_all(nodes.Output):
            for node in output.nodes:
                text = _expression_text(node)
                if text is None:
                    continue
                if isinstance(node, nodes.Name):
                    found = (variables.get(node.name, _MISSING) is value
                             or env.globals.get(node.name, _MISSING) is value)
                elif isinstance(node, nodes.Getattr):
                    found = node.attr == name
                else:
                    found = node.arg.value == name
                if found:
                    return f"{{{{ {text} }}}} is {kind}; did you mean {text}()?"
        what = getattr(value, "__qualname__", None) or name or type(value).__name__
        return (f"a {{{{ }}}} expression is {kind} ({what}), not text; did you forget the () "
                f"that calls it?")

    def __repr__(self) -> str:
        return f"Template({self.label})"


def _find(name: str) -> Path:
    """The file ``name`` in the first template path folder that has it, kept inside that folder."""
    parts = re.split(r"[/\\]", name)
    if name.startswith(("/", "\\")) or ".." in parts:
        raise TemplateError(
            f"template name {name!r} is not allowed: names are looked up inside the template "
            f"path folders only, so they cannot be absolute or contain '..'; to load a file "
            f"elsewhere, pass a pathlib.Path: Template(Path({name!r}))")
    searched = template_path()
    for folder in searched:
        candidate = folder / name
        if candidate.is_file():
            target = candidate.resolve()
            if not target.is_relative_to(folder.resolve()):
                raise TemplateError(
                    f"template {name!r} in {shown_path(folder)} resolves to {shown_path(target)}, "
                    f"outside that folder (through a symbolic link); names load files inside the "
                    f"template path folders only: to load it anyway, pass a pathlib.Path: "
                    f"Template(Path(...))")
            return candidate
    raise TemplateError(f"template file {name!r} not found; searched: "
                        f"{', '.join(shown_path(f) for f in searched)}")


def shown_path(path: Path) -> str:
    """``path`` as an error message shows it: relative to the working directory or to a template
    path folder, else its name alone. A message travels in a saved, shared notebook; the author's
    absolute paths (their user name, their folders) should not travel with it."""
    absolute = path.expanduser().absolute()
    if absolute == PACKAGE_TEMPLATES.absolute():
        return "llmkit/base/templates (built in)"
    try:
        folders = [Path.cwd(), *template_path()]
    except LLMKitError:  # a broken configuration: its own error says so
        folders = [Path.cwd()]
    for folder in folders:
        try:
            shown = str(absolute.relative_to(folder.absolute()))
        except ValueError:
            continue
        if shown != ".":
            return shown
    return path.name


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise TemplateError(f"template file {shown_path(path)} is not UTF-8 text (byte "
                            f"{exc.object[exc.start]:#04x} at position {exc.start}); save it as UTF-8") \
            from None
    except OSError as exc:
        raise TemplateError(f"template file {shown_path(path)} could not be read: "
                            f"{exc.strerror or exc}") from None


def _check_encodable(text: str, what: str, name: str) -> None:
    """`TemplateError` if ``text`` has a lone surrogate: it could not be sent as UTF-8."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        line = text.count("\n", 0, exc.start) + 1
        raise TemplateError(
            f"{what} contains a lone surrogate ({text[exc.start]!r} at line {line}, position "
            f"{exc.start}), which cannot be sent as UTF-8; remove or replace it, e.g. "
            f"{name}.encode('utf-8', 'replace')"
            f".decode('utf-8')") from None


def _template_line(exc: BaseException) -> int | None:
    """The template line an exception was raised at (Jinja rewrites tracebacks to show it)."""
    line = None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _expression_text(node: Any) -> str | None:
    """``topic.title`` for a Name/Getattr/Getitem chain (None for anything else)."""
    from jinja2 import nodes
    if isinstance(node, nodes.Name):
        return str(node.name)
    if isinstance(node, nodes.Getattr):
        inner = _expression_text(node.node)
        return None if inner is None else f"{inner}.{node.attr}"
    if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
        inner = _expression_text(node.node)
        return None if inner is None else f"{inner}[{node.arg.value!r}]"
    return None


_REMEMBERED = 256  # renders kept per template
_PLAIN = (str, int, float, bool, type(None))


def _plain_key(variables: dict[str, Any], used: tuple[str, ...]) -> tuple[Any, ...] | None:
    """A key for the variables a template uses, when all are plain values (else None)."""
    values = tuple(variables.get(name, _MISSING) for name in used)
    if all(type(v) in _PLAIN for v in values):
        return values
    return None


_MISSING = object()  # a missing variable: never remembered (it raises)
