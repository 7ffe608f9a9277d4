"""HEIC/HEIF sources: the header read in pure Python (codec, size: imgserver.heif), and HEVC
photos as an iPhone writes them (EXIF orientation and the HEIF rotation box, a Display P3
profile, 10 bits, a grid of tiles) decoded by pillow-heif in the runtimes."""

from __future__ import annotations

import pytest
import pyvips

from imgserver import heif
from imgserver.errors import TooManyPixels, UnsupportedSource
from imgserver.formats import sniff
from imgserver.probe import check_pixels, dimensions, require_codec, require_header

from ..images import (
    BLUE,
    RED,
    builtin_profile,
    close,
    heic,
    ok,
    run,
    solid,
    texture,
    vload,
    vpixel,
)

GREENISH = (40, 180, 60)


def stored_sideways() -> pyvips.Image:
    """64x32 stored pixels, red left, blue right: shown with orientation 6 (a quarter turn
    clockwise) it is 32x64, red on top, blue below."""
    return solid(32, 32, RED).join(solid(32, 32, BLUE), "horizontal")


@pytest.fixture(scope="module")
def iphone() -> bytes:
    return heic(stored_sideways(), orientation=6)


@pytest.fixture(scope="module")
def p3_10bit() -> bytes:
    p3 = solid(64, 64, GREENISH).icc_transform("p3", input_profile="srgb")
    # the profile matters: the P3 numbers read as sRGB would be far off
    assert not close(vpixel(p3, 1, 1), GREENISH, 15), vpixel(p3, 1, 1)
    return heic(p3, icc=builtin_profile("p3"), bits=10)


def heic_with_codec(item_type: bytes) -> bytes:
    """A real HEIC whose image item is relabelled (same length): the boxes parse, the codec
    is one we have no decoder for."""
    data = heic(texture(16, 16))
    assert data.count(b"hvc1") == 1
    return data.replace(b"hvc1", item_type)


def test_the_header_names_the_codec_and_size(iphone: bytes) -> None:
    assert sniff(iphone) == "heif"
    found = heif.primary(iphone)
    assert found is not None and found.codec == heif.HEVC
    assert (found.width, found.height) == (64, 32)  # stored, before the rotation
    assert dimensions(iphone, "heif") == (64, 32)
    avif = bytes(texture(40, 30).heifsave_buffer(compression="av1"))
    found = heif.primary(avif)
    assert found is not None and found.codec == heif.AV1
    assert dimensions(avif, sniff(avif)) == (40, 30)


def test_a_grid_of_tiles_is_read_through_to_its_tiles_codec() -> None:
    data = heic(texture(300, 200), tile=128)
    found = heif.primary(data)
    assert found is not None
    assert (found.item_type, found.width, found.height) == ("hvc1", 300, 200)
    assert data.count(b"grid") >= 1
    result = ok(run("compress", data, "png"))
    assert (result["width"], result["height"]) == (300, 200)


@pytest.mark.parametrize("item_type", [b"jpeg", b"vvc1", b"unci"])
def test_a_codec_we_cannot_decode_is_unsupported(item_type: bytes) -> None:
    data = heic_with_codec(item_type)
    with pytest.raises(UnsupportedSource, match=item_type.decode()):
        require_codec(data, "heif")
    with pytest.raises(UnsupportedSource):
        require_header(data, "heif")


@pytest.mark.parametrize(
    "data,fmt",
    [
        (b"\x89PNG\r\n\x1a\n" + bytes(range(200)), "png"),
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x5a" * 200, "heif"),
        (b"II*\x00\xff\xff\xff\x7f" + b"\x00" * 40, "tiff"),
    ],
    ids=["png", "heif", "tiff"],
)
def test_an_unreadable_header_is_not_an_image_we_decode(data: bytes, fmt: str) -> None:
    assert sniff(data) == fmt
    with pytest.raises(UnsupportedSource, match="header"):
        require_header(data, fmt)


def test_pixel_bombs_are_refused_from_the_heif_boxes() -> None:
    data = heic(texture(64, 64))
    # the ispe box declares the size: make it 60000x50000 (same length)
    at = data.index(b"ispe") + 8
    assert data[at : at + 8] == (64).to_bytes(4, "big") * 2
    bomb = data[:at] + (60000).to_bytes(4, "big") + (50000).to_bytes(4, "big") + data[at + 8 :]
    with pytest.raises(TooManyPixels):
        check_pixels(bomb, "heif", 50_000_000)
    failed = run("compress", bomb, "png")
    assert not failed["ok"] and failed["error"]["code"] == "too_many_pixels", failed


@pytest.mark.parametrize("graph,query", [("compress", {}), ("resize", {"width": 16})])
def test_iphone_orientation_is_applied_once(iphone: bytes, graph: str, query: dict) -> None:
    result = ok(run(graph, iphone, "png", **query))
    image = vload(result["data"])
    w, h = (32, 64) if not query else (16, 32)
    assert (image.width, image.height) == (w, h)
    assert close(vpixel(image, w // 2, 2), RED), vpixel(image, w // 2, 2)
    assert close(vpixel(image, w // 2, h - 3), BLUE), vpixel(image, w // 2, h - 3)


def test_display_p3_10_bit_is_converted_to_srgb(p3_10bit: bytes) -> None:
    assert heif.primary(p3_10bit) is not None
    for fmt in ("png", "jpeg"):
        image = vload(ok(run("compress", p3_10bit, fmt, quality=90))["data"])
        assert close(vpixel(image, 32, 32), GREENISH, 6), vpixel(image, 32, 32)
        assert not image.get_typeof("icc-profile-data")


def test_a_truncated_heic_is_undecodable(iphone: bytes) -> None:
    failed = run("compress", iphone[: len(iphone) * 2 // 3], "png")
    assert not failed["ok"] and failed["error"]["code"] == "undecodable_source", failed
