"""Jinja2 templates: files on the template path, or inline strings, rendered in a sandbox."""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

from .errors import MissingVariableError, TemplateError

__all__ = ["Template", "template_path"]

PACKAGE_TEMPLATES = Path(__file__).with_name("templates")
_FILE_NAME = re.compile(r"^[\w./\\-]+\.[A-Za-z0-9]+$")


def template_path() -> list[Path]:
    """Folders searched for template files: TEMPLATE_PATH from config, ./templates, the package's."""
    from .config import resolve
    extra = resolve().template_path or ""
    folders = [Path(p).expanduser() for p in extra.split(os.pathsep) if p]
    return [*folders, Path.cwd() / "templates", PACKAGE_TEMPLATES]


@lru_cache(maxsize=1)
def _environment() -> Any:
    from jinja2 import StrictUndefined
    from jinja2.sandbox import SandboxedEnvironment
    return SandboxedEnvironment(undefined=StrictUndefined, keep_trailing_newline=True,
                                autoescape=False)


class Template:
    """A template given by file name or as inline text.

    A string that names a file on `template_path` is loaded from it; a string that looks like a
    file name (``persona.md``) but is not found raises `TemplateError`; anything else is inline.
    """

    def __init__(self, spec: str) -> None:
        if not isinstance(spec, str):
            raise TemplateError(f"a template must be a file name or a Jinja2 string, got "
                                f"{type(spec).__name__}")
        self.spec = spec
        self.path: Path | None = None
        self.source = spec
        if "\n" not in spec and _FILE_NAME.match(spec.strip()):
            searched = template_path()
            for folder in searched:
                candidate = folder / spec.strip()
                if candidate.is_file():
                    self.path = candidate
                    self.source = candidate.read_text(encoding="utf-8")
                    break
            else:
                raise TemplateError(f"template file {spec!r} not found; searched: "
                                    f"{', '.join(str(f) for f in searched)}")
        self.name = str(self.path.name) if self.path else "<inline>"
        self._rendered: dict[tuple[Any, ...], str] = {}
        from jinja2 import TemplateSyntaxError, meta, nodes
        env = _environment()
        try:
            self._compiled = env.from_string(self.source)
            tree = env.parse(self.source)
            undeclared = meta.find_undeclared_variables(tree)
            # In the order they first appear (the playground shows fields in this order).
            self.variables: tuple[str, ...] = tuple(dict.fromkeys(
                n.name for n in tree.find_all(nodes.Name) if n.name in undeclared))
        except TemplateSyntaxError as exc:
            raise TemplateError(f"template {self.label}: line {exc.lineno}: {exc.message}") from None

    @property
    def label(self) -> str:
        return str(self.path) if self.path else repr(_short(self.spec))

    def render(self, **variables: Any) -> str:
        """Render with ``variables``; a missing one raises `MissingVariableError` naming it.

        Renders of plain values (str, numbers, None) are remembered: rendering is deterministic
        in the sandbox, and Jinja's render (about 10 µs) would otherwise be most of a cache hit.
        """
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

    def _render(self, variables: dict[str, Any]) -> str:
        from jinja2 import TemplateError as JinjaError
        from jinja2 import UndefinedError
        try:
            return self._compiled.render(**variables)
        except UndefinedError as exc:
            found = re.search(r"'([^']+)' is undefined", str(exc))
            raise MissingVariableError(found.group(1) if found else str(exc), self.label) from None
        except JinjaError as exc:
            raise TemplateError(f"template {self.label}: {exc}") from None

    def __repr__(self) -> str:
        return f"Template({self.label})"


_REMEMBERED = 256  # renders kept per template
_PLAIN = (str, int, float, bool, type(None))


def _plain_key(variables: dict[str, Any], used: tuple[str, ...]) -> tuple[Any, ...] | None:
    """A key for the variables a template uses, when all are plain values (else None)."""
    values = tuple(variables.get(name, _MISSING) for name in used)
    if all(type(v) in _PLAIN for v in values):
        return values
    return None


_MISSING = object()  # a missing variable: never remembered (it raises)


def _short(text: str, width: int = 60) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"
