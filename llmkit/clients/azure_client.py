"""`AzureClient`: Azure OpenAI deployments, by API key or Microsoft Entra ID.

Two URL forms: the v1 API (``https://RESOURCE.openai.azure.com/openai/v1/``, taken by the plain
OpenAI SDK client, no api-version, chat and Responses alike) and the classic deployment URLs
(``/openai/deployments/NAME/...?api-version=...``, taken by ``AzureOpenAI``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

from ..base import config
from ..base.errors import AuthenticationError, CallError, ConfigError
from .openai_client import OpenAIClient
from .prepare import Prepared

__all__ = ["AzureClient", "is_v1"]

ENTRA_SCOPE = "https://cognitiveservices.azure.com/.default"
_V1_SUFFIX = "/openai/v1"

_lock = threading.Lock()
_signed_in: dict[tuple[Any, ...], Any] = {}  # SDK clients built with a caller's token provider


def is_v1(settings: Mapping[str, Any]) -> bool:
    """Whether calls take Azure's v1 API: the endpoint ends in ``/openai/v1`` or
    ``AZURE_API_VERSION`` is ``v1``."""
    endpoint = str(settings.get("azure_endpoint") or "").rstrip("/")
    return endpoint.lower().endswith(_V1_SUFFIX) or \
        str(settings.get("azure_api_version") or "").strip().lower() == "v1"


class AzureClient(OpenAIClient):
    """Azure OpenAI. The ``model`` argument names the deployment; ``AZURE_DEPLOYMENTS`` says which
    model each deployment serves (for prices, budgets, limits and reasoning rules).

    Uses ``AZURE_OPENAI_ENDPOINT``, ``AZURE_API_VERSION`` and ``AZURE_OPENAI_KEY`` (or
    ``AZURE_OPENAI_API_KEY``); with no key it signs in with Microsoft Entra ID through
    azure-identity (``pip install 'llmkit[azure]'``), or through ``token_provider``: a function
    returning a bearer token, e.g. azure-identity's ``get_bearer_token_provider(credential,
    scope)``, for a credential of your choosing. A key, when configured, wins.
    """

    api_type = "azure"
    endpoint_key, secret_key = "azure_endpoint", "azure_api_key"

    def __init__(self, *, token_provider: Callable[[], str] | None = None, **overrides: Any) -> None:
        if token_provider is not None and not callable(token_provider):
            raise ConfigError("AzureClient(token_provider=...) takes a function returning a bearer "
                              f"token, not {type(token_provider).__name__}")
        super().__init__(**overrides)
        self.token_provider = token_provider

    def endpoint(self, settings: Mapping[str, Any]) -> str:
        endpoint = settings.get("azure_endpoint")
        if not endpoint:
            raise ConfigError("Azure needs an endpoint: set AZURE_OPENAI_ENDPOINT (or AZURE_ENDPOINT "
                              "in config.ini), e.g. https://my-resource.openai.azure.com or, for the "
                              "v1 API, https://my-resource.openai.azure.com/openai/v1")
        base = str(endpoint).rstrip("/")
        if not is_v1(settings):
            return base
        if base.lower().endswith(_V1_SUFFIX):
            return base
        return base.removesuffix("/openai") + _V1_SUFFIX

    def priced_as(self, settings: Mapping[str, Any], model: str) -> str:
        """The model deployment ``model`` serves, from ``AZURE_DEPLOYMENTS``; a deployment not
        listed is taken as named (one called ``gpt-4o`` is gpt-4o)."""
        deployments = settings.get("azure_deployments") or {}
        return str(deployments.get(model.lower(), model))

    def credentials_configured(self, settings: Mapping[str, Any] | None = None) -> bool:
        s = settings if settings is not None else self.settings()
        return bool(s.get("azure_endpoint")) and bool(
            s.get("azure_api_key") or self.token_provider is not None or _has_identity())

    def advice(self, error: CallError, p: Prepared) -> str | None:
        """A Responses call refused on a classic endpoint says where Azure serves Responses."""
        if p.kind != "responses" or is_v1(p.settings) or error.status not in (400, 404):
            return None
        return ("Azure serves the Responses API on its v1 endpoint: set AZURE_OPENAI_ENDPOINT="
                "https://RESOURCE.openai.azure.com/openai/v1 (or AZURE_API_VERSION=v1), or pass "
                "responses_api='never' where Chat Completions can answer")

    def _sdk(self, s: config.Settings) -> Any:
        """One SDK client per configuration, as for every client; one signed in through a
        caller's token provider is kept per provider as well."""
        if s.get("azure_api_key") or self.token_provider is None:
            return super()._sdk(s)
        identity = (self.endpoint(s), is_v1(s), s.get("azure_api_version"), self.token_provider)
        with _lock:
            sdk = _signed_in.get(identity)
            if sdk is None:
                sdk = _signed_in[identity] = self._new_sdk_client(s)
        return sdk

    def _new_sdk_client(self, s: Mapping[str, Any]) -> Any:
        import openai
        sign_in: str | Callable[[], str] = s.get("azure_api_key") or self._entra_provider()
        if is_v1(s):  # the plain client: a key or a token goes as Authorization: Bearer
            return openai.OpenAI(base_url=self.endpoint(s) + "/", api_key=sign_in, max_retries=0)
        kwargs: dict[str, Any] = {"azure_endpoint": self.endpoint(s),
                                  "api_version": s.get("azure_api_version"), "max_retries": 0}
        if isinstance(sign_in, str):
            kwargs["api_key"] = sign_in
        else:
            kwargs["azure_ad_token_provider"] = sign_in
        return openai.AzureOpenAI(**kwargs)

    def _entra_provider(self) -> Callable[[], str]:
        if self.token_provider is not None:
            return self.token_provider
        try:
            from azure.identity import DefaultAzureCredential, get_bearer_token_provider
        except ImportError:
            raise AuthenticationError(
                "no Azure OpenAI key (AZURE_OPENAI_KEY) and azure-identity is not installed "
                "for Microsoft Entra ID sign-in: set the key, or pip install 'llmkit[azure]'"
            ) from None
        provider: Callable[[], str] = get_bearer_token_provider(DefaultAzureCredential(), ENTRA_SCOPE)
        return provider


def _has_identity() -> bool:
    import importlib.util
    try:
        return importlib.util.find_spec("azure.identity") is not None
    except ModuleNotFoundError:
        return False
