"""llmkit: LLM calls for people who iterate on prompts in Jupyter.

``import llmkit`` stays light: the ``openai`` SDK, tiktoken, IPython and ipywidgets are imported
only when a call, a token count or the notebook layer needs them. So is most of llmkit itself:
the errors and the everyday names (`LLMCall`, `LLMChat`, ``@llm``, `Result`, `Completion`,
`force_default_value`) come with the package, the client chain (cache, history, the SDK) with
the first call, and every other public name on first use (`__getattr__`, PEP 562). All are in
`__all__` and ``dir(llmkit)``, and ``from llmkit import X`` works for each.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .base.config import force_default_value
from .base.errors import (
    AuthenticationError,
    BudgetExceededError,
    CacheError,
    CacheWarning,
    CallError,
    ConfigError,
    ContextLengthError,
    HistoryError,
    HistoryWarning,
    InvalidRequestError,
    LLMKitError,
    LLMKitWarning,
    MissingVariableError,
    NonTerminalError,
    OutputTypeError,
    RateLimitError,
    ReplayMissError,
    ServerError,
    TemplateError,
    ToolLoopError,
    TransportError,
)
from .base.result import Completion, Result
from .calls.chat import LLMChat
from .calls.decorator import llm
from .calls.llmcall import LLMCall

if TYPE_CHECKING:  # imported on first use (see `_LAZY`); named here for type checkers and readers
    from .base.images import Image, image
    from .base.models import ModelInfo, model_info
    from .base.runs import Run, Runs, Spend
    from .base.tokens import count_tokens
    from .calls.batch import FailedRow, last_batch
    from .clients.azure_client import AzureClient
    from .clients.compatible import CompatibleClient
    from .clients.history import history, spend
    from .clients.local import LocalClient
    from .clients.openai_client import OpenAIClient
    from .clients.recorder import experiment
    from .clients.registry import client, force_api_cache, force_api_type, register_client, registered

# Public name -> the module that defines it (see `_module`), imported when the name is first used.
_LAZY = {
    "Image": "images", "image": "images",
    "ModelInfo": "models", "model_info": "models",
    "Run": "runs", "Runs": "runs", "Spend": "runs",
    "count_tokens": "tokens",
    "FailedRow": "batch", "last_batch": "batch",
    "AzureClient": "azure_client",
    "CompatibleClient": "compatible",
    "experiment": "recorder", "history": "history", "spend": "history",
    "LocalClient": "local",
    "OpenAIClient": "openai_client",
    "client": "registry", "force_api_cache": "registry", "force_api_type": "registry",
    "register_client": "registry", "registered": "registry",
}


def _module(key: str) -> Any:
    """The module of a `_LAZY` entry, by import statements (not by name: `tests/test_layers.py`
    sees every edge of the import graph)."""
    if key == "images":
        from .base import images
        return images
    if key == "models":
        from .base import models
        return models
    if key == "runs":
        from .base import runs
        return runs
    if key == "tokens":
        from .base import tokens
        return tokens
    if key == "batch":
        from .calls import batch
        return batch
    if key == "azure_client":
        from .clients import azure_client
        return azure_client
    if key == "compatible":
        from .clients import compatible
        return compatible
    if key == "history":
        from .clients import history
        return history
    if key == "recorder":
        from .clients import recorder
        return recorder
    if key == "local":
        from .clients import local
        return local
    if key == "openai_client":
        from .clients import openai_client
        return openai_client
    from .clients import registry
    return registry


def __getattr__(name: str) -> Any:
    """A `_LAZY` name, imported on first use and kept (an import error propagates as it is)."""
    key = _LAZY.get(name)
    if key is None:
        raise AttributeError(f"module 'llmkit' has no attribute {name!r}")
    value = getattr(_module(key), name)
    globals()[name] = value  # later uses are plain attribute reads
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__version__ = "0.1.0"

__all__ = [
    "AuthenticationError",
    "AzureClient",
    "BudgetExceededError",
    "CacheError",
    "CacheWarning",
    "CallError",
    "CompatibleClient",
    "Completion",
    "ConfigError",
    "ContextLengthError",
    "FailedRow",
    "HistoryError",
    "HistoryWarning",
    "Image",
    "InvalidRequestError",
    "LLMCall",
    "LLMChat",
    "LLMKitError",
    "LLMKitWarning",
    "LocalClient",
    "MissingVariableError",
    "ModelInfo",
    "NonTerminalError",
    "OpenAIClient",
    "OutputTypeError",
    "RateLimitError",
    "ReplayMissError",
    "Result",
    "Run",
    "Runs",
    "ServerError",
    "Spend",
    "TemplateError",
    "ToolLoopError",
    "TransportError",
    "client",
    "count_tokens",
    "experiment",
    "force_api_cache",
    "force_api_type",
    "force_default_value",
    "history",
    "image",
    "last_batch",
    "llm",
    "model_info",
    "playground",
    "register_client",
    "registered",
    "spend",
]


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext llmkit``: register the magics (the notebook layer is imported only now)."""
    from .notebook.magics import load_ipython_extension as load
    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """``%unload_ext llmkit``: llmkit's warnings are shown as Python shows them again."""
    from .notebook.magics import unload_ipython_extension as unload
    unload(ipython)


def playground(call: LLMCall, **variables: Any) -> Any:
    """The prompt-iteration widget for ``call`` (same as ``call.playground()``)."""
    from .notebook.playground import playground as make
    return make(call, **variables)
