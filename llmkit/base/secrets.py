"""Secrets: what is a credential, and how it is hidden, decided in one place.

A credential is known two ways. By *name*: a configuration key in `SECRET_KEYS`, or a call
parameter, header or body field whose name suggests one (`is_secret_name`, `is_credential`); such
values are shown as `HIDDEN` and never written down. By *value*: a server may quote a key back in
any text, so the values a call carries (`request_secrets`) are replaced wherever they appear
(`scrub`, `scrub_all`). Configuration, `Prepared`, the error boundary, the run history, reprs and
the notebook displays all ask this module, so one rule decides what is hidden everywhere.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = [
    "CREDENTIAL_FIELDS",
    "HARMLESS_HEADERS",
    "HIDDEN",
    "SECRET_KEYS",
    "SHORTEST",
    "SHORTEST_SHOWN",
    "hide",
    "is_credential",
    "is_harmless_header",
    "is_secret_name",
    "longest_first",
    "public_request",
    "request_secrets",
    "scrub",
    "scrub_all",
    "scrubber",
]

HIDDEN = "<hidden>"
"""What a hidden credential reads as, everywhere."""

SECRET_KEYS = frozenset({"api_key", "azure_api_key", "compatible_api_key"})
"""Configuration keys whose values are credentials: never shown, logged or cached."""

CREDENTIAL_FIELDS = ("extra_headers", "extra_body")
"""Request fields whose entries are hidden by name in the public view of a request (a header such
as ``Authorization`` or a body field such as ``api_key`` travels there)."""

SHORTEST = 4
"""A call's secrets shorter than this are not replaced in text (an empty or one-letter "key"
would garble every message it was replaced in)."""

SHORTEST_SHOWN = 8
"""Displays replace only keys this long: they scrub whole prompts and answers, where a short
placeholder key (``"none"`` for a local server) is an ordinary word."""

HARMLESS_HEADERS = frozenset({
    "accept", "accept-encoding", "accept-language", "cache-control", "content-type", "http-referer",
    "openai-beta", "openai-organization", "openai-project", "prefer", "user-agent", "x-title",
    "x-request-id", "x-client-request-id", "x-ms-client-request-id", "x-ms-useragent",
})
"""Headers whose values are recorded and shown. Every other ``extra_headers`` value is hidden and
scrubbed: a gateway's credential can have any name (``Cookie``, ``X-Gateway-Auth``,
``X-Access-Token-Id``), so a header is harmless only when it is known to be."""

_SECRET_NAME = re.compile(r"key|secret|password|token$|authorization|headers", re.IGNORECASE)


def is_secret_name(name: str) -> bool:
    """True when ``name`` (a parameter, header or field) suggests a credential: ``api_key``,
    ``Authorization``, ``x-secret``, ``access_token``, ``extra_headers``..."""
    return _SECRET_NAME.search(name) is not None


def is_harmless_header(name: str) -> bool:
    """True for a header in `HARMLESS_HEADERS` (case-insensitive): its value may be shown."""
    return name.strip().lower() in HARMLESS_HEADERS


def is_credential(name: str, value: Any) -> bool:
    """True when a parameter may hold a credential: by its name, or because it is a mapping with
    an entry whose name suggests one (``extra_body={"api_key": ...}``)."""
    return is_secret_name(name) or (
        isinstance(value, Mapping) and any(is_secret_name(str(k)) for k in value))


def longest_first(values: Iterable[str], shortest: int = SHORTEST) -> tuple[str, ...]:
    """The distinct ``values`` of at least ``shortest`` characters, longest first: the order
    `scrub` needs, so a key that contains another is replaced whole."""
    return tuple(sorted({v for v in values if len(v) >= shortest}, key=len, reverse=True))


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every one of ``secrets`` replaced by `HIDDEN`, in the order given (see
    `longest_first`); empty ones are skipped."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, HIDDEN)
    return text


def scrubber(values: Iterable[str], shortest: int = SHORTEST) -> Callable[[str], str]:
    """A function that scrubs text of ``values`` (those of at least ``shortest`` characters),
    sorted once for the many texts a display scrubs."""
    found = longest_first(values, shortest)
    return lambda text: scrub(text, found)


def scrub_all(value: Any, secrets: Iterable[str]) -> Any:
    """A JSON-like structure (mappings, lists, text, at any depth) with every one of ``secrets``
    replaced in its text, keys included; other values are kept as they are."""
    found = tuple(secrets)

    def walk(item: Any) -> Any:
        if isinstance(item, str):
            return scrub(item, found)
        if isinstance(item, Mapping):
            return {walk(k): walk(v) for k, v in item.items()}
        if isinstance(item, (list, tuple)):
            return [walk(v) for v in item]
        return item
    return walk(value)


def hide(mapping: Mapping[Any, Any], *, headers: bool = False) -> dict[Any, Any]:
    """``mapping`` with the value of every entry whose name suggests a credential as `HIDDEN`;
    for ``headers``, every value but those of `HARMLESS_HEADERS`."""
    return {k: HIDDEN if _hidden(str(k), headers) else v for k, v in mapping.items()}


def _hidden(name: str, header: bool) -> bool:
    return not is_harmless_header(name) if header else is_secret_name(name)


def public_request(request: dict[str, Any], configured: Callable[[], Iterable[str]]) -> dict[str, Any]:
    """The request as it may be hashed, recorded and shown: ``extra_headers`` values hidden
    unless harmless (`HARMLESS_HEADERS`), ``extra_body`` entries hidden by name, and every
    configured key (``configured()``) replaced wherever it then appears (recordings are meant to
    be committed). A request with neither field is returned as is, and
    ``configured`` is not asked (most calls: it would cost ~2 µs each)."""
    if not any(name in request for name in CREDENTIAL_FIELDS):
        return request
    public = dict(request)
    for name in CREDENTIAL_FIELDS:
        if isinstance(public.get(name), Mapping):
            public[name] = hide(public[name], headers=name == "extra_headers")
    found = longest_first(configured(), 1)
    return scrub_all(public, found) if found else public


def request_secrets(request: Mapping[str, Any], endpoint: str,
                    configured: Iterable[str] = ()) -> tuple[str, ...]:
    """Every credential a call carries, longest first, as a server may quote it back: the
    ``configured`` keys, the `CREDENTIAL_FIELDS` values `public_request` hides (with and without a
    ``Bearer ``-style prefix), and the endpoint's user:password (also as the Basic auth the HTTP
    client makes of it)."""
    found = set(configured)
    for name in CREDENTIAL_FIELDS:
        sent = request.get(name)
        if isinstance(sent, Mapping):
            for key, value in sent.items():
                if _hidden(str(key), name == "extra_headers") and isinstance(value, str) and value:
                    found.update((value, value.split(" ", 1)[-1]))
    from urllib.parse import unquote, urlsplit  # with the first request: not on `import llmkit`
    try:
        parts = urlsplit(endpoint)
        password = parts.password
    except ValueError:  # not a URL (a bad port, say): it carries no password we could read
        password = None
    if password:
        import base64
        pair = f"{unquote(parts.username or '')}:{unquote(password)}"
        found.update((pair, unquote(password), password, base64.b64encode(pair.encode()).decode()))
    return longest_first(found)
