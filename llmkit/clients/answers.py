"""What a server sent back, checked before anything returns, caches or records it.

A server's body is untrusted input: only an answer of the expected shape is accepted; anything
else is a retryable `ServerError` (a proxy's HTML page, a truncated body, a null message).
"""

from __future__ import annotations

import base64
import json
import sys
from array import array
from collections.abc import Mapping
from typing import Any

from ..base.errors import ServerError

__all__ = ["chat_answer", "embedding_vectors", "merged_embeddings", "parse_json"]


def parse_json(body: bytes) -> Any:
    """The body as JSON, or a `ServerError` saying it is not."""
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        start = body[:60].decode("utf-8", "replace")
        raise ServerError(f"the server's answer is not JSON (it starts {start!r})") from None


def chat_answer(data: Any) -> dict[str, Any]:
    """``data`` if it is a chat completion with at least one choice carrying a message."""
    choices = data.get("choices") if isinstance(data, dict) else None
    if not isinstance(choices, list) or not choices:
        raise ServerError("the server's answer has no choices (malformed answer)")
    for choice in choices:
        message = choice.get("message") if isinstance(choice, Mapping) else None
        if not isinstance(message, Mapping):
            raise ServerError("the server's answer has a choice without a message (malformed answer)")
        content = message.get("content")
        if content is not None and not isinstance(content, (str, list)):
            raise ServerError("the server's answer has a message whose content is not text")
        if isinstance(content, str) and not content.isascii() and isinstance(message, dict):
            # JSON can carry a lone surrogate ("\ud800") that UTF-8 cannot: it would break the
            # cache and every display. Replaced by U+FFFD, as a decoder would.
            message["content"] = content.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    return data


def embedding_vectors(data: Any, count: int) -> list[list[float]]:
    """The ``count`` vectors of an embeddings answer, in input order (base64 ones decoded)."""
    items = data.get("data") if isinstance(data, dict) else None
    if not isinstance(items, list) or len(items) != count:
        raise ServerError(f"the server's embeddings answer does not hold {count} vector(s)")
    vectors: list[list[float] | None] = [None] * count
    for position, item in enumerate(items):
        index = item.get("index", position) if isinstance(item, Mapping) else None
        if not isinstance(index, int) or not 0 <= index < count or vectors[index] is not None:
            raise ServerError("the server's embeddings answer has a bad or repeated index")
        vectors[index] = _vector(item.get("embedding"))
    return vectors  # type: ignore[return-value]


def merged_embeddings(sent: dict[str, Any], found: dict[int, Any], count: int) -> dict[str, Any]:
    """The answer for all ``count`` texts of a call: the vectors ``found`` kept (by position) and,
    in the remaining positions in order, the ones ``sent`` back; usage is what was paid for."""
    fresh = iter(embedding_vectors(sent, count - len(found)))
    vectors = [_vector(found[i]) if i in found else next(fresh) for i in range(count)]
    return {**sent, "data": [{"object": "embedding", "index": i, "embedding": v}
                             for i, v in enumerate(vectors)]}


def _vector(raw: Any) -> list[float]:
    if isinstance(raw, str):  # encoding_format="base64": little-endian float32
        try:
            values = array("f", base64.b64decode(raw, validate=True))
        except (ValueError, TypeError):
            raise ServerError("the server sent an embedding that is not valid base64") from None
        if sys.byteorder != "little":
            values.byteswap()
        return values.tolist()
    if (isinstance(raw, list) and raw
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in raw)):
        return [float(v) for v in raw]
    raise ServerError("the server sent an embedding that is not a list of numbers")
