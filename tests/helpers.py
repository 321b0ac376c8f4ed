"""Helpers shared by several test modules (fixtures live in conftest.py)."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

from tests.conftest import _ENV, SECRET
from tests.openai_server import OpenAITestServer

__all__ = ["cosine", "kernel_env"]


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    """Cosine similarity of two embeddings (of any length; they need not be normalised)."""
    return math.fsum(x * y for x, y in zip(a, b, strict=True)) / math.sqrt(
        math.fsum(x * x for x in a) * math.fsum(y * y for y in b))


def kernel_env(server: OpenAITestServer | None, home: Path, **extra: str) -> dict[str, str]:
    """The environment of a kernel (or Jupyter server) started by a test: no key, base URL or
    llmkit setting of the developer's; a cache folder and Jupyter/IPython folders under ``home``;
    with ``server``, its URL and the test key; then ``extra``."""
    env = {k: v for k, v in os.environ.items() if k not in _ENV and not k.startswith("LLMKIT_")}
    env.update(HOME=str(home), LLMKIT_CACHE_DIR=str(home / "cache"), IPYTHONDIR=str(home / "ipython"),
               JUPYTER_CONFIG_DIR=str(home / "jupyter"), JUPYTER_DATA_DIR=str(home / "jupyter-data"),
               JUPYTER_RUNTIME_DIR=str(home / "jupyter-runtime"), PYDEVD_DISABLE_FILE_VALIDATION="1")
    if server is not None:
        env.update(OPENAI_BASE_URL=server.base_url, OPENAI_API_KEY=SECRET)
    env.update(extra)
    return env
