"""llmkit's warnings as one clean line in a notebook.

Python shows a warning with the file and line that raised it; in a kernel that file is a temporary
name (``/tmp/ipykernel_123/456.py:3``) followed by the source line, which says nothing to the reader
and travels in a saved notebook. While the extension is loaded, `LLMKitWarning` and its subclasses
read ``"LLMKitWarning: message"``; every other warning is shown as before (`install` wraps
``warnings.showwarning``, `uninstall` puts the previous one back).
"""

from __future__ import annotations

import sys
import warnings
from typing import Any, TextIO

from ..base.errors import LLMKitWarning

__all__ = ["install", "uninstall"]

_previous: list[Any] = []  # the showwarning that `install` replaced (at most one)


def _show(message: Warning | str, category: type[Warning], filename: str, lineno: int,
          file: TextIO | None = None, line: str | None = None) -> None:
    if not issubclass(category, LLMKitWarning):
        _previous[0](message, category, filename, lineno, file, line)
        return
    out = sys.stderr if file is None else file
    try:
        out.write(f"{category.__name__}: {message}\n")
    except OSError:  # as warnings.showwarning: a closed or invalid stream is not an error
        pass


def install() -> None:
    """Show llmkit's warnings as one line (again after ``%reload_ext``: installed once)."""
    if warnings.showwarning is not _show:
        _previous[:] = [warnings.showwarning]
        warnings.showwarning = _show


def uninstall() -> None:
    """Put back the ``warnings.showwarning`` that `install` replaced (``%unload_ext llmkit``)."""
    if warnings.showwarning is _show and _previous:
        warnings.showwarning = _previous.pop()
