"""Header dimensions read before any decoder runs."""

from __future__ import annotations

import pytest
import pyvips

from imgserver.errors import TooManyPixels
from imgserver.formats import sniff
from imgserver.probe import check_pixels, dimensions

from ..images import gif_header, jpeg_header, png_header, webp_header


def encoded(fmt: str, width: int, height: int, bands: int = 3, **kw) -> bytes:
    im = (pyvips.Image.black(width, height, bands=bands) + 90).cast("uchar")
    im = im.copy(interpretation="srgb" if bands >= 3 else "b-w")
    return im.write_to_buffer(f".{fmt}", **kw)


@pytest.mark.parametrize(
    "fmt,bands,kw",
    [
        ("png", 3, {}),
        ("png", 4, {}),
        ("gif", 3, {}),
        ("jpg", 3, {}),
        ("jpg", 1, {}),
        ("jpg", 3, {"interlace": True}),
        ("webp", 3, {}),
        ("webp", 4, {}),
        ("webp", 3, {"lossless": True}),
    ],
)
def test_dimensions_of_real_files(fmt, bands, kw) -> None:
    data = encoded(fmt, 123, 45, bands, **kw)
    assert dimensions(data, sniff(data)) == (123, 45)


def test_exif_segments_before_the_frame_header_are_skipped() -> None:
    im = (pyvips.Image.black(30, 20, bands=3) + 1).cast("uchar").copy()
    im.set_type(pyvips.GValue.gint_type, "orientation", 6)
    data = im.jpegsave_buffer(keep=0xFF)
    assert data[2:4] == b"\xff\xe1" or data[2:4] == b"\xff\xe0"
    assert dimensions(data, "jpeg") == (30, 20)


@pytest.mark.parametrize("make", [png_header, gif_header, jpeg_header, webp_header])
def test_pixel_bombs_are_refused_from_the_header(make) -> None:
    data = make(60000, 50000)
    fmt = sniff(data)
    assert dimensions(data, fmt) == (60000, 50000)
    with pytest.raises(TooManyPixels) as err:
        check_pixels(data, fmt, 50_000_000)
    assert err.value.details == {"width": 60000, "height": 50000, "limit": 50_000_000}
    check_pixels(make(5000, 5000), fmt, 50_000_000)  # 25 MP passes


@pytest.mark.parametrize(
    "data,fmt",
    [
        (b"", "png"),
        (b"\x89PNG\r\n\x1a\n", "png"),
        (b"\xff\xd8\xff", "jpeg"),
        (b"\xff\xd8\xff\xda\x00\x02", "jpeg"),
        (b"\xff\xd8garbage", "jpeg"),
        (b"RIFF", "webp"),
        (b"II*\x00", "tiff"),
    ],
)
def test_truncated_or_unknown_headers_give_none(data, fmt) -> None:
    assert dimensions(data, fmt) is None
