"""Where the notebook layer plugs in, so that no lower layer ever imports it.

`Result` and `LLMCall` displays, the batch progress bar and the playground live in
``llmkit.notebook``. Lower layers reach them only through this module, which imports a notebook
module by name the first time it is asked for one: when IPython asks for a display, or when a
batch runs inside a kernel. Plain Python scripts never load the notebook layer.
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType
from typing import Any

__all__ = ["in_kernel", "mimebundle", "notebook"]


def notebook(name: str) -> ModuleType:
    """The module ``llmkit.notebook.<name>``, imported on first use."""
    return importlib.import_module(f"llmkit.notebook.{name}")


def mimebundle(obj: Any) -> dict[str, Any]:
    """The rich display of ``obj`` (text/plain, text/html, text/markdown), built by the notebook
    layer's `llmkit.notebook.display.mimebundle`."""
    return notebook("display").mimebundle(obj)


def in_kernel() -> bool:
    """True inside a live Jupyter kernel (the IPython shell is ipykernel's ``ZMQInteractiveShell``):
    the lower layers ask it before reaching for a widget. Looks only at modules already imported,
    so plain Python never imports IPython here."""
    zmqshell, ipython = sys.modules.get("ipykernel.zmqshell"), sys.modules.get("IPython")
    if zmqshell is None or ipython is None:
        return False
    return isinstance(ipython.get_ipython(), zmqshell.ZMQInteractiveShell)
