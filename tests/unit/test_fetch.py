"""Source fetching against a real local HTTP server (pytest-aiohttp)."""

from __future__ import annotations

import asyncio
import socket

import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver

from imgserver import fetch as fetch_module
from imgserver.errors import (
    SourceNotAllowed,
    SourceNotFound,
    SourceTimeout,
    SourceTooLarge,
    SourceUnreachable,
)
from imgserver.fetch import Fetcher, GuardedResolver
from imgserver.settings import Settings

JPEG = b"\xff\xd8\xff\xe0" + b"x" * 1000


def make_app(hits: dict[str, int]) -> web.Application:
    async def image(request: web.Request) -> web.Response:
        hits[request.path] = hits.get(request.path, 0) + 1
        return web.Response(body=JPEG, content_type="text/plain")  # a wrong type must not matter

    async def redirect(request: web.Request) -> web.Response:
        n = int(request.match_info["n"])
        target = "/image" if n == 0 else f"/redirect/{n - 1}"
        raise web.HTTPFound(target)

    async def to(request: web.Request) -> web.Response:
        raise web.HTTPFound(request.query["url"])

    async def big(request: web.Request) -> web.Response:
        return web.Response(body=b"\0" * 5000)

    async def stream(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for _ in range(100):
            await resp.write(b"\0" * 1000)
        return resp

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(float(request.query.get("s", "2")))
        return web.Response(body=JPEG)

    async def status(request: web.Request) -> web.Response:
        return web.Response(status=int(request.match_info["code"]), text="no")

    app = web.Application()
    app.router.add_get("/image", image)
    app.router.add_get("/redirect/{n}", redirect)
    app.router.add_get("/to", to)
    app.router.add_get("/big", big)
    app.router.add_get("/stream", stream)
    app.router.add_get("/slow", slow)
    app.router.add_get("/status/{code}", status)
    return app


@pytest.fixture
async def server(aiohttp_server):
    hits: dict[str, int] = {}
    srv = await aiohttp_server(make_app(hits))
    srv.hits = hits
    return srv


@pytest.fixture
async def fetcher_factory():
    made: list[Fetcher] = []

    async def make(resolver: AbstractResolver | None = None, **settings) -> Fetcher:
        options = {
            "allow_private_sources": True,
            "fetch_max_redirects": 3,
            "max_source_bytes": 4000,
            "fetch_read_timeout": 0.5,
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


async def test_fetches_bytes_whatever_the_content_type(server, fetcher_factory) -> None:
    f = await fetcher_factory()
    assert await f.fetch(str(server.make_url("/image"))) == JPEG


async def test_follows_redirects_up_to_the_limit(server, fetcher_factory) -> None:
    f = await fetcher_factory()
    assert await f.fetch(str(server.make_url("/redirect/2"))) == JPEG  # 3 redirects
    with pytest.raises(SourceUnreachable, match="more than 3 redirects"):
        await f.fetch(str(server.make_url("/redirect/3")))


async def test_redirect_to_another_scheme_is_refused(server, fetcher_factory) -> None:
    f = await fetcher_factory()
    with pytest.raises(SourceNotAllowed):
        await f.fetch(str(server.make_url("/to").with_query(url="file:///etc/passwd")))


async def test_byte_cap_on_content_length_and_while_streaming(server, fetcher_factory) -> None:
    f = await fetcher_factory()
    with pytest.raises(SourceTooLarge, match="5000 bytes"):
        await f.fetch(str(server.make_url("/big")))
    with pytest.raises(SourceTooLarge, match="over the limit"):
        await f.fetch(str(server.make_url("/stream")))


@pytest.mark.parametrize("code", [403, 401, 500, 503])
async def test_non_2xx_is_unreachable(server, fetcher_factory, code) -> None:
    f = await fetcher_factory()
    with pytest.raises(SourceUnreachable) as err:
        await f.fetch(str(server.make_url(f"/status/{code}")))
    assert err.value.details["upstream_status"] == code


@pytest.mark.parametrize("code", [404, 410])
async def test_404_and_410_are_not_found(server, fetcher_factory, code) -> None:
    f = await fetcher_factory()
    with pytest.raises(SourceNotFound) as err:
        await f.fetch(str(server.make_url(f"/status/{code}")))
    assert err.value.status == 404 and err.value.details["upstream_status"] == code


async def test_a_budget_shorter_than_the_timeouts_ends_the_fetch(server, fetcher_factory) -> None:
    """A waiting GET's job fetches within the time its client has left."""
    f = await fetcher_factory(fetch_read_timeout=5.0, fetch_total_timeout=5.0)
    url = str(server.make_url("/slow").with_query(s="1"))
    with pytest.raises(SourceTimeout):
        await f.fetch(url, budget=0.2)
    assert await f.fetch(url, budget=3.0) == JPEG  # a longer budget: the usual timeouts


async def test_refused_connection_is_unreachable(fetcher_factory) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    f = await fetcher_factory()
    with pytest.raises(SourceUnreachable):
        await f.fetch(f"http://127.0.0.1:{port}/x.jpg")


async def test_slow_source_times_out(server, fetcher_factory) -> None:
    f = await fetcher_factory()
    with pytest.raises(SourceTimeout):
        await f.fetch(str(server.make_url("/slow").with_query(s="2")))
    f = await fetcher_factory(fetch_read_timeout=5.0, fetch_total_timeout=0.3)
    with pytest.raises(SourceTimeout):
        await f.fetch(str(server.make_url("/slow").with_query(s="1")))
    with pytest.raises(SourceTimeout):  # a budget longer than the total timeout changes nothing
        await f.fetch(str(server.make_url("/slow").with_query(s="1")), budget=10.0)


async def test_literal_private_address_is_refused_without_connecting(server, fetcher_factory):
    f = await fetcher_factory(allow_private_sources=False)
    with pytest.raises(SourceNotAllowed):
        await f.fetch(str(server.make_url("/image")))
    assert server.hits == {}


class FakeResolver(AbstractResolver):
    """Answers fixed addresses for any name (a unit test of the resolver guard only)."""

    def __init__(self, addresses: list[str]) -> None:
        self.addresses = addresses

    async def resolve(self, host, port=0, family=socket.AF_INET):
        return [
            {"hostname": host, "host": a, "port": port, "family": family, "proto": 0, "flags": 0}
            for a in self.addresses
        ]

    async def close(self) -> None:
        pass


async def test_names_resolving_to_private_addresses_are_refused(server, fetcher_factory):
    f = await fetcher_factory(FakeResolver(["127.0.0.1"]), allow_private_sources=False)
    with pytest.raises(SourceNotAllowed, match="non-public"):
        await f.fetch(f"http://images.example:{server.port}/image")
    assert server.hits == {}


async def test_resolver_guard_keeps_only_public_addresses() -> None:
    guard = GuardedResolver(FakeResolver(["10.0.0.1", "93.184.216.34", "::1"]), False)
    assert [r["host"] for r in await guard.resolve("x.example", 80)] == ["93.184.216.34"]
    open_guard = GuardedResolver(FakeResolver(["10.0.0.1"]), True)
    assert [r["host"] for r in await open_guard.resolve("x.example", 80)] == ["10.0.0.1"]


async def test_every_redirect_hop_is_checked(server, fetcher_factory, monkeypatch) -> None:
    # Treat the test server's 127.0.0.1 as public and 127.0.0.2 as private for this test.
    monkeypatch.setattr(fetch_module, "is_public", lambda ip: str(ip) == "127.0.0.1")
    f = await fetcher_factory(allow_private_sources=False)
    assert await f.fetch(str(server.make_url("/image"))) == JPEG
    hop = f"http://127.0.0.2:{server.port}/image"
    with pytest.raises(SourceNotAllowed):
        await f.fetch(str(server.make_url("/to").with_query(url=hop)))


# -- into shared-memory blocks ------------------------------------------------------------------


@pytest.fixture
def blocks():
    from imgserver.shared import Blocks

    b = Blocks(keep=2)
    yield b
    b.close()


async def test_fetch_shared_gives_the_same_bytes_in_a_reused_block(
    server, fetcher_factory, blocks
) -> None:
    f = await fetcher_factory()
    first = await f.fetch_shared(str(server.make_url("/image")), blocks)
    assert bytes(first.view()) == JPEG and len(first) == len(JPEG)
    name = first.name
    first.release()
    first.release()  # idempotent
    again = await f.fetch_shared(str(server.make_url("/image")), blocks)
    assert again.name == name and blocks.made == 1  # the same block, no new one
    again.release()


async def test_fetch_shared_without_a_length_and_over_the_cap(
    server, fetcher_factory, blocks
) -> None:
    """A chunked body is written as it comes; past the cap it is refused and the block goes
    back (nothing is held, nothing leaks)."""
    f = await fetcher_factory(max_source_bytes=200_000)
    got = await f.fetch_shared(str(server.make_url("/stream")), blocks)
    assert bytes(got.view()) == b"\0" * 100_000
    got.release()
    small = await fetcher_factory()  # cap 4000
    for path in ("/stream", "/big"):
        with pytest.raises(SourceTooLarge):
            await small.fetch_shared(str(server.make_url(path)), blocks)
    assert blocks.made == 1  # every refused read gave its block back


async def test_fetch_shared_cancelled_gives_the_block_back(server, fetcher_factory, blocks) -> None:
    f = await fetcher_factory(fetch_read_timeout=5.0)
    task = asyncio.create_task(
        f.fetch_shared(str(server.make_url("/slow").with_query(s="3")), blocks)
    )
    await asyncio.sleep(0.2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    got = await f.fetch_shared(str(server.make_url("/image")), blocks)
    assert blocks.made == 1
    got.release()


def test_blocks_grow_and_are_kept_up_to_a_number() -> None:
    from imgserver.shared import STEP, Blocks, Writer

    b = Blocks(keep=1)
    try:
        w = Writer(b, None)
        for _ in range(3):
            w.write(b"x" * (STEP // 2))  # past one step: moves to a larger block
        data = w.done()
        assert data.size == 3 * (STEP // 2) and bytes(data.view()) == b"x" * data.size
        assert data.block.size >= data.size
        small = b.copy(b"abc")
        assert bytes(small.view()) == b"abc"
        data.release()
        small.release()  # two free blocks, keep=1: the smaller one is unlinked
        assert len(b._free) == 1 and b._free[0].size >= 3 * (STEP // 2)
    finally:
        b.close()


async def test_no_room_in_dev_shm_means_plain_bytes(server, fetcher_factory, monkeypatch) -> None:
    """A full /dev/shm (Docker's 64 MB) must not kill the process with SIGBUS: with no room
    for a block the source is read into plain memory, at the start or midway."""
    from imgserver import shared

    blocks = shared.Blocks(keep=2)
    f = await fetcher_factory(max_source_bytes=200_000)
    monkeypatch.setattr(shared, "room", lambda size, directory=shared.SHM_DIR: False)
    got = await f.fetch_shared(str(server.make_url("/stream")), blocks)
    assert got == b"\0" * 100_000 and blocks.made == 0
    assert blocks.copy(b"x" * 100) is None

    calls = []

    def room_once(size: int, directory: str = shared.SHM_DIR) -> bool:
        calls.append(size)
        return len(calls) == 1  # the first block, then none

    monkeypatch.setattr(shared, "room", room_once)
    writer = shared.Writer(blocks, 10)  # one block (of one step), then no room to grow
    parts = [bytes([i]) * (shared.STEP // 2) for i in range(3)]
    for part in parts:
        writer.write(part)
    assert writer.done() == b"".join(parts)
    assert len(blocks._free) == 1  # the block it started in was given back
    blocks.close()
