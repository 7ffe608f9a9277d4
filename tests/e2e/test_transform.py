"""The ``transform`` graph through the service: a watermark fetched by the worker under the
input's rules (and once per process), its failures in the input's vocabulary, X-Quality for
max-bytes, and out-of-range parameters refused."""

from __future__ import annotations

import io
import uuid
from urllib.parse import urlencode

import aiohttp
import pytest
from PIL import Image

from ..addresses import ELSEWHERE
from ..conftest import Origin, Service
from ..images import jpeg, png, solid, texture


async def get(url: str) -> tuple[int, dict[str, str], bytes]:
    async with aiohttp.ClientSession() as s, s.get(url, allow_redirects=False) as r:
        return r.status, dict(r.headers), await r.read()


def transform(service: Service, source: str, **params: object) -> str:
    query = {"input": source, **{k.replace("_", "-"): v for k, v in params.items()}}
    return service.url("/graph/transform.png?" + urlencode(query))


def unique(suffix: str) -> str:
    return f"/tf-{uuid.uuid4().hex[:10]}{suffix}"


async def test_a_watermark_is_fetched_once_and_laid_over(service: Service, origin: Origin) -> None:
    logo = unique(".png")
    mark = origin.add(logo, png(solid(20, 10, (255, 0, 0))), content_type="image/png")
    for n in range(2):  # two different results, one logo
        src = origin.add(unique(".jpg"), jpeg(texture(200 + n, 100)))
        status, headers, _ = await get(
            transform(service, src, watermark=mark, watermark_position="north-west")
        )
        assert status == 301, headers
        status, _, body = await get(headers["Location"])
        pixel = Image.open(io.BytesIO(body)).convert("RGB").getpixel((5, 5))
        assert pixel == (255, 0, 0)
    assert origin.hits(logo) == 1  # kept in the worker's memory


@pytest.mark.parametrize(
    ("body", "route", "code"),
    [
        (b"this is not an image at all" * 10, {}, (415, "unsupported_source")),
        (png(solid(20, 10, (255, 0, 0))), {"status": 404}, (404, "source_not_found")),
    ],
)
async def test_a_bad_watermark_fails_like_a_bad_input(
    service: Service, origin: Origin, body: bytes, route: dict, code: tuple[int, str]
) -> None:
    mark = origin.add(unique(".png"), body, **route)
    src = origin.add(unique(".jpg"), jpeg(texture(64, 48)))
    status, _, answer = await get(transform(service, src, watermark=mark))
    assert (status, code[1].encode() in answer) == (code[0], True), answer


async def test_a_watermark_over_the_byte_limit_is_413(start_service, origin: Origin) -> None:
    svc = start_service(IMGSERVER_MAX_SOURCE_BYTES="20000", IMGSERVER_WORKERS="1")
    mark = origin.add(unique(".png"), png(texture(300, 300)))
    assert len(origin.routes[mark.removeprefix(origin.url(""))].body) > 20000
    src = origin.add(unique(".jpg"), jpeg(texture(64, 48)))
    status, _, answer = await get(transform(svc, src, watermark=mark))
    assert status == 413 and b"source_too_large" in answer


async def test_a_private_watermark_is_refused_unfetched(start_service, origin: Origin) -> None:
    svc = start_service(IMGSERVER_ALLOW_PRIVATE_SOURCES="0", IMGSERVER_WORKERS="1")
    public_input = "http://93.184.216.34/never-fetched.jpg"  # refused first: the watermark
    for mark in ("http://127.0.0.1:1/logo.png", ELSEWHERE[0]):
        status, _, answer = await get(transform(svc, public_input, watermark=mark))
        assert status == 403 and b"source_not_allowed" in answer, (mark, answer)


async def test_max_bytes_says_the_quality_chosen(service: Service, origin: Origin) -> None:
    src = origin.add(unique(".jpg"), jpeg(texture(400, 300)))
    url = service.url(
        "/graph/transform.jpg?" + urlencode({"input": src, "max-bytes": 30000, "quality": 90})
    )
    status, headers, _ = await get(url)
    assert status == 301 and 30 <= int(headers["X-Quality"]) < 90
    status, headers, _ = await get(url)
    assert (headers["X-Cache"], 30 <= int(headers["X-Quality"]) < 90) == ("HIT", True)
    status, _, body = await get(url.replace("30000", "40"))
    assert status == 422 and b"too_many_pixels" in body and b"max-bytes" in body


@pytest.mark.parametrize(
    ("param", "value"),
    [("dpr", 5), ("rotate", 400), ("trim", 300), ("blur", 1000), ("flip", "sideways"),
     ("watermark-opacity", 2), ("mode", "stretch"), ("gravity", "up")],
)  # fmt: skip
async def test_out_of_range_is_invalid_param(
    service: Service, origin: Origin, param: str, value: object
) -> None:
    src = origin.add(unique(".jpg"), jpeg(texture(64, 48)))
    status, _, body = await get(transform(service, src, **{param: value}))
    assert status == 400 and b"invalid_param" in body and param.encode() in body


async def test_quality_auto_says_the_quality_chosen(service: Service, origin: Origin) -> None:
    src = origin.add(unique(".jpg"), jpeg(texture(300, 200)))
    compress = service.url("/graph/compress.webp?" + urlencode({"input": src}))
    status, headers, _ = await get(compress)  # compress: auto by default
    assert status == 301 and 1 <= int(headers["X-Quality"]) <= 100
    status, again, _ = await get(compress)
    assert (again["X-Cache"], again["X-Quality"]) == ("HIT", headers["X-Quality"])
    # a higher target: another result, at a quality at least as high
    status, higher, _ = await get(compress + "&quality-target=92")
    assert (status, higher["X-Cache"]) == (301, "MISS")
    assert int(higher["X-Quality"].split(";")[0]) >= int(headers["X-Quality"])
    # a target nothing reaches: 100, and it says so
    status, unreached, _ = await get(compress + "&quality-target=100")
    assert (status, unreached["X-Quality"]) == (301, "100; target-not-reached")
    status, _, body = await get(compress + "&quality=best")
    assert status == 400 and b"invalid_param" in body and b"auto" in body
