"""Images as chat input: `image` turns a file, bytes or a URL into an `Image`, whose ``.part()`` is
the content part the Chat Completions API takes, and whose ``.tokens()`` follows OpenAI's rules.

Sizes are read from the file's header with the standard library only (PNG, JPEG, GIF, WEBP;
no Pillow). Nothing is ever downloaded: an ``http(s)://`` URL is kept as it is, its size unknown,
and its display shows the URL as text (a display must not contact a host the user did not choose).

Token rules (OpenAI's vision guide, tile-based models such as gpt-4o): ``detail="low"`` costs 85
tokens; ``"high"`` scales the image to fit 2048 x 2048, then its shortest side down to 768, and
costs 170 per 512px tile plus 85. ``"auto"`` lets the model choose; it is counted as ``"high"``,
and an image of unknown size (a remote URL) as the largest ``"high"`` image can cost, 8 tiles,
1,445 tokens: these counts guard context limits and tokens-per-minute budgets, where counting
too many is the safe side. Models billed by 32px patches (gpt-4.1-mini/nano, o4-mini, ...) and
gpt-4o-mini's billing multiplier are not modelled.
"""

from __future__ import annotations

import base64
import binascii
import html
import math
import os
import stat
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ConfigError

__all__ = ["MAX_BYTES", "MAX_IMAGE_TOKENS", "Image", "image", "image_tokens", "part_tokens"]

MAX_BYTES = 20 * 1024 * 1024  # OpenAI: "up to 20MB per image"
DETAILS = ("low", "high", "auto")
LOW_DETAIL_TOKENS = 85
BASE_TOKENS = 85
TILE_TOKENS = 170
MAX_IMAGE_TOKENS = BASE_TOKENS + 8 * TILE_TOKENS  # 768 x 2048 after scaling: 2 x 4 tiles
_MIME = {"PNG": "image/png", "JPEG": "image/jpeg", "GIF": "image/gif", "WEBP": "image/webp"}
_DATA_TYPES = {"image/png", "image/jpeg", "image/jpg", "image/gif", "image/webp"}
_ACCEPTED = "PNG, JPEG, GIF or WEBP"
_PREFIX_CHARS = 1 << 16  # base64 characters decoded first when only the header is wanted


def image_tokens(width: int | None, height: int | None, detail: str = "auto") -> int:
    """Input tokens of an image of this size, per OpenAI's tile rules (see the module docstring)."""
    if detail == "low":
        return LOW_DETAIL_TOKENS
    if not width or not height or width <= 0 or height <= 0:
        return MAX_IMAGE_TOKENS
    from fractions import Fraction  # (and decimal) only when an image is counted
    w, h = Fraction(width), Fraction(height)
    scale = min(Fraction(1), Fraction(2048) / max(w, h))  # fit in 2048 x 2048 (never enlarge)
    w, h = w * scale, h * scale
    scale = min(Fraction(1), Fraction(768) / min(w, h))  # shortest side down to 768
    w, h = w * scale, h * scale
    return BASE_TOKENS + TILE_TOKENS * math.ceil(w / 512) * math.ceil(h / 512)


# -- headers -----------------------------------------------------------------------------------

def _sniff(data: bytes) -> str | None:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return None


_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # start-of-frame markers (not DHT/JPG/DAC)


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0x01, 0xD8) or 0xD0 <= marker <= 0xD7:  # no length field
            i += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image / start of scan before any frame header
            return None
        (length,) = struct.unpack(">H", data[i + 2:i + 4])
        if marker in _SOF:
            if i + 9 > len(data):
                return None
            height, width = struct.unpack(">HH", data[i + 5:i + 9])
            return width, height
        i += 2 + length
    return None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8 " and len(data) >= 30 and data[23:26] == b"\x9d\x01\x2a":
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L" and len(data) >= 25 and data[20] == 0x2F:
        (bits,) = struct.unpack("<I", data[21:25])
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X" and len(data) >= 30:
        return int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1
    return None


def _size(kind: str, data: bytes) -> tuple[int, int] | None:
    """(width, height) from the header, or None when the header is cut short or malformed."""
    size: tuple[int, int] | None = None
    if kind == "PNG" and len(data) >= 24 and data[12:16] == b"IHDR":
        size = struct.unpack(">II", data[16:24])
    elif kind == "GIF" and len(data) >= 10:
        size = struct.unpack("<HH", data[6:10])
    elif kind == "JPEG":
        size = _jpeg_size(data)
    elif kind == "WEBP":
        size = _webp_size(data)
    return size if size and size[0] > 0 and size[1] > 0 else None


def _decode(payload: str, *, header_only: bool = False) -> bytes:
    """Decode base64; with ``header_only``, just enough of it for `_size` when that suffices."""
    payload = "".join(payload.split())
    if header_only and len(payload) > _PREFIX_CHARS:
        head = base64.b64decode(payload[:_PREFIX_CHARS])
        kind = _sniff(head)
        if kind is None or _size(kind, head) is not None:
            return head
    return base64.b64decode(payload)


def _split_data_url(url: str) -> tuple[str, str] | None:
    """``(mime type, base64 payload)`` of a ``data:<type>;base64,`` URL; None if it is not one."""
    head, comma, payload = url.partition(",")
    if not comma or not head[:5].lower() == "data:":
        return None
    params = head[5:].split(";")
    if "base64" not in (p.strip().lower() for p in params[1:]):
        return None
    return params[0].strip().lower(), payload


# -- Image -------------------------------------------------------------------------------------

@dataclass(frozen=True, repr=False)
class Image:
    """An image for a chat message; make one with `image`. ``url`` is a ``data:`` URL (local files
    and bytes) or the ``http(s)://`` URL given; ``width``/``height``/``format`` are None when
    unknown (remote URLs)."""

    url: str
    detail: str = "auto"
    format: str | None = None  # "PNG" | "JPEG" | "GIF" | "WEBP"
    width: int | None = None
    height: int | None = None
    name: str | None = None  # the file name it was read from, for displays

    def __post_init__(self) -> None:
        _check_detail(self.detail)

    @property
    def remote(self) -> bool:
        """True unless ``url`` is a ``data:image/...`` URL: shown as text, never fetched."""
        split = _split_data_url(self.url)
        return split is None or split[0] not in _DATA_TYPES

    def part(self) -> dict[str, Any]:
        """The content part: ``{"type": "image_url", "image_url": {"url": ..., "detail": ...}}``."""
        return {"type": "image_url", "image_url": {"url": self.url, "detail": self.detail}}

    def tokens(self, model: str | None = None) -> int:
        """Input tokens per OpenAI's tile rules (the same for every model; see the module doc)."""
        return image_tokens(self.width, self.height, self.detail)

    def _label(self) -> str:
        size = f"{self.width}x{self.height}" if self.width and self.height else ""
        return " ".join(filter(None, ["image", size, self.format]))

    def __str__(self) -> str:
        if self.remote:
            url = self.url if len(self.url) <= 60 else self.url[:57] + "..."
            return f"[image {url}]"
        return f"[{self._label()}]"

    def __repr__(self) -> str:
        where = f"{self.url!r}" if self.remote else (repr(self.name) if self.name else "data URL")
        size = f", {self.width}x{self.height}" if self.width and self.height else ""
        fmt = f" {self.format}" if self.format else ""
        return f"Image({where}{fmt}{size}, detail={self.detail!r})"

    def _repr_html_(self) -> str:
        label = self._label() + (f" ({self.name})" if self.name else "")
        if self.remote:  # never make the browser fetch a host the user did not choose
            return (f'<span class="llmkit-image">image <code>{html.escape(self.url)}</code> '
                    f"(remote, not loaded), detail={html.escape(self.detail)}</span>")
        return (f'<figure class="llmkit-image" style="margin:0"><img src="{html.escape(self.url)}" '
                f'alt="{html.escape(label)}" style="max-width:256px;max-height:256px">'
                f"<figcaption><small>{html.escape(label)}, detail={html.escape(self.detail)}"
                f"</small></figcaption></figure>")


def _check_detail(detail: Any) -> str:
    if detail not in DETAILS:
        raise ConfigError(f"image detail must be one of 'low', 'high', 'auto', got {detail!r}")
    return str(detail)


def _inspect(data: bytes, what: str) -> tuple[str, int, int]:
    """``(format, width, height)`` of an accepted image, else `ConfigError` naming ``what``."""
    if len(data) > MAX_BYTES:
        raise ConfigError(f"{what} is {len(data):,} bytes; images may be at most 20 MB "
                          f"({MAX_BYTES:,} bytes)")
    kind = _sniff(data)
    if kind is None:
        raise ConfigError(f"{what} is not an image of an accepted type ({_ACCEPTED})")
    size = _size(kind, data)
    if size is None:
        raise ConfigError(f"{what} looks like a {kind} image but its size cannot be read "
                          f"(cut short or corrupt); accepted types: {_ACCEPTED}")
    return kind, size[0], size[1]


def _from_bytes(data: bytes, what: str, detail: str, name: str | None) -> Image:
    kind, width, height = _inspect(data, what)
    url = f"data:{_MIME[kind]};base64,{base64.b64encode(data).decode('ascii')}"
    return Image(url, detail, kind, width, height, name)


def _from_data_url(url: str, detail: str) -> Image:
    split = _split_data_url(url)
    if split is None or split[0] not in _DATA_TYPES:
        raise ConfigError(f"a data URL image must start with data:image/<png|jpeg|gif|webp>;base64, "
                          f"got {url[:40]!r}")
    try:
        data = _decode(split[1])
    except (binascii.Error, ValueError) as exc:
        raise ConfigError(f"the data URL's payload is not valid base64 ({exc})") from None
    kind, width, height = _inspect(data, "the data URL")
    return Image(url, detail, kind, width, height)


def _from_file(path: Path, detail: str) -> Image:
    """Read a regular file of at most `MAX_BYTES`: a device (``/dev/zero``), a FIFO or a folder is
    refused, and the read stops one byte past the limit, whatever the file claims its size is
    (``/proc`` files say 0). Opened without blocking, so a FIFO cannot hang the call."""
    where = f"image file {str(path)!r}"
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except OSError as exc:
        raise ConfigError(f"cannot read {where}: {exc.strerror or exc}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = "a folder" if stat.S_ISDIR(info.st_mode) else \
                "not a regular file (a device, FIFO or socket)"
            raise ConfigError(f"{where} is {kind}; image() reads {_ACCEPTED} files")
        if info.st_size > MAX_BYTES:
            raise ConfigError(f"{where} is {info.st_size:,} bytes; images may be at most 20 MB "
                              f"({MAX_BYTES:,} bytes)")
        with os.fdopen(fd, "rb", closefd=False) as file:
            data = file.read(MAX_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read {where}: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    if len(data) > MAX_BYTES:
        raise ConfigError(f"{where} is over 20 MB ({MAX_BYTES:,} bytes), the most an image may be")
    return _from_bytes(data, where, detail, path.name)


def image(source: str | Path | bytes | bytearray | memoryview, *, detail: str = "auto") -> Image:
    """An `Image` from a local PNG/JPEG/GIF/WEBP file (``Path`` or str), raw bytes, a
    ``data:image/...;base64,`` URL, or an ``http(s)://`` URL (kept as a URL, never downloaded).

    Local files and bytes become base64 data URLs. ``detail`` is ``"low"``, ``"high"`` or
    ``"auto"``. Raises `ConfigError` for a file that cannot be read, is over 20 MB, or is not one
    of the accepted image types, and for a bad ``detail``.
    """
    detail = _check_detail(detail)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _from_bytes(bytes(source), "the bytes given", detail, None)
    if isinstance(source, Path):
        return _from_file(source, detail)
    if not isinstance(source, str):
        raise ConfigError(f"image() takes a file path, bytes or a URL, got {type(source).__name__}")
    lowered = source[:8].lower()
    if lowered.startswith(("http://", "https://")):
        return Image(source, detail)
    if lowered.startswith("data:"):
        return _from_data_url(source, detail)
    if "://" in source[:16]:
        raise ConfigError(f"image URLs must be http(s):// or data: URLs, got {source[:40]!r}")
    return _from_file(Path(source), detail)


def part_tokens(part: Mapping[str, Any]) -> int:
    """Tokens of an ``image_url`` content part as sent (never raises: a part whose size cannot be
    read counts as the largest image)."""
    spec = part.get("image_url")
    url, detail = (spec.get("url"), spec.get("detail", "auto")) if isinstance(spec, Mapping) \
        else (spec, "auto")
    if detail == "low":
        return LOW_DETAIL_TOKENS
    split = _split_data_url(url) if isinstance(url, str) else None
    if split is None:
        return MAX_IMAGE_TOKENS
    try:
        data = _decode(split[1], header_only=True)
    except (binascii.Error, ValueError):
        return MAX_IMAGE_TOKENS
    kind = _sniff(data)
    size = _size(kind, data) if kind else None
    return image_tokens(size[0], size[1], "high") if size else MAX_IMAGE_TOKENS
