"""The client registry: which client answers `client()`, by api type."""

from __future__ import annotations

import threading
from collections.abc import Callable

from ..base import config
from ..base.errors import ConfigError
from .openai_client import OpenAIClient

__all__ = [
    "client",
    "client_for",
    "force_api_cache",
    "force_api_type",
    "force_default_value",
    "register_client",
    "registered",
]

force_default_value = config.force_default_value

_lock = threading.Lock()
_clients: dict[str, OpenAIClient] = {}
_factories: dict[str, Callable[[], OpenAIClient]] = {}
_forced_api_type: str | None = None
_UNCHANGED = object()


def _builtin_factories() -> dict[str, Callable[[], OpenAIClient]]:
    from .azure_client import AzureClient
    from .compatible import CompatibleClient
    from .local import LocalClient
    return {"openai": OpenAIClient, "azure": AzureClient, "local": LocalClient,
            "compatible": CompatibleClient}


def register_client(api_type: str, client: OpenAIClient | Callable[[], OpenAIClient]) -> None:
    """Register a client (or a function that builds one on first use) under ``api_type``."""
    if not isinstance(api_type, str) or not api_type.strip():
        raise ConfigError(f"register_client: api_type must be a non-empty string, got {api_type!r}")
    key = api_type.strip().lower()
    with _lock:
        _clients.pop(key, None)
        if isinstance(client, OpenAIClient):
            _clients[key] = client
        elif callable(client):
            _factories[key] = client
        else:
            raise ConfigError(f"register_client: client must be an OpenAIClient (or a function "
                              f"returning one), got {type(client).__name__}")


def registered() -> list[str]:
    """Names of every registered api type."""
    with _lock:
        return sorted({*_builtin_factories(), *_factories, *_clients})


def _lookup(api_type: str) -> OpenAIClient:
    key = api_type.strip().lower()
    with _lock:
        if key in _clients:
            return _clients[key]
        factory = _factories.get(key) or _builtin_factories().get(key)
    if factory is None:
        raise ConfigError(f"unknown api type {api_type!r}; registered: {', '.join(registered())} "
                          "(add one with llmkit.register_client)")
    made = factory()
    with _lock:
        return _clients.setdefault(key, made)


def client(api_type: str | None = None) -> OpenAIClient:
    """The active client: the forced api type, else the configured ``API_TYPE``.

    A forced api type needs no configuration read, so ``client().send_message(...)`` then reads
    it once (in the call), as `LLMCall` does."""
    chosen = api_type if api_type is not None else _forced_api_type
    if chosen is not None:
        found = _clients.get(chosen)  # the common case, without the lock
        return found if found is not None else _lookup(chosen)
    return client_for(config.resolve())


def client_for(settings: config.Settings) -> OpenAIClient:
    """The active client for configuration already read (one read per call)."""
    chosen = _forced_api_type or settings["api_type"] or "openai"
    found = _clients.get(chosen)  # the common case, without the lock
    return found if found is not None else _lookup(chosen)


def force_api_type(api_type: str | None) -> None:
    """Make ``api_type`` the active one for this process; ``None`` restores the configured one."""
    global _forced_api_type
    if api_type is not None and not isinstance(api_type, str):
        raise ConfigError(f"force_api_type: api_type must be a name such as 'openai' or 'local' "
                          f"(or None), got {type(api_type).__name__}; registered: "
                          f"{', '.join(registered())}")
    if api_type is not None:
        _lookup(api_type)  # fails now, listing the registered ones, if unknown
        api_type = api_type.strip().lower()
    _forced_api_type = api_type


def force_api_cache(cache_api_calls: bool, cache_dir: str | None = None, *,
                    replay: str | object | None = _UNCHANGED) -> None:
    """Turn caching on or off for this process and, optionally, choose the cache folder.

    ``replay=PATH`` answers every call from that recording (read-only; a call not in it raises
    `ReplayMissError`); ``replay=None`` turns replay off again.
    """
    force_default_value("cache_api_calls", bool(cache_api_calls))
    if cache_dir is not None:
        force_default_value("cache_dir", str(cache_dir))
    if replay is not _UNCHANGED:
        force_default_value("replay", "" if replay is None else str(replay))  # "" wins over LLMKIT_REPLAY


def _reset() -> None:
    """Forget registered clients and the forced api type (tests use this)."""
    global _forced_api_type
    with _lock:
        _clients.clear()
        _factories.clear()
    _forced_api_type = None
