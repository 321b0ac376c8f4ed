"""Configuration: defaults, files, environment and forced values, resolved when a call is made.

Layers, later ones winning key by key:

1. ``llmkit/base/config.ini`` (the package's defaults);
2. ``config.ini`` in the working directory (merged into the defaults, not replacing them);
3. environment variables (`ENV_VARS`, and ``LLMKIT_<KEY>`` for any key);
4. `force_default_value` (and `force_api_type` / `force_api_cache` in the registry);
5. arguments given to a call.

Every value is checked against `SCHEMA` (`llmkit.base.config_keys`, where every key is
defined); a bad one raises `ConfigError` naming where it came from, the key, the value and what was expected.

A ``config.ini`` in the working directory is untrusted (a cloned repository beside a notebook):
it may not set a `DESTINATION_KEYS` key (a file, folder or host) unless the user names that key in
the environment variable `TRUST_WORKDIR_VAR`. Paths are refused when resolved; hosts only when a
key would be sent there (`Settings.check_key_destination`, which also honours `TRUSTED_HOSTS_VAR`).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from .config_keys import DESTINATION_KEYS, ENV_VARS, HOST_KEYS, SCHEMA, parse_value
from .errors import ConfigError
from .secrets import HIDDEN, SECRET_KEYS, longest_first

__all__ = [
    "DESTINATION_KEYS",
    "ENV_VARS",
    "HOST_KEYS",
    "SCHEMA",
    "TRUSTED_HOSTS_VAR",
    "TRUST_WORKDIR_VAR",
    "Settings",
    "force_default_value",
    "package_defaults",
    "parse_value",
    "reset_forced",
    "resolve",
]

SECTIONS = {"openai", "llmkit"}
ALIASES = {"freq_penalty": "frequency_penalty"}  # TinyTroupe's spelling
PACKAGE_CONFIG = Path(__file__).with_name("config.ini")

TRUSTED_HOSTS_VAR = "LLMKIT_TRUSTED_HOSTS"
"""Comma-separated hosts that may receive keys although only ./config.ini names them."""

TRUST_WORKDIR_VAR = "LLMKIT_TRUST_WORKDIR_CONFIG"
"""Comma-separated `DESTINATION_KEYS` (or ``all``) that ./config.ini may set: the user's opt-in."""

_forced: dict[str, tuple[Any, str]] = {}
_file_cache: dict[Path, tuple[float, dict[str, tuple[str, str]]]] = {}
_generation = 0  # bumped whenever a forced value changes


def _read_file(path: Path) -> dict[str, tuple[str, str]]:
    """Raw values of one config file, with the source of each; re-read only when it changes."""
    try:
        mtime = path.stat().st_mtime
    except OSError:
        return {}
    cached = _file_cache.get(path)
    if cached and cached[0] == mtime:
        return cached[1]
    import configparser  # with the first file read: not on `import llmkit`
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(path, encoding="utf-8")
    except configparser.Error as exc:
        raise ConfigError(f"{path}: cannot parse: {exc}") from None
    values: dict[str, tuple[str, str]] = {}
    for section in parser.sections():
        if section.lower() not in SECTIONS:
            continue  # other programs' sections (TinyTroupe's [Simulation], ...)
        for key, raw in parser.items(section):
            key = ALIASES.get(key, key)
            if key in SCHEMA:
                values[key] = (raw, f"{path} [{section}]")
            else:
                warnings.warn(f"{path} [{section}]: unknown key {key.upper()} is ignored; "
                              f"known keys: {', '.join(k.upper() for k in SCHEMA)}", stacklevel=4)
    _file_cache[path] = (mtime, values)
    return values


def _layers() -> Iterator[tuple[str, Any, str]]:
    """(key, raw value, source) from every layer, lowest first."""
    for path in (PACKAGE_CONFIG, Path.cwd() / "config.ini"):
        for key, (raw, source) in _read_file(path).items():
            yield key, raw, source
    for key in SCHEMA:
        for name in (*ENV_VARS.get(key, ()), f"LLMKIT_{key.upper()}"):
            if os.environ.get(name):
                yield key, os.environ[name], f"environment variable {name}"
                break
    for key, (value, source) in _forced.items():
        yield key, value, source


class Settings(Mapping[str, Any]):
    """The resolved configuration at one moment: a read-only mapping whose repr hides secrets.

    Values are reachable as ``settings["model"]`` or ``settings.model``.
    """

    __slots__ = ("_data", "defaults", "workdir")

    def __init__(self, data: Mapping[str, Any], defaults: frozenset[str] = frozenset(),
                 workdir: frozenset[str] = frozenset()) -> None:
        object.__setattr__(self, "_data", dict(data))
        object.__setattr__(self, "defaults", defaults)  # keys at the package's default value
        object.__setattr__(self, "workdir", workdir)  # keys set by ./config.ini (untrusted)

    def with_values(self, values: Mapping[str, Any]) -> Settings:
        """A copy with ``values`` on top (set in code: neither package defaults nor ./config.ini)."""
        return Settings({**self._data, **values}, self.defaults - values.keys(),
                        self.workdir - values.keys())

    def check_key_destination(self, endpoint_key: str, secret_key: str) -> None:
        """Refuse to send a key to an endpoint that only a ``config.ini`` in the working directory
        named (a cloned repository beside a notebook could name any host).

        A key may go to an endpoint set by the environment, in code, or by the same file that
        holds the key, to hosts listed in the environment variable `TRUSTED_HOSTS_VAR`, and to
        one that ./config.ini names when the user allows that key (`TRUST_WORKDIR_VAR`).
        """
        endpoint = self._data.get(endpoint_key)
        if not endpoint or not self._data.get(secret_key) or endpoint_key not in self.workdir:
            return
        if secret_key in self.workdir:  # that file holds the key too: it is its own endpoint's
            return
        from urllib.parse import urlsplit
        host = (urlsplit(str(endpoint)).hostname or str(endpoint)).lower()
        trusted = {h.strip().lower() for h in os.environ.get(TRUSTED_HOSTS_VAR, "").split(",")}
        if host in trusted:
            return
        raise ConfigError(
            f"{Path.cwd() / 'config.ini'} sets {endpoint_key.upper()} = {endpoint}; llmkit does not "
            f"send your {secret_key.upper()} (configured elsewhere) to a host named only by a "
            f"config.ini in the working directory. If you trust {host}, allow it with the "
            f"environment variable {TRUSTED_HOSTS_VAR}={host}, or set {endpoint_key.upper()} "
            f"yourself (environment, or llmkit.force_default_value({endpoint_key!r}, ...))")

    def secrets(self) -> tuple[str, ...]:
        """The configured credentials, longest first (to replace them in text)."""
        return longest_first((str(self._data[k]) for k in SECRET_KEYS if self._data.get(k)), 1)

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __getattr__(self, key: str) -> Any:
        try:
            return self._data[key]
        except KeyError:
            raise AttributeError(key) from None

    def __repr__(self) -> str:
        shown = {k: (HIDDEN if k in SECRET_KEYS and v else v) for k, v in self._data.items()}
        return f"Settings({shown})"


def _fingerprint() -> tuple[Any, ...]:
    """What `resolve` depends on: working directory, its config.ini, the environment, forced values.

    Cheap (a few microseconds): the environment is read through its raw mapping with pre-encoded
    names, since ``os.environ.get`` for every name would cost more than the rest of a cache hit.
    """
    try:
        local = os.stat("config.ini").st_mtime_ns
    except OSError:
        local = None
    raw = getattr(os.environ, "_data", None)
    env = (tuple(map(raw.get, _ENV_KEYS)) if raw is not None
           else tuple(map(os.environ.get, _ENV_NAMES)))
    return (os.getcwd(), local, _generation, env)


_ENV_NAMES = (*dict.fromkeys(name for key in SCHEMA
                             for name in (*ENV_VARS.get(key, ()), f"LLMKIT_{key.upper()}")),
              TRUST_WORKDIR_VAR)
_ENV_KEYS = tuple(map(getattr(os.environ, "encodekey", str), _ENV_NAMES))
_resolved: tuple[tuple[Any, ...], Settings] | None = None


def resolve() -> Settings:
    """The configuration in effect now: every layer merged, the winning value of each key checked.

    The result is reused while the working directory, its ``config.ini``, the environment and the
    forced values stay the same, so a change to any of them takes effect on the next call.
    """
    global _resolved
    fingerprint = _fingerprint()
    cached = _resolved
    if cached is not None and cached[0] == fingerprint:
        return cached[1]
    winners: dict[str, tuple[Any, str]] = {}
    for key, value, source in _layers():
        winners[key] = (value, source)
    values: dict[str, Any] = {key: None for key in SCHEMA}
    defaults, workdir = set(), set()
    for key, (value, source) in winners.items():
        values[key] = value if source == "forced" else parse_value(key, value, source)
        if source.startswith(str(PACKAGE_CONFIG)):
            defaults.add(key)
        elif source.startswith(str(Path.cwd() / "config.ini")):
            workdir.add(key)
    untrusted = frozenset(workdir - _trusted_keys())  # the user vouched for the others
    _check_workdir(untrusted, values)
    settings = Settings(values, frozenset(defaults), untrusted)
    _resolved = (fingerprint, settings)
    return settings


def _trusted_keys() -> frozenset[str]:
    """The `DESTINATION_KEYS` the user allows ./config.ini to set (`TRUST_WORKDIR_VAR`)."""
    raw = os.environ.get(TRUST_WORKDIR_VAR, "")
    named = {name.strip().lower() for name in raw.split(",")} - {""}
    if named == {"all"}:
        return DESTINATION_KEYS
    if unknown := named - DESTINATION_KEYS:
        raise ConfigError(f"environment variable {TRUST_WORKDIR_VAR}={raw!r}: "
                          f"{', '.join(sorted(k.upper() for k in unknown))} cannot be trusted here; "
                          f"expected 'all' or a comma-separated list of "
                          f"{', '.join(sorted(k.upper() for k in DESTINATION_KEYS))}")
    return frozenset(named)


def _check_workdir(untrusted: frozenset[str], values: Mapping[str, Any]) -> None:
    """Refuse a file or folder that ./config.ini set and the user did not allow.

    Hosts are checked where a key would be sent (`Settings.check_key_destination`): a compatible
    server named with no key, as the tutorials show, stays allowed."""
    refused = sorted(k for k in untrusted & (DESTINATION_KEYS - HOST_KEYS) if values[k] is not None)
    if refused:
        key = refused[0]
        raise ConfigError(
            f"{Path.cwd() / 'config.ini'} sets {key.upper()} = {values[key]!r}; llmkit does not take "
            f"a file or folder ({', '.join(k.upper() for k in refused)}) from a config.ini in the "
            f"working directory unless you allow it: if you trust this file, set the environment "
            f"variable {TRUST_WORKDIR_VAR}={','.join(refused)} (or 'all'); otherwise remove the "
            f"key from that file, or set it yourself (environment variable LLMKIT_{key.upper()}, "
            f"or llmkit.force_default_value({key!r}, ...))")


def package_defaults() -> dict[str, Any]:
    """The values of llmkit's own ``config.ini`` (what a display leaves out as not worth showing)."""
    return {key: parse_value(key, raw, source)
            for key, (raw, source) in _read_file(PACKAGE_CONFIG).items()}


def force_default_value(key: str, value: Any) -> None:
    """Override a configuration key (lower case, as in `SCHEMA`) for this process.

    ``None`` removes the override.  The value is checked now.
    """
    key = key.lower()
    source = f"force_default_value({key!r}, ...)"
    if value is None:
        parse_value(key, None, source)
        _forced.pop(key, None)
        _changed()
        return
    _forced[key] = (parse_value(key, value, source), "forced")
    _changed()


def _changed() -> None:
    global _generation
    _generation += 1


def reset_forced() -> None:
    """Remove every forced value (tests use this)."""
    _forced.clear()
    _changed()
