"""Tests for llmkit.base.images: header sizes, token rules, data URLs, displays, errors."""

from __future__ import annotations

import base64
import dataclasses
import os
import re
import struct
import zlib
from pathlib import Path

import pytest

from llmkit.base import images
from llmkit.base.errors import ConfigError
from llmkit.base.images import Image, image, image_tokens, part_tokens


def png(width: int, height: int, *, noise: bytes = b"") -> bytes:
    """A valid grey PNG; ``noise`` goes into an ancillary chunk to make the file big."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + (chunk(b"teXt", b"noise\x00" + noise) if noise else b"")
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def gif(width: int, height: int) -> bytes:
    """A GIF89a with a 2-colour table and one 1x1 frame (only the screen size is read)."""
    return (b"GIF89a" + struct.pack("<HHBBB", width, height, 0x80, 0, 0) + b"\x00\x00\x00\xff\xff\xff"
            + b"\x2c" + struct.pack("<HHHHB", 0, 0, 1, 1, 0) + b"\x02\x02\x44\x01\x00\x3b")


def jpeg(width: int, height: int, *, sof: int = 0xC0, app1: bytes = b"") -> bytes:
    """SOI, a JFIF APP0, an optional APP1 (EXIF-like), a fill byte, SOFn, DQT-free SOS, EOI."""
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    exif = b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1 if app1 else b""
    frame = (b"\xff" + bytes([sof]) + struct.pack(">HBHHB", 17, 8, height, width, 3)
             + b"\x01\x22\x00\x02\x11\x01\x03\x11\x01")
    scan = b"\xff\xda" + struct.pack(">H", 12) + b"\x03\x01\x00\x02\x11\x03\x11\x00\x3f\x00"
    return b"\xff\xd8" + app0 + exif + b"\xff" + frame + scan + b"\x00" * 8 + b"\xff\xd9"


def riff(chunk: bytes, payload: bytes) -> bytes:
    body = b"WEBP" + chunk + struct.pack("<I", len(payload)) + payload
    return b"RIFF" + struct.pack("<I", len(body)) + body


def webp_lossy(width: int, height: int) -> bytes:
    return riff(b"VP8 ", b"\x30\x01\x00\x9d\x01\x2a" + struct.pack("<HH", width, height) + b"\x00" * 8)


def webp_lossless(width: int, height: int) -> bytes:
    bits = (width - 1) | ((height - 1) << 14)
    return riff(b"VP8L", b"\x2f" + struct.pack("<I", bits) + b"\x00" * 4)


def webp_extended(width: int, height: int) -> bytes:
    size = (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    return riff(b"VP8X", b"\x10\x00\x00\x00" + size)


@pytest.mark.parametrize(
    ("data", "fmt", "size"),
    [
        (png(640, 480), "PNG", (640, 480)),
        (png(1, 3000), "PNG", (1, 3000)),
        (gif(300, 200), "GIF", (300, 200)),
        (jpeg(1024, 768), "JPEG", (1024, 768)),
        (jpeg(4032, 3024, sof=0xC2, app1=b"Exif\x00\x00" + b"\x00" * 500), "JPEG", (4032, 3024)),
        (webp_lossy(800, 600), "WEBP", (800, 600)),
        (webp_lossless(16383, 2), "WEBP", (16383, 2)),
        (webp_extended(5000, 70000), "WEBP", (5000, 70000)),
    ],
)
def test_header_sizes(data: bytes, fmt: str, size: tuple[int, int]) -> None:
    img = image(data)
    assert (img.format, img.width, img.height) == (fmt, *size)
    mime = {"PNG": "png", "JPEG": "jpeg", "GIF": "gif", "WEBP": "webp"}[fmt]
    assert img.url == f"data:image/{mime};base64," + base64.b64encode(data).decode()
    assert str(img) == f"[image {size[0]}x{size[1]} {fmt}]"


@pytest.mark.parametrize(
    ("width", "height", "detail", "tokens"),
    [
        (1024, 1024, "high", 765),  # OpenAI's example: 768 x 768, 4 tiles
        (2048, 4096, "high", 1105),  # OpenAI's example: 1024 x 2048, then 768 x 1536, 6 tiles
        (4096, 8192, "low", 85),  # OpenAI's example: low is a fixed cost
        (512, 512, "high", 255),  # one tile; images are never enlarged
        (513, 512, "high", 425),
        (2048, 768, "high", 1445),  # the most a high-detail image can cost: 2 x 4 tiles
        (100_000, 10, "high", 765),  # 2048 x 0.2: 4 x 1 tiles
        (1920, 1080, "auto", 1105),  # auto counts as high: 1365.3 x 768, 3 x 2 tiles
        (None, None, "auto", 1445),  # unknown size: the largest
        (None, None, "high", 1445),
        (None, None, "low", 85),
    ],
)
def test_token_rules(width: int | None, height: int | None, detail: str, tokens: int) -> None:
    assert image_tokens(width, height, detail) == tokens


def test_image_tokens_and_part(tmp_path: Path) -> None:
    path = tmp_path / "square.png"
    path.write_bytes(png(1024, 1024))
    img = image(path, detail="high")
    assert img.tokens("gpt-4o") == img.tokens() == 765
    assert image(str(path), detail="low").tokens("gpt-4o") == 85
    assert image(path).detail == "auto" and image(path).tokens() == 765
    part = img.part()
    assert part == {"type": "image_url", "image_url": {"url": img.url, "detail": "high"}}
    assert part_tokens(part) == 765
    assert part_tokens({"type": "image_url", "image_url": {"url": img.url, "detail": "low"}}) == 85
    part["image_url"]["detail"] = "low"  # a fresh dict each time: the Image is unchanged
    assert img.part()["image_url"]["detail"] == "high"
    with pytest.raises(dataclasses.FrozenInstanceError):
        img.detail = "low"  # type: ignore[misc]
    assert img.name == "square.png" and "square.png" in repr(img) and "base64" not in repr(img)


def test_data_url_round_trip() -> None:
    data = jpeg(640, 480)
    url = image(data).url
    assert url.startswith("data:image/jpeg;base64,")
    assert base64.b64decode(url.partition(",")[2]) == data
    again = image(url, detail="low")
    assert (again.url, again.format, again.width, again.height, again.detail) == (
        url, "JPEG", 640, 480, "low")
    assert again == image(url, detail="low")
    # image/jpg is a common label for JPEG; line breaks in the base64 are tolerated
    wrapped = "data:image/jpg;base64," + "\n".join(url.partition(",")[2][i:i + 76]
                                                   for i in range(0, len(url), 76))
    assert image(wrapped).width == 640


def test_part_tokens_reads_only_the_header_when_it_can() -> None:
    big = png(1024, 1024, noise=bytes(range(256)) * 400)  # about 100 KB before the pixels
    assert part_tokens(image(big, detail="high").part()) == 765
    exif = jpeg(2048, 4096, app1=b"Exif\x00\x00" + b"\x01" * 60_000)  # frame header after 60 KB
    assert part_tokens(image(exif, detail="high").part()) == 1105
    # parts llmkit did not make: never raises, unreadable sizes count as the largest image
    assert part_tokens({"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}) == 1445
    assert part_tokens({"type": "image_url", "image_url": {"url": "data:image/png;base64,@@"}}) == 1445
    assert part_tokens({"type": "image_url", "image_url": "https://example.com/a.png"}) == 1445
    assert part_tokens({"type": "image_url", "image_url": {"url": None}}) == 1445


def test_remote_url_is_kept_and_never_shown_as_an_image() -> None:
    url = "https://example.com/cat.png?a=1&b=<2>\"x"
    img = image(url)
    assert img.remote and img.url == url and img.part()["image_url"] == {"url": url, "detail": "auto"}
    assert (img.width, img.height, img.format) == (None, None, None)
    assert img.tokens() == 1445 and image(url, detail="low").tokens() == 85
    page = img._repr_html_()
    assert "<img" not in page and "src=" not in page
    assert "https://example.com/cat.png?a=1&amp;b=&lt;2&gt;&quot;x" in page
    assert str(img) == f"[image {url}]"
    long = "http://example.com/" + "a" * 100
    assert str(image(long)) == f"[image {long[:57]}...]" and image(long).url == long
    assert image("HTTPS://EXAMPLE.COM/X.PNG").remote
    assert Image("data:text/html;base64,PHNjcmlwdD4=").remote  # only data:image/ URLs are inlined
    assert "<img" not in Image("javascript:alert(1)")._repr_html_()
    with pytest.raises(ConfigError, match="detail"):
        Image(url, detail="max")


def test_thumbnail_html_is_escaped(tmp_path: Path) -> None:
    path = tmp_path / 'a"<b>&.gif'
    path.write_bytes(gif(64, 32))
    img = image(path)
    page = img._repr_html_()
    assert page.count("<img ") == 1 and f'src="{img.url}"' in page  # base64 needs no escaping
    assert "max-width:256px" in page
    assert "a&quot;&lt;b&gt;&amp;.gif" in page and '"<b>' not in page
    assert "image 64x32 GIF" in page and "detail=auto" in page


def test_errors(tmp_path: Path) -> None:
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    with pytest.raises(ConfigError, match=r"image file '.*notes\.png' is not an image of an accepted "
                                          r"type \(PNG, JPEG, GIF or WEBP\)"):
        image(text)
    with pytest.raises(ConfigError, match=r"cannot read image file '.*missing\.png'"):
        image(tmp_path / "missing.png")
    with pytest.raises(ConfigError, match=r"cannot read image file 'missing\.jpg'"):
        image("missing.jpg")
    with pytest.raises(ConfigError, match=r"detail must be one of 'low', 'high', 'auto', got 'medium'"):
        image(png(1, 1), detail="medium")
    huge = tmp_path / "huge.png"
    with huge.open("wb") as f:  # sparse: nothing is read, the size alone is refused
        f.write(png(1, 1))
        f.truncate(images.MAX_BYTES + 1)
    with pytest.raises(ConfigError, match=r"huge\.png' is 20,971,521 bytes; images may be at most 20 MB"):
        image(huge)
    with pytest.raises(ConfigError, match=r"the bytes given is 20,971,521 bytes"):
        image(png(1, 1).ljust(images.MAX_BYTES + 1, b"\x00"))
    with pytest.raises(ConfigError, match=r"looks like a JPEG image but its size cannot be read"):
        image(b"\xff\xd8\xff\xda\x00\x02\xff\xd9")  # scan before any frame header
    with pytest.raises(ConfigError, match=r"looks like a PNG image"):
        image(png(10, 10)[:20])  # cut short
    with pytest.raises(ConfigError, match=r"the bytes given is not an image"):
        image(b"BM\x00\x00")  # BMP is not accepted
    with pytest.raises(ConfigError, match=r"data:image/<png\|jpeg\|gif\|webp>;base64,"):
        image("data:text/plain;base64,aGk=")
    with pytest.raises(ConfigError, match=r"data:image/<png"):
        image("data:image/png,rawbytes")  # not base64
    with pytest.raises(ConfigError, match=r"not valid base64"):
        image("data:image/png;base64,A")
    with pytest.raises(ConfigError, match=r"the data URL is not an image"):
        image("data:image/png;base64," + base64.b64encode(b"hello").decode())
    with pytest.raises(ConfigError, match=r"http\(s\):// or data: URLs, got 'ftp://"):
        image("ftp://example.com/a.png")
    with pytest.raises(ConfigError, match=r"takes a file path, bytes or a URL, got int"):
        image(42)  # type: ignore[arg-type]


def test_image_is_a_value() -> None:
    a, b = image(png(2, 2)), image(png(2, 2))
    assert a == b and hash(a) == hash(b) and a != image(png(2, 2), detail="low")
    assert isinstance(a, Image) and not a.remote


@pytest.mark.parametrize("path", ["/dev/zero", "/dev/urandom"])
def test_a_device_is_refused_without_reading_it(path: str) -> None:
    with pytest.raises(ConfigError, match=rf"image file '{path}' is not a regular file \(a device"):
        image(path)


def test_a_fifo_or_folder_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)  # no writer: a blocking open would wait forever
    with pytest.raises(ConfigError, match=r"pipe\.png' is not a regular file"):
        image(fifo)
    with pytest.raises(ConfigError, match=rf"'{re.escape(str(tmp_path))}' is a folder"):
        image(tmp_path)

