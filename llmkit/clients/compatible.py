"""api type ``compatible``: any OpenAI-compatible server by base URL (Ollama, vLLM, LM Studio, llama.cpp)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..base import config
from ..base.errors import CallError, ConfigError
from .openai_client import OpenAIClient
from .prepare import Prepared

__all__ = ["CompatibleClient"]


class CompatibleClient(OpenAIClient):
    """An OpenAI-compatible server at ``BASE_URL`` (config.ini) or ``OPENAI_BASE_URL``.

    ``MODEL`` names the model the server serves. The configured OpenAI key (``OPENAI_API_KEY``) is
    never sent to such a server. A server that wants a key (a LiteLLM proxy with a master key,
    vLLM with ``--api-key``) gets ``COMPATIBLE_API_KEY`` (best set as the environment variable
    ``LLMKIT_COMPATIBLE_API_KEY``), or ``CompatibleClient(api_key=...)`` in code, e.g.
    ``llmkit.register_client("vllm", CompatibleClient(base_url="http://gpu:8000/v1", api_key=...))``.
    That key goes to the compatible server only, and, like every key, not to a BASE_URL that only
    a ``config.ini`` in the working directory names (unless that file holds the key too).
    """

    api_type = "compatible"
    structured_outputs = False  # unknown server: typed answers are asked for in the prompt
    max_stop = None  # its own limit, if any, is the server's to report
    secret_key = "compatible_api_key"

    def advice(self, error: CallError, p: Prepared) -> str | None:
        """A 401 (or a 400 with no key sent: LiteLLM's proxy) says how to give the server its key."""
        has_key = bool(p.settings.get("compatible_api_key"))
        litellm = "No connected db" in str(error.args[0])
        if not (error.status == 401 or (error.status == 400 and (litellm or not has_key))):
            return None
        how = ("set COMPATIBLE_API_KEY to its key: the environment variable "
               "LLMKIT_COMPATIBLE_API_KEY, or CompatibleClient(api_key=...) in code")
        if error.status == 401:
            sent = "rejected the key sent" if has_key else "wants a key, and none was sent"
            return f"the compatible server (BASE_URL) {sent}; {how}"
        if has_key:
            return f"a LiteLLM proxy answers a wrong key with 400 'No connected db.'; {how}"
        return (f"no key was sent; if the compatible server needs one (a LiteLLM proxy answers a "
                f"missing key with 400 'No connected db.'), {how}")

    def settings(self, base: config.Settings | None = None) -> config.Settings:
        given = self._overrides.get("api_key")  # CompatibleClient(api_key=...): set in code
        return super().settings(base).with_values(
            {"api_key": None, **({"compatible_api_key": given} if given else {})})

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
        return openai.OpenAI(api_key=s.get("compatible_api_key") or "not-needed",
                             base_url=self.endpoint(s), max_retries=0)
