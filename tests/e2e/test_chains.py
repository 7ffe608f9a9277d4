"""Chained inputs end to end: ``input=/graph/…`` resolved inside the service (through the cache,
never an HTTP request to itself), the inner result cached for everyone, purges following the
chain, and a chain that is too deep refused."""

from __future__ import annotations

import io
import uuid
from urllib.parse import urlencode

import aiohttp
import pytest
from PIL import Image
from yarl import URL

from imgserver.apikeys import KeyRing, parse_env

from ..conftest import Origin, Service
from ..images import jpeg, texture

SECRET = "s3cret-s3cret-s3cret"
KEYS = f"root:{SECRET}-admin:admin"


async def get(url: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    async with (
        aiohttp.ClientSession() as s,
        s.request(method, URL(url, encoded=True), allow_redirects=False) as r,
    ):
        return r.status, dict(r.headers), await r.read()


def graph(spec: str, source: str, **params: object) -> str:
    return f"/graph/{spec}?" + urlencode({"input": source, **params})


@pytest.fixture(scope="module")
def chained(tmp_path_factory: pytest.TempPathFactory):
    svc = Service(tmp_path_factory.mktemp("chains"), {"IMGSERVER_KEYS": KEYS})
    svc.start()
    yield svc, KeyRing(parse_env(KEYS))
    svc.stop()


def signed(svc: Service, ring: KeyRing, path: str) -> str:
    spec, _, query = path.removeprefix("/graph/").partition("?")
    return svc.url(ring.signed_path("root", spec, query))


async def test_a_chain_is_made_through_the_cache(chained, origin: Origin) -> None:
    svc, ring = chained
    src = origin.add(f"/chain-{uuid.uuid4().hex[:8]}.jpg", jpeg(texture(400, 300)))
    inner = graph("resize.png", src, width=200, height=100, mode="crop")
    outer = graph("gaussianblur.jpg", inner, **{"std-dev-x": 2, "std-dev-y": 2})

    status, headers, _ = await get(signed(svc, ring, outer))
    assert (status, headers["X-Cache"]) == (301, "MISS")
    status, _, body = await get(headers["Location"])
    assert status == 200
    im = Image.open(io.BytesIO(body))
    assert (im.format, im.size) == ("JPEG", (200, 100))  # the inner crop, blurred, as JPEG
    assert origin.hits(src.removeprefix(origin.url(""))) == 1

    # the inner result was cached on the way, for everyone
    status, headers, _ = await get(signed(svc, ring, inner))
    assert (status, headers["X-Cache"]) == (301, "HIT")
    status, headers, _ = await get(signed(svc, ring, outer))
    assert (status, headers["X-Cache"]) == (301, "HIT")

    # purging the source purges what was chained from it
    purge = svc.url(ring.signed_path("root", "cache", urlencode({"input": src})))
    status, _, body = await get(purge, "DELETE")
    assert status == 200 and b'"deleted":2' in body.replace(b" ", b"")
    status, headers, _ = await get(signed(svc, ring, outer))
    assert (status, headers["X-Cache"]) == (301, "MISS")
    assert origin.hits(src.removeprefix(origin.url(""))) == 2


async def test_a_chain_deeper_than_four_graphs_is_refused(chained, origin: Origin) -> None:
    svc, ring = chained
    source = origin.add(f"/deep-{uuid.uuid4().hex[:8]}.jpg", jpeg(texture(64, 48)))
    for _ in range(4):
        source = graph("passthrough.png", source)
    status, _, body = await get(signed(svc, ring, graph("passthrough.jpg", source)))
    assert status == 400 and b"invalid_input" in body and b"at most 4 graphs" in body


async def test_a_broken_inner_source_fails_the_outer_request(chained, origin: Origin) -> None:
    svc, ring = chained
    broken = origin.add(f"/broken-{uuid.uuid4().hex[:8]}.jpg", b"not an image at all" * 10)
    status, _, body = await get(
        signed(svc, ring, graph("passthrough.jpg", graph("resize.png", broken)))
    )
    assert status == 415 and b"unsupported_source" in body
