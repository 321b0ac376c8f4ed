"""What every llmkit magic shares: arguments parsed as a shell would, and llmkit errors shown as
one line instead of a traceback."""

from __future__ import annotations

import argparse
import difflib
import re
import shlex
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from IPython.core.error import UsageError

from ..base.errors import LLMKitError, MissingVariableError

__all__ = ["one_line_errors", "parse"]


@contextmanager
def one_line_errors() -> Iterator[None]:
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


def parse(magic: Any, line: str) -> argparse.Namespace:
    """Parse with the magic's ``magic_arguments`` parser, removing quotes as a shell does
    (IPython's own splitting keeps them); backslashes stay, for Windows paths."""
    lexer = shlex.shlex(line, posix=True)
    lexer.whitespace_split, lexer.escape = True, ""
    try:
        argv = list(lexer)
    except ValueError as exc:
        raise UsageError(f"{line!r}: {exc}") from None
    try:
        return magic.parser.parse_args(argv)
    except UsageError as exc:
        found = re.search(r"unrecognized arguments: (\S+)", str(exc))
        options = [o for action in magic.parser._actions for o in action.option_strings]
        close = difflib.get_close_matches(found.group(1), options, n=1) if found else []
        if close:
            raise UsageError(f"{exc} (did you mean {close[0]}?)") from None
        raise
