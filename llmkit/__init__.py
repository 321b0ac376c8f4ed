"""llmkit: LLM calls for people who iterate on prompts in Jupyter.

``import llmkit`` stays light: the ``openai`` SDK, tiktoken, IPython and ipywidgets are imported
only when a call, a token count or the notebook layer needs them.
"""

from __future__ import annotations

from typing import Any

from .base.config import force_default_value
from .base.errors import (
    AuthenticationError,
    BudgetExceededError,
    CacheError,
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
from .base.images import Image, image
from .base.models import ModelInfo, model_info
from .base.result import Completion, Result
from .base.runs import Run, Runs, Spend
from .base.tokens import count_tokens
from .calls.batch import FailedRow, last_batch
from .calls.chat import LLMChat
from .calls.decorator import llm
from .calls.llmcall import LLMCall
from .clients.azure_client import AzureClient
from .clients.compatible import CompatibleClient
from .clients.history import history, spend
from .clients.local import LocalClient
from .clients.openai_client import OpenAIClient
from .clients.recorder import experiment
from .clients.registry import client, force_api_cache, force_api_type, register_client, registered

__version__ = "0.1.0"

__all__ = [
    "AuthenticationError",
    "AzureClient",
    "BudgetExceededError",
    "CacheError",
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


def playground(call: LLMCall, **variables: Any) -> Any:
    """The prompt-iteration widget for ``call`` (same as ``call.playground()``)."""
    from .notebook.playground import playground as make
    return make(call, **variables)
