"""Shared pytest fixtures."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from llmkit.base import config
from llmkit.clients import budget, limiter, recorder, registry, store
from tests.openai_server import OpenAITestServer


@pytest.fixture(scope="session")
def openai_server_session() -> Iterator[OpenAITestServer]:
    """One OpenAI-compatible test server for the whole session."""
    with OpenAITestServer() as server:
        yield server


@pytest.fixture
def openai_server(openai_server_session: OpenAITestServer) -> OpenAITestServer:
    """The session server with default knobs, empty queue and fresh recordings."""
    server = openai_server_session
    server.latency = 0.0
    server.rate_limit_rps = None
    server.required_api_key = None
    server.key_error = "openai"
    server.reset()
    return server


SECRET = "sk-test-SECRET-4242"
_ENV = ("OPENAI_API_KEY", "OPENAI_BASE_URL", "AZURE_OPENAI_ENDPOINT", "AZURE_OPENAI_KEY",
        "AZURE_OPENAI_API_KEY", "AZURE_API_VERSION", "OPENAI_API_VERSION")


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Every test: its own working directory and cache folder, no keys, no forced values."""
    for name in [*_ENV, *(n for n in os.environ if n.startswith("LLMKIT_"))]:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LLMKIT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    yield tmp_path
    config.reset_forced()
    registry._reset()
    limiter._reset()
    recorder._reset()
    budget._reset()
    store._close_caches()


@pytest.fixture
def llm(openai_server: OpenAITestServer, monkeypatch: pytest.MonkeyPatch) -> OpenAITestServer:
    """llmkit pointed at the test server, with a (fake) key and short retry waits."""
    monkeypatch.setenv("OPENAI_BASE_URL", openai_server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    config.force_default_value("waiting_time", 0.01)
    config.force_default_value("max_waiting_time", 0.05)
    return openai_server


@pytest.fixture
def ip(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A fresh IPython shell with ``%load_ext llmkit`` done; IPython's global hooks restored."""
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    monkeypatch.setenv("IPYTHONDIR", str(isolated / "ipython"))
    saved = sys.modules["__main__"], sys.displayhook, sys.excepthook
    InteractiveShell.clear_instance()
    cfg = Config()
    cfg.HistoryManager.enabled = False
    shell = InteractiveShell.instance(config=cfg)
    sys.modules["__main__"], sys.displayhook, sys.excepthook = saved
    shell.run_line_magic("load_ext", "llmkit")
    yield shell
    shell.run_line_magic("unload_ext", "llmkit")  # warnings shown as Python shows them again
    InteractiveShell.clear_instance()
