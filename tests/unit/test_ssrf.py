"""SSRF at the fetcher: sources on loopback, private and link-local addresses (in every
spelling), redirects to them, DNS rebinding, and the allow-list of source hosts, against
``Fetcher`` with resolvers that answer what the test needs (end to end: tests/e2e/
test_ssrf_service.py)."""

from __future__ import annotations

import socket
from urllib.parse import urlencode

import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver

from imgserver import fetch as fetch_module
from imgserver.errors import SourceNotAllowed, SourceUnreachable
from imgserver.fetch import Fetcher, GuardedResolver
from imgserver.security import ipv4_literal
from imgserver.settings import Settings

from ..addresses import ELSEWHERE, LOOPBACK

JPEG = b"\xff\xd8\xff\xe0" + b"x" * 1000


class MapResolver(AbstractResolver):
    """Answers from a table (name -> addresses); records every name it is asked about."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table
        self.asked: list[str] = []

    async def resolve(self, host, port=0, family=socket.AF_INET):
        self.asked.append(host)
        if host not in self.table:
            raise OSError(f"no such name {host}")
        return [
            {
                "hostname": host,
                "host": a,
                "port": port,
                "family": socket.AF_INET6 if ":" in a else socket.AF_INET,
                "proto": 0,
                "flags": 0,
            }
            for a in self.table[host]
        ]

    async def close(self) -> None:
        pass


def make_app(hits: dict[str, int]) -> web.Application:
    async def image(request: web.Request) -> web.Response:
        hits[request.path] = hits.get(request.path, 0) + 1
        return web.Response(body=JPEG)

    async def stream(request: web.Request) -> web.StreamResponse:
        hits[request.path] = hits.get(request.path, 0) + 1
        resp = web.StreamResponse()
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for _ in range(10):
            await resp.write(JPEG)
        return resp

    async def to(request: web.Request) -> web.Response:
        hits[request.path] = hits.get(request.path, 0) + 1
        raise web.HTTPFound(request.query["url"])

    app = web.Application()
    app.router.add_get("/image", image)
    app.router.add_get("/stream", stream)
    app.router.add_get("/to", to)
    return app


@pytest.fixture
async def server(aiohttp_server):
    hits: dict[str, int] = {}
    srv = await aiohttp_server(make_app(hits), host="127.0.0.1")
    srv.hits = hits
    return srv


@pytest.fixture
async def fetcher_factory():
    made: list[Fetcher] = []

    async def make(resolver: AbstractResolver | None = None, **settings) -> Fetcher:
        options = {
            "allow_private_sources": False,
            "fetch_max_redirects": 3,
            "fetch_connect_timeout": 2.0,
            "fetch_total_timeout": 5.0,
            **settings,
        }
        f = Fetcher(Settings.from_env({}, **options), resolver=resolver)
        await f.open()
        made.append(f)
        return f

    yield make
    for f in made:
        await f.close()


LITERALS = [b for b in LOOPBACK + ELSEWHERE if "localhost" not in b.lower()]  # names: below


@pytest.mark.parametrize("base", LITERALS)
async def test_literal_addresses_are_refused_before_dns(server, fetcher_factory, base) -> None:
    """Every numeric spelling is an address, checked as such: the resolver is never asked (it
    would answer a public address here, as a DNS server may for a name like 0x7f000001)."""
    resolver = MapResolver({})
    f = await fetcher_factory(resolver)
    source = base.replace("PORT", str(server.port)).rstrip("/") + "/image"
    with pytest.raises(SourceNotAllowed):
        await f.fetch(source)
    assert resolver.asked == [] and server.hits == {}


@pytest.mark.parametrize(
    "host", ["localhost", "localhost.", "LOCALHOST", "rebind.test", "metadata.google.internal"]
)
async def test_names_resolving_to_loopback(server, fetcher_factory, host) -> None:
    loopback = ["127.0.0.1", "::1"]
    resolver = MapResolver(
        {h: loopback for h in ("localhost", "localhost.", "rebind.test")}
        | {"metadata.google.internal": ["169.254.169.254"]}
    )
    f = await fetcher_factory(resolver)
    with pytest.raises(SourceNotAllowed):
        await f.fetch(f"http://{host}:{server.port}/image")
    assert resolver.asked and server.hits == {}


def test_ipv4_literal_spellings() -> None:
    spellings = {
        "127.0.0.1",
        "127.1",
        "127.0.1",
        "0x7f000001",
        "0X7F000001",
        "2130706433",
        "0177.0.0.1",
        "017700000001",
        "0x7f.1",
        "0x7f.0.0.0x1",
        "127.0.0.1.",
    }
    for spelling in spellings:
        assert str(ipv4_literal(spelling)) == "127.0.0.1", spelling
    for name in (
        "example.com",
        "1.2.3.4.5",
        "256.0.0.1",
        "08.0.0.1",
        "4294967296",
        "",
        ".",
        "1..2",
        "0x7g",
        "a.1",
        "1.2.3.4a",
        "١٢٧.0.0.1",
    ):
        assert ipv4_literal(name) is None, name


# -- redirects: every hop is checked ------------------------------------------------------------


def _treat_only_origin_as_public(monkeypatch) -> None:
    """With private sources refused no loopback origin is reachable: call the test server's
    127.0.0.1 public for these tests, so a first hop can succeed; everything else on loopback
    (127.0.0.2, ::1, ...) stays private."""
    monkeypatch.setattr(fetch_module, "is_public", lambda ip: str(ip) == "127.0.0.1")


@pytest.mark.parametrize(
    "target",
    [
        "http://127.0.0.2:PORT/image",
        "http://[::1]:PORT/image",
        "http://0x7f000002:PORT/image",
        "http://2130706434:PORT/image",
        "http://127.2:PORT/image",
        "http://[::ffff:127.0.0.2]:PORT/image",
        "http://rebind.test:PORT/image",  # a name resolving to loopback
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/image",
        "http://origin.test:PORT/to?url=http://127.0.0.2:PORT/image",  # two hops
    ],
)
async def test_redirect_to_loopback_is_refused(server, fetcher_factory, monkeypatch, target):
    _treat_only_origin_as_public(monkeypatch)
    resolver = MapResolver({"origin.test": ["127.0.0.1"], "rebind.test": ["127.0.0.2"]})
    f = await fetcher_factory(resolver)
    first = f"http://origin.test:{server.port}"
    assert await f.fetch(first + "/image") == JPEG  # the first hop itself is allowed
    server.hits.clear()
    hop = target.replace("PORT", str(server.port))
    with pytest.raises(SourceNotAllowed):
        await f.fetch(f"{first}/to?" + urlencode({"url": hop}))
    assert server.hits.get("/image", 0) == 0


# -- DNS rebinding: the address actually connected to is checked --------------------------------


class PermissiveGuard(GuardedResolver):
    """A guard that lets every answer through: stands for a resolver whose answer passed the
    check but whose connection lands on another (private) address."""

    async def resolve(self, host, port=0, family=socket.AF_INET):
        return await self._inner.resolve(host, port, family)


@pytest.mark.parametrize("path", ["/image", "/stream", "/to?url=/image"])
async def test_connection_to_a_private_address_is_refused(
    server, fetcher_factory, monkeypatch, path
) -> None:
    monkeypatch.setattr(fetch_module, "GuardedResolver", PermissiveGuard)
    f = await fetcher_factory(MapResolver({"rebind.test": ["127.0.0.1"]}))
    with pytest.raises(SourceNotAllowed, match="non-public"):
        await f.fetch(f"http://rebind.test:{server.port}{path}")
    assert server.hits == {}  # refused at connect time: not a byte of the request was sent


async def test_connection_check_is_off_when_private_sources_are_allowed(
    server, fetcher_factory, monkeypatch
) -> None:
    monkeypatch.setattr(fetch_module, "GuardedResolver", PermissiveGuard)
    f = await fetcher_factory(
        MapResolver({"rebind.test": ["127.0.0.1"]}), allow_private_sources=True
    )
    assert await f.fetch(f"http://rebind.test:{server.port}/image") == JPEG


# -- the allow-list, at the fetcher -------------------------------------------------------------


ALLOWED = "allowed.test,*.images.test"


@pytest.mark.parametrize(
    "target,allowed",
    [
        ("http://allowed.test:PORT/image", True),
        ("http://ALLOWED.test:PORT/image", True),
        ("http://cdn.images.test:PORT/image", True),
        ("http://a.b.images.test:PORT/image", True),
        ("http://other.test:PORT/image", False),
        ("http://images.test:PORT/image", False),
        ("http://allowed.test.evil.test:PORT/image", False),
        ("http://127.0.0.1:PORT/image", False),
        ("http://localhost:PORT/image", False),
    ],
)
async def test_redirect_off_the_allow_list_is_refused(
    server, fetcher_factory, target, allowed
) -> None:
    everything_here = {
        h: ["127.0.0.1"]
        for h in (
            "allowed.test",
            "cdn.images.test",
            "a.b.images.test",
            "other.test",
            "images.test",
            "allowed.test.evil.test",
            "localhost",
        )
    }
    resolver = MapResolver(everything_here)
    f = await fetcher_factory(resolver, allow_private_sources=True, allowed_sources=ALLOWED)
    hop = target.replace("PORT", str(server.port))
    first = f"http://allowed.test:{server.port}/to?" + urlencode({"url": hop})
    if allowed:
        assert await f.fetch(first) == JPEG
        assert server.hits["/image"] == 1
        return
    with pytest.raises(SourceNotAllowed, match="allow-list"):
        await f.fetch(first)
    assert server.hits.get("/image", 0) == 0
    assert server.hits["/to"] == 1


async def test_allow_list_is_checked_before_resolving(server, fetcher_factory) -> None:
    resolver = MapResolver({"other.test": ["127.0.0.1"]})
    f = await fetcher_factory(resolver, allow_private_sources=True, allowed_sources=ALLOWED)
    with pytest.raises(SourceNotAllowed):
        await f.fetch(f"http://other.test:{server.port}/image")
    assert resolver.asked == [] and server.hits == {}
    with pytest.raises(SourceUnreachable):  # on the list, but this name does not resolve
        await f.fetch(f"http://x.images.test:{server.port}/image")
    assert resolver.asked == ["x.images.test"]
