"""Where a call runs inside a Jupyter kernel: the notebook's path and the cell's id, for the run
history (`where`). Whether it runs in a kernel at all is `llmkit.base.hooks.in_kernel`, since the
lower layers ask it before they reach for the notebook layer.

JupyterLab (and Notebook 7) send the cell's id with each execute request (``metadata.cellId``),
and jupyter_server starts a notebook's kernel with ``JPY_SESSION_NAME`` set to the notebook's
path; VS Code puts it in ``__vsc_ipynb_file__``. Both come from outside: only short text is kept.
"""

from __future__ import annotations

import os
import sys
from typing import Any

__all__ = ["where"]


def _text(value: Any, longest: int) -> str | None:
    return value if isinstance(value, str) and 0 < len(value) <= longest else None


def where() -> tuple[str | None, str | None] | None:
    """(notebook path, cell id) of the cell running now, each None when unknown; None outside a
    kernel. Cheap (a few microseconds): it is asked on every call."""
    getipython = sys.modules.get("IPython.core.getipython")
    shell = getipython.get_ipython() if getipython is not None else None
    kernel = getattr(shell, "kernel", None)
    if kernel is None:
        return None
    try:
        parent = kernel.get_parent("shell")
    except Exception:  # ipykernel < 6
        parent = getattr(kernel, "_parent_header", None)
    metadata = parent.get("metadata") if isinstance(parent, dict) else None
    cell = _text(metadata.get("cellId"), 200) if isinstance(metadata, dict) else None
    path = _text(os.environ.get("JPY_SESSION_NAME"), 1000) or \
        _text(getattr(shell, "user_ns", {}).get("__vsc_ipynb_file__"), 1000)
    return path, cell
