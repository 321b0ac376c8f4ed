"""api type ``compatible``: any OpenAI-compatible server by base URL (Ollama, vLLM, LM Studio, llama.cpp)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..base import config
from ..base.errors import ConfigError
from .openai_client import OpenAIClient

__all__ = ["CompatibleClient"]


class CompatibleClient(OpenAIClient):
    """An OpenAI-compatible server at ``BASE_URL`` (config.ini) or ``OPENAI_BASE_URL``.

    ``MODEL`` names the model the server serves. No key is needed, and the configured OpenAI key
    (``OPENAI_API_KEY``) is never sent to such a server: a server that wants a key gets it from
    ``CompatibleClient(api_key=...)``, e.g.
    ``llmkit.register_client("vllm", CompatibleClient(base_url="http://gpu:8000/v1", api_key=...))``.
    """

    api_type = "compatible"
    structured_outputs = False  # unknown server: typed answers are asked for in the prompt
    max_stop = None  # its own limit, if any, is the server's to report

    def settings(self, base: config.Settings | None = None) -> config.Settings:
        return super().settings(base).with_values({"api_key": self._overrides.get("api_key")})

    def endpoint(self, settings: Mapping[str, Any]) -> str:
        url = settings.get("base_url")
        if not url:
            raise ConfigError(
                "the compatible api type needs the server's URL: set BASE_URL in config.ini or the "
                "OPENAI_BASE_URL environment variable (e.g. http://localhost:11434/v1 for Ollama), "
                "or pass CompatibleClient(base_url=...)")
        if not str(url).startswith(("http://", "https://")):
            raise ConfigError(f"BASE_URL = {url!r} is not valid; expected an http:// or https:// URL "
                              f"such as http://localhost:8000/v1")
        return str(url).rstrip("/")

    def credentials_configured(self, settings: Mapping[str, Any] | None = None) -> bool:
        s = settings if settings is not None else self.settings()
        return bool(s.get("base_url"))

    def _new_sdk_client(self, s: Mapping[str, Any]) -> Any:
        import openai
        return openai.OpenAI(api_key=s.get("api_key") or "not-needed", base_url=self.endpoint(s),
                             max_retries=0)
