"""The package's public surface and import cost."""

from __future__ import annotations

import subprocess
import sys

import llmkit


def test_import_stays_light() -> None:
    code = ("import sys, llmkit; heavy = [m for m in ('openai', 'tiktoken', 'IPython', 'ipywidgets') "
            "if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_public_api() -> None:
    for name in llmkit.__all__:
        assert hasattr(llmkit, name), name
    for name in ["LLMCall", "OpenAIClient", "AzureClient", "client", "register_client", "force_api_type",
                 "force_api_cache", "force_default_value", "count_tokens", "InvalidRequestError",
                 "NonTerminalError"]:
        assert name in llmkit.__all__
    assert callable(llmkit.load_ipython_extension)
