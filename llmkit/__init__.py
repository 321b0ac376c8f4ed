"""llmkit: LLM calls for people who iterate on prompts in Jupyter.

``import llmkit`` stays light: the ``openai`` SDK, tiktoken, IPython and ipywidgets are imported
only when a call, a token count or the notebook layer needs them.
"""

from __future__ import annotations

from typing import Any

from .azure_client import AzureClient
from .batch import FailedRow
from .compatible import CompatibleClient
from .config import force_default_value
from .errors import (
    AttemptsExhaustedError,
    AuthenticationError,
    CacheError,
    CallError,
    ConfigError,
    ContextLengthError,
    InvalidRequestError,
    LLMKitError,
    MissingVariableError,
    NonTerminalError,
    RateLimitError,
    ReplayMissError,
    ServerError,
    TemplateError,
    TransportError,
)
from .llmcall import LLMCall
from .local import LocalClient
from .openai_client import OpenAIClient
from .registry import client, force_api_cache, force_api_type, register_client, registered
from .result import Completion, Result
from .tokens import count_tokens

__version__ = "0.1.0"

__all__ = [
    "AttemptsExhaustedError",
    "AuthenticationError",
    "AzureClient",
    "CacheError",
    "CallError",
    "CompatibleClient",
    "Completion",
    "ConfigError",
    "ContextLengthError",
    "FailedRow",
    "InvalidRequestError",
    "LLMCall",
    "LLMKitError",
    "LocalClient",
    "MissingVariableError",
    "NonTerminalError",
    "OpenAIClient",
    "RateLimitError",
    "ReplayMissError",
    "Result",
    "ServerError",
    "TemplateError",
    "TransportError",
    "client",
    "count_tokens",
    "force_api_cache",
    "force_api_type",
    "force_default_value",
    "playground",
    "register_client",
    "registered",
]


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext llmkit``: register the magics (the notebook layer is imported only now)."""
    from .magics import load_ipython_extension as load
    load(ipython)


def playground(call: LLMCall, **variables: Any) -> Any:
    """The prompt-iteration widget for ``call`` (same as ``call.playground()``)."""
    from .prompt_playground import playground as make
    return make(call, **variables)
