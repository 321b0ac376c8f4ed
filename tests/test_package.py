"""The package's public surface and import cost (the figures are in ``make bench``, not here)."""

from __future__ import annotations

import subprocess
import sys

import llmkit

HEAVY = ("openai", "tiktoken", "IPython", "ipywidgets", "pydantic", "redis", "jinja2", "diskcache",
         "sqlite3")


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)


def test_import_stays_light() -> None:
    out = _run(f"import sys, llmkit; print([m for m in {HEAVY!r} if m in sys.modules])")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_public_api() -> None:
    for name in llmkit.__all__:
        assert hasattr(llmkit, name), name
    for name in ["LLMCall", "OpenAIClient", "AzureClient", "client", "register_client", "force_api_type",
                 "force_api_cache", "force_default_value", "count_tokens", "InvalidRequestError",
                 "NonTerminalError"]:
        assert name in llmkit.__all__
    assert callable(llmkit.load_ipython_extension)


def test_every_public_name_imports_in_a_fresh_interpreter_and_is_listed() -> None:
    """Names imported on first use work with ``from llmkit import X`` and show in ``dir()``."""
    code = ("import llmkit\n"
            "missing = sorted(set(llmkit.__all__) - set(dir(llmkit)))\n"
            "for name in llmkit.__all__:\n"
            "    exec(f'from llmkit import {name}')\n"
            "from llmkit import OpenAIClient, client\n"
            "print(missing, client is llmkit.client, OpenAIClient.__module__)")
    out = _run(code)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["[]", "True", "llmkit.clients.openai_client"]


def test_a_broken_module_fails_loudly_when_its_name_is_used() -> None:
    """Loading a name on first use hides no error: an import error surfaces as itself, and an
    unknown name is an AttributeError."""
    code = ("import sys; sys.modules['llmkit.base.tokens'] = None\n"
            "import llmkit\n"
            "try:\n"
            "    from llmkit import count_tokens\n"
            "except ImportError as exc:\n"
            "    print('ImportError', exc.name)\n"
            "try:\n"
            "    llmkit.no_such_name\n"
            "except AttributeError as exc:\n"
            "    print('AttributeError', exc)")
    out = _run(code)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        "ImportError llmkit.base.tokens",
        "AttributeError module 'llmkit' has no attribute 'no_such_name'"]
