"""Image dimensions read from the header bytes, in pure Python, before any decoder runs.

Used to refuse pixel bombs (a few bytes declaring 100k x 100k pixels) as early and cheaply as
possible. Formats not parsed here (TIFF, AVIF/HEIF) are checked by libvips' header in the
worker process, still before any pixel is decoded.
"""

from __future__ import annotations

import struct

from .errors import TooManyPixels

_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def dimensions(data: bytes | memoryview, fmt: str) -> tuple[int, int] | None:
    """(width, height) declared by the header, or None when not found here."""
    try:
        if fmt == "png" and data[12:16] == b"IHDR":
            w, h = struct.unpack(">II", data[16:24])
            return w, h
        if fmt == "gif":
            w, h = struct.unpack("<HH", data[6:10])
            return w, h
        if fmt == "jpeg":
            return _jpeg(data)
        if fmt == "webp":
            return _webp(data)
    except (struct.error, IndexError):  # a header cut short: no dimensions here
        return None
    return None


def _jpeg(data: bytes | memoryview) -> tuple[int, int] | None:
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # no length
            i += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image, start of scan: no frame header seen
            return None
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        if marker in _SOF:
            h, w = struct.unpack(">HH", data[i + 5 : i + 9])
            return w, h
        i += 2 + length
    return None


def _webp(data: bytes | memoryview) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8X":
        w = int.from_bytes(data[24:27], "little") + 1
        h = int.from_bytes(data[27:30], "little") + 1
        return w, h
    if chunk == b"VP8L" and data[20] == 0x2F:
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8 ":
        w, h = struct.unpack("<HH", data[26:30])
        return w & 0x3FFF, h & 0x3FFF
    return None


def check_pixels(data: bytes | memoryview, fmt: str, limit: int) -> None:
    """Raise 422 too_many_pixels when the header declares more than ``limit`` pixels."""
    dims = dimensions(data, fmt)
    if dims is not None and dims[0] * dims[1] > limit:
        w, h = dims
        raise TooManyPixels(
            f"the source declares {w}x{h} pixels; the limit is {limit}",
            width=w,
            height=h,
            limit=limit,
        )
