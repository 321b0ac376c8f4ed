"""`AzureClient`: Azure OpenAI deployments, by API key or Microsoft Entra ID."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..base.errors import AuthenticationError, ConfigError
from .openai_client import OpenAIClient

__all__ = ["AzureClient"]

ENTRA_SCOPE = "https://cognitiveservices.azure.com/.default"


class AzureClient(OpenAIClient):
    """Azure OpenAI. The ``model`` argument names the deployment; ``AZURE_DEPLOYMENTS`` says which
    model each deployment serves (for prices, budgets, limits and reasoning rules).

    Uses ``AZURE_OPENAI_ENDPOINT``, ``AZURE_API_VERSION`` and ``AZURE_OPENAI_KEY`` (or
    ``AZURE_OPENAI_API_KEY``); with no key it signs in with Microsoft Entra ID through
    azure-identity (``pip install 'llmkit[azure]'``).
    """

    api_type = "azure"
    endpoint_key, secret_key = "azure_endpoint", "azure_api_key"

    def endpoint(self, settings: Mapping[str, Any]) -> str:
        endpoint = settings.get("azure_endpoint")
        if not endpoint:
            raise ConfigError("Azure needs an endpoint: set AZURE_OPENAI_ENDPOINT (or AZURE_ENDPOINT "
                              "in config.ini), e.g. https://my-resource.openai.azure.com")
        return str(endpoint).rstrip("/")

    def priced_as(self, settings: Mapping[str, Any], model: str) -> str:
        """The model deployment ``model`` serves, from ``AZURE_DEPLOYMENTS``; a deployment not
        listed is taken as named (one called ``gpt-4o`` is gpt-4o)."""
        deployments = settings.get("azure_deployments") or {}
        return str(deployments.get(model.lower(), model))

    def credentials_configured(self, settings: Mapping[str, Any] | None = None) -> bool:
        s = settings if settings is not None else self.settings()
        return bool(s.get("azure_endpoint")) and bool(s.get("azure_api_key") or _has_identity())

    def _new_sdk_client(self, s: Mapping[str, Any]) -> Any:
        import openai
        kwargs: dict[str, Any] = {"azure_endpoint": self.endpoint(s),
                                  "api_version": s.get("azure_api_version"), "max_retries": 0}
        if s.get("azure_api_key"):
            kwargs["api_key"] = s["azure_api_key"]
        else:
            try:
                from azure.identity import DefaultAzureCredential, get_bearer_token_provider
            except ImportError:
                raise AuthenticationError(
                    "no Azure OpenAI key (AZURE_OPENAI_KEY) and azure-identity is not installed "
                    "for Microsoft Entra ID sign-in: set the key, or pip install 'llmkit[azure]'"
                ) from None
            kwargs["azure_ad_token_provider"] = get_bearer_token_provider(
                DefaultAzureCredential(), ENTRA_SCOPE)
        return openai.AzureOpenAI(**kwargs)


def _has_identity() -> bool:
    import importlib.util
    try:
        return importlib.util.find_spec("azure.identity") is not None
    except ModuleNotFoundError:
        return False
