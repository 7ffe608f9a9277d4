"""Formats: sniffing sources from their bytes, output format names, MIME types."""

from __future__ import annotations

import io
import random

import pytest
from PIL import Image

from imgserver.errors import UnsupportedFormat, UnsupportedSource
from imgserver.formats import (
    EXTENSIONS,
    OUTPUT_FORMATS,
    SOURCE_MIME,
    mime_of,
    output_format,
    require_source_format,
    sniff,
)


def ftyp(major: bytes, *compatible: bytes, tail: bytes = b"\x00" * 32) -> bytes:
    body = b"ftyp" + major + b"\x00\x00\x00\x00" + b"".join(compatible)
    return (len(body) + 4).to_bytes(4, "big") + body + tail


def pillow(fmt: str, mode: str = "RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, (4, 3), "red").save(buf, format=fmt)
    return buf.getvalue()


SNIFF_TABLE: list[tuple[str, bytes, str | None]] = [
    ("jpeg-jfif", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", "jpeg"),
    ("jpeg-exif", b"\xff\xd8\xff\xe1\x00\x10Exif\x00", "jpeg"),
    ("jpeg-real", pillow("JPEG"), "jpeg"),
    ("png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "png"),
    ("png-real", pillow("PNG", "RGBA"), "png"),
    ("gif87a", b"GIF87a\x01\x00\x01\x00", "gif"),
    ("gif89a", b"GIF89a\x01\x00\x01\x00", "gif"),
    ("gif-real", pillow("GIF", "P"), "gif"),
    ("webp", b"RIFF\x24\x00\x00\x00WEBPVP8 ", "webp"),
    ("webp-real", pillow("WEBP"), "webp"),
    ("tiff-le", b"II*\x00\x08\x00\x00\x00", "tiff"),
    ("tiff-be", b"MM\x00*\x00\x00\x00\x08", "tiff"),
    ("tiff-real", pillow("TIFF"), "tiff"),
    ("avif", ftyp(b"avif", b"mif1", b"miaf"), "avif"),
    ("avis", ftyp(b"avis", b"msf1", b"avif"), "avif"),
    ("avif-compatible-only", ftyp(b"mif1", b"miaf", b"avif"), "avif"),
    ("heic", ftyp(b"heic", b"mif1", b"heic"), "heif"),
    ("heix", ftyp(b"heix", b"mif1"), "heif"),
    ("mif1", ftyp(b"mif1", b"heic"), "heif"),
    ("mif1-only", ftyp(b"mif1"), "heif"),
    ("mp4", ftyp(b"isom", b"iso2", b"mp41"), None),
    ("quicktime", ftyp(b"qt  "), None),
    ("ftyp-too-short", b"\x00\x00\x00\x10ftypavif", None),
    ("html", b"<!DOCTYPE html><html><body>hi</body></html>", None),
    ("html-lower", b"  <html><head>", None),
    ("svg", b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>', None),
    ("svg-bare", b'<svg xmlns="http://www.w3.org/2000/svg"/>', None),
    ("pdf", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", None),
    ("bmp", b"BM\x36\x00\x00\x00\x00\x00", None),
    ("json", b'{"error": "not found"}', None),
    ("empty", b"", None),
    ("one-byte", b"\xff", None),
    ("jpeg-prefix-only", b"\xff\xd8", None),
    ("png-prefix-only", b"\x89PNG", None),
    ("gif-bad-version", b"GIF88a\x01\x00", None),
    ("riff-wav", b"RIFF\x24\x00\x00\x00WAVEfmt ", None),
    ("tiff-bad", b"II\x00*", None),
    ("zeros", b"\x00" * 64, None),
    ("random", bytes(range(7, 71)), None),
]


@pytest.mark.parametrize(
    ("data", "expected"), [t[1:] for t in SNIFF_TABLE], ids=[t[0] for t in SNIFF_TABLE]
)
def test_sniff(data: bytes, expected: str | None) -> None:
    assert sniff(data) == expected


def test_sniff_random_bytes_are_not_images() -> None:
    rng = random.Random(1234)
    # a leading 0x00 rules out every magic number; ftyp would need 4 exact bytes at offset 4
    found = [sniff(b"\x00" + rng.randbytes(63)) for _ in range(500)]
    assert all(f is None for f in found)


@pytest.mark.parametrize(
    ("data", "expected"),
    [t[1:] for t in SNIFF_TABLE if t[2]],
    ids=[t[0] for t in SNIFF_TABLE if t[2]],
)
def test_require_source_format_accepts_images(data: bytes, expected: str) -> None:
    assert require_source_format(data) == expected
    assert expected in SOURCE_MIME


@pytest.mark.parametrize(
    ("data", "hint"),
    [
        (b"", "empty body"),
        (b"<!DOCTYPE html><html>", "looks like HTML"),
        (b"\n  <HTML><body>", "looks like HTML"),
        (b'<?xml version="1.0"?><svg/>', "SVG/XML is not enabled"),
        (b"<svg width='1'/>", "SVG/XML is not enabled"),
        (b"%PDF-1.4", "PDF is not supported"),
        (b"BM6\x00\x00\x00\x00\x00\x00\x00", "unrecognised leading bytes 424d360000000000"),
        (ftyp(b"isom"), "unrecognised leading bytes"),
    ],
)
def test_require_source_format_refuses(data: bytes, hint: str) -> None:
    with pytest.raises(UnsupportedSource) as info:
        require_source_format(data)
    err = info.value
    assert err.status == 415
    assert err.code == "unsupported_source"
    assert "not an image we decode" in err.message
    assert hint in err.message


@pytest.mark.parametrize(
    ("ext", "fmt"),
    [
        ("jpg", "jpeg"),
        ("jpeg", "jpeg"),
        ("JPG", "jpeg"),
        ("Jpeg", "jpeg"),
        ("png", "png"),
        ("PNG", "png"),
        ("webp", "webp"),
        ("avif", "avif"),
        ("gif", "gif"),
        ("jxl", "jxl"),
        ("JXL", "jxl"),
    ],
)
def test_output_format(ext: str, fmt: str) -> None:
    assert output_format(ext) == fmt
    assert fmt in OUTPUT_FORMATS


@pytest.mark.parametrize(
    "ext",
    ["", "jpe", "tif", "tiff", "heic", "heif", "bmp", "svg", "auto", " jpg", "jpg ", "image/jpeg"],
)
def test_output_format_refused(ext: str) -> None:
    with pytest.raises(UnsupportedFormat) as info:
        output_format(ext)
    err = info.value
    assert err.status == 415
    assert err.code == "unsupported_format"
    assert err.details["formats"] == sorted(EXTENSIONS)
    for known in ("jpg", "png", "webp", "avif", "gif"):
        assert known in err.message


@pytest.mark.parametrize(
    ("fmt", "mime"),
    [
        ("jpeg", "image/jpeg"),
        ("png", "image/png"),
        ("webp", "image/webp"),
        ("avif", "image/avif"),
        ("gif", "image/gif"),
        ("heif", "image/heif"),
        ("tiff", "image/tiff"),
        ("jxl", "image/jxl"),
    ],
)
def test_mime_of(fmt: str, mime: str) -> None:
    assert mime_of(fmt) == mime


def test_every_extension_names_an_output_format() -> None:
    assert set(EXTENSIONS.values()) == set(OUTPUT_FORMATS)
    for name, spec in OUTPUT_FORMATS.items():
        assert spec.name == name
        assert spec.mime == f"image/{name}"
    assert OUTPUT_FORMATS["jpeg"].alpha is False
    assert OUTPUT_FORMATS["png"].alpha is True
    assert OUTPUT_FORMATS["gif"].animated and OUTPUT_FORMATS["webp"].animated


def test_jpeg_xl_is_a_result_never_a_source() -> None:
    import pyvips

    from imgserver.formats import sniff_result
    from imgserver.runtime import jxl

    codestream = jxl.encode(pyvips.Image.black(8, 8, bands=3).numpy(), 80, optimize=False)
    container = b"\x00\x00\x00\x0cJXL \r\n\x87\n" + bytes(40)
    for data in (codestream, container):
        assert sniff(data) is None  # refused as a source (415)
        assert sniff_result(data) == "jxl"
    png = bytes(pyvips.Image.black(8, 8).pngsave_buffer())
    assert sniff_result(png) == "png"
