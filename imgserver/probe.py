"""Image dimensions read from the header bytes, in pure Python, before any decoder runs.

Used to refuse pixel bombs (a few bytes declaring 100k x 100k pixels) as early and cheaply as
possible: JPEG, PNG, GIF, WebP, TIFF and HEIF/AVIF (the primary image's ``ispe`` box). A
HEIF whose primary image is coded with a codec we have no decoder for (JPEG, VVC,
uncompressed...) is refused as unsupported (415) here too, before it is stored or queued.
"""

from __future__ import annotations

import struct

from . import heif
from .errors import TooManyPixels, UnsupportedSource

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
        if fmt == "tiff":
            return _tiff(data)
        if fmt in ("heif", "avif"):
            found = heif.primary(data)
            if found is None or found.width is None or found.height is None:
                return None
            return found.width, found.height
    except (struct.error, IndexError):  # a header cut short: no dimensions here
        return None
    return None


def _jpeg(data: bytes | memoryview) -> tuple[int, int] | None:
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:  # stray bytes before a marker: skipped, as libjpeg does
            i += 1
            continue
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


_TIFF_SHORT, _TIFF_LONG = 3, 4


def _tiff(data: bytes | memoryview) -> tuple[int, int] | None:
    """ImageWidth and ImageLength of the first IFD."""
    order = "<" if data[:2] == b"II" else ">"
    (ifd,) = struct.unpack_from(order + "I", data, 4)
    (count,) = struct.unpack_from(order + "H", data, ifd)
    found: dict[int, int] = {}
    for k in range(min(count, 1000)):
        tag, kind, _ = struct.unpack_from(order + "HHI", data, ifd + 2 + 12 * k)
        if tag in (256, 257) and kind in (_TIFF_SHORT, _TIFF_LONG):
            fmt = order + ("H" if kind == _TIFF_SHORT else "I")
            (found[tag],) = struct.unpack_from(fmt, data, ifd + 2 + 12 * k + 8)
    if 256 in found and 257 in found:
        return found[256], found[257]
    return None


def _coded_pixels(data: bytes | memoryview, fmt: str) -> int:
    """HEIF: the pixels decoded before the clean-aperture crop (0: not HEIF or not said)."""
    if fmt not in ("heif", "avif"):
        return 0
    found = heif.primary(data)
    return (found.coded_pixels or 0) if found is not None else 0


def require_codec(data: bytes | memoryview, fmt: str) -> None:
    """Raise 415 unsupported_source for a HEIF/AVIF whose primary image has a coding we do
    not decode (we decode HEVC and AV1). A file whose boxes cannot be read is left to the
    decoder (a 422 when it is corrupt)."""
    if fmt not in ("heif", "avif"):
        return
    found = heif.primary(data)
    if found is not None and found.codec is None:
        raise UnsupportedSource(
            f"the HEIF image is coded as '{found.item_type}', which we do not decode "
            "(HEVC and AV1 only)",
            codec=found.item_type,
        )


def require_header(data: bytes | memoryview, fmt: str) -> tuple[int, int] | None:
    """An upload's checks before it is accepted: a header we can read for its format (a PNG
    signature followed by anything else is not a PNG we decode: 415), a codec we decode, and
    the dimensions it declares. SVG has no binary header: None."""
    if fmt == "svg":
        return None
    require_codec(data, fmt)
    dims = dimensions(data, fmt)
    if dims is None or dims[0] <= 0 or dims[1] <= 0:
        raise UnsupportedSource(
            f"the file starts like {fmt.upper()} but has no {fmt.upper()} header we can read"
        )
    return dims


def check_pixels(data: bytes | memoryview, fmt: str, limit: int) -> None:
    """Raise 422 too_many_pixels when the header declares more than ``limit`` pixels."""
    dims = dimensions(data, fmt)
    coded = _coded_pixels(data, fmt)
    if dims is not None and max(dims[0] * dims[1], coded) > limit:
        w, h = dims
        raise TooManyPixels(
            f"the source declares {w}x{h} pixels; the limit is {limit}",
            width=w,
            height=h,
            limit=limit,
        )
