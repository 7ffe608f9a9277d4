"""iPhone-style HEIC sources end to end (the service as a real process, its image processes
set up by ``execute.init``): by URL from a real origin and by upload, upright and in sRGB; and
uploads we could not decode refused at once with 415, before anything is stored."""

from __future__ import annotations

import io
import uuid
from urllib.parse import urlencode

import aiohttp
import pytest
import pyvips
from PIL import Image

from ..conftest import Origin, Service
from ..images import BLUE, RED, builtin_profile, close, heic, solid, texture
from .test_uploads import get_bytes, get_json, upload, wait_image

GREENISH = (40, 180, 60)


@pytest.fixture(scope="module")
def iphone() -> bytes:
    """Stored 64x32 (red left, blue right), orientation 6, a Display P3 profile, 10 bits,
    in 32-pixel tiles: shown upright it is 32x64, red on top, blue below."""
    stored = solid(32, 32, RED).join(solid(32, 32, BLUE), "horizontal")
    p3 = stored.icc_transform("p3", input_profile="srgb")
    return heic(p3, orientation=6, icc=builtin_profile("p3"), bits=10, tile=32)


def upright_in_srgb(body: bytes) -> None:
    im = Image.open(io.BytesIO(body)).convert("RGB")
    assert im.size == (32, 64)
    assert close(im.getpixel((16, 3)), RED, 16), im.getpixel((16, 3))
    assert close(im.getpixel((16, 60)), BLUE, 16), im.getpixel((16, 60))


async def follow(url: str) -> tuple[int, str, bytes]:
    async with aiohttp.ClientSession() as s, s.get(url, allow_redirects=False) as r:
        if r.status != 301:
            return r.status, r.content_type, await r.read()
        location = r.headers["Location"]
    return await get_bytes(location)


@pytest.mark.parametrize("graph", ["passthrough.png", "resize.jpg", "autocontrast.png"])
async def test_heic_by_url(service: Service, origin: Origin, iphone: bytes, graph: str) -> None:
    """libvips graphs (passthrough, resize) and a Pillow one (autocontrast)."""
    src = origin.add(f"/{uuid.uuid4().hex}.heic", iphone)
    status, content_type, body = await follow(
        service.url(f"/graph/{graph}?" + urlencode({"input": src}))
    )
    assert status == 200, body[:300]
    assert content_type == ("image/jpeg" if graph.endswith("jpg") else "image/png")
    if graph != "autocontrast.png":  # autocontrast stretches the colours it is given
        upright_in_srgb(body)
    else:
        assert Image.open(io.BytesIO(body)).size == (32, 64)


async def test_heic_upload(service: Service, iphone: bytes) -> None:
    status, _, image = await upload(service, iphone)
    assert status == 201, image
    assert (image["format"], image["width"], image["height"]) == ("heif", 64, 32)  # as stored
    done = await wait_image(service, image["id"])
    assert done["status"] == "completed", done
    status, content_type, body = await get_bytes(done["compressed_url"])
    assert (status, content_type) == (200, "image/jpeg")
    upright_in_srgb(body)
    status, content_type, original = await get_bytes(done["original_url"])
    assert (status, content_type, original) == (200, "image/heif", iphone)


def relabelled(item_type: bytes) -> bytes:
    data = heic(texture(16, 16))
    assert data.count(b"hvc1") == 1
    return data.replace(b"hvc1", item_type)


def jpeg2000() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (16, 16), "red").save(out, "JPEG2000")
    return out.getvalue()


UNDECODABLE = {
    "heif-jpeg-coded": relabelled(b"jpeg"),
    "heif-vvc": relabelled(b"vvc1"),
    "jpeg2000": jpeg2000(),
    "png-signature-then-noise": b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4,
    "heif-boxes-then-noise": b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x5a" * 500,
}


@pytest.mark.parametrize("name", list(UNDECODABLE))
async def test_an_upload_we_cannot_decode_is_refused_at_once(service: Service, name: str) -> None:
    _, before = await get_json(service.url("/images?limit=100"))
    status, _, answer = await upload(service, UNDECODABLE[name])
    assert status == 415, answer
    assert answer["error"]["code"] == "unsupported_source" and answer["error"]["message"]
    _, after = await get_json(service.url("/images?limit=100"))
    assert after["images"] == before["images"]  # nothing stored, no task


async def test_a_heif_with_another_codec_by_url_is_unsupported(
    service: Service, origin: Origin
) -> None:
    src = origin.add(f"/{uuid.uuid4().hex}.heic", UNDECODABLE["heif-vvc"])
    status, content_type, body = await follow(
        service.url("/graph/passthrough.png?" + urlencode({"input": src}))
    )
    assert (status, content_type) == (415, "application/json"), body[:300]
    assert b"vvc1" in body


def test_the_samples_are_what_they_claim() -> None:
    """The HEIF samples parse as HEIF; libvips decodes none of the undecodable ones."""
    for name, data in UNDECODABLE.items():
        try:
            pyvips.Image.new_from_buffer(data, "").avg()
        except pyvips.Error:
            continue
        raise AssertionError(f"{name} decodes")


async def test_the_upload_page_offers_heic(service: Service) -> None:
    """The file picker lets HEIC files be chosen (desktop browsers do not all count them as
    image/*) and the page names the formats uploads accept."""
    status, _, body = await get_bytes(service.url("/"))
    assert status == 200
    page = body.decode()
    assert 'accept="image/*,.heic,.heif"' in page
    assert "JPEG, PNG, GIF, WebP, AVIF, HEIC/HEIF (iPhone photos) or TIFF" in page
