"""SSRF end to end: the service as a process must never reach the origin on 127.0.0.1
through any spelling of a loopback, private or link-local address, and its allow-list
refuses other hosts before fetching.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from urllib.parse import urlencode

import aiohttp
import pytest

from ..conftest import Origin, Service
from ..images import jpeg, texture

CLIENT_TIMEOUT = aiohttp.ClientTimeout(total=10)
JPEG = b"\xff\xd8\xff\xe0" + b"x" * 1000

# Every spelling of the origin's own loopback address (PORT: the origin's port).
LOOPBACK = [
    "http://127.0.0.1:PORT",
    "https://127.0.0.1:PORT",
    "http://localhost:PORT",
    "http://LocalHost:PORT",
    "http://[::1]:PORT",
    "http://[0:0:0:0:0:0:0:1]:PORT",
    "http://0x7f000001:PORT",  # hex
    "http://0X7F000001:PORT",
    "http://2130706433:PORT",  # decimal
    "http://0177.0.0.1:PORT",  # octal
    "http://017700000001:PORT",
    "http://127.1:PORT",  # short forms
    "http://0x7f.1:PORT",
    "http://127.0.1:PORT",
    "http://127.0.0.1.:PORT",  # trailing dot
    "http://[::ffff:127.0.0.1]:PORT",  # IPv4-mapped
    "http://[::ffff:7f00:1]:PORT",
    "http://[::127.0.0.1]:PORT",  # IPv4-compatible
    "http://[64:ff9b::7f00:1]:PORT",  # NAT64
    "http://[2002:7f00:1::1]:PORT",  # 6to4
    "http://0.0.0.0:PORT",  # "this host": connects to loopback on Linux
    "http://0:PORT",
]
# Not the origin: refused before any connection is tried (a try would hang on a connect timeout).
ELSEWHERE = [
    "http://169.254.169.254/latest/meta-data/",  # cloud metadata
    "http://[fd00:ec2::254]/latest/meta-data/",  # its IPv6 twin
    "http://0xa9fea9fe/latest/meta-data/",  # 169.254.169.254 in hex
    "http://10.0.0.1/",
    "http://172.16.0.1/",
    "http://192.168.1.1/",
    "http://100.64.0.1/",
    "http://[fe80::1]/",
    "http://[fc00::1]/",
    "http://224.0.0.1/",
    "http://255.255.255.255/",
]


def unique(prefix: str = "/ssrf") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}.jpg"


async def get_json(session: aiohttp.ClientSession, url: str, method: str = "GET") -> tuple:
    async with session.request(method, url, allow_redirects=False) as r:
        return r.status, json.loads(await r.read())


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=CLIENT_TIMEOUT) as s:
        yield s


@pytest.fixture(scope="module")
def closed_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """The default: private sources refused."""
    env = {
        "IMGSERVER_ALLOW_PRIVATE_SOURCES": "0",
        "IMGSERVER_WORKERS": "1",
        "IMGSERVER_FETCH_CONNECT_TIMEOUT": "2",
    }
    svc = Service(tmp_path_factory.mktemp("ssrf"), env)
    svc.start()
    yield svc
    svc.stop()


@pytest.mark.parametrize("base", LOOPBACK + ELSEWHERE)
async def test_private_sources_are_refused_unfetched(
    closed_service: Service, origin: Origin, session, base: str
) -> None:
    path = unique()
    origin.add(path, jpeg(texture(32, 32)))
    source = base.replace("PORT", str(origin.port)).rstrip("/") + path
    for method in ("GET", "POST"):
        url = closed_service.url("/graph/passthrough.jpg?" + urlencode({"input": source}))
        status, body = await get_json(session, url, method)
        if method == "POST" and status == 202:  # the prefetch task fails instead
            status, body = await _final_task(session, closed_service, body["task"]["id"])
        assert (status, body["error"]["code"]) == (403, "source_not_allowed"), (source, body)
    assert origin.hits(path) == 0


async def _final_task(session: aiohttp.ClientSession, service: Service, task_id: str) -> tuple:
    for _ in range(200):
        async with session.get(service.url(f"/tasks/{task_id}")) as r:
            task = await r.json()
        if task["status"] == "failed":
            return 403 if task["error"]["code"] == "source_not_allowed" else 0, task
        assert task["status"] in ("pending", "processing"), task
        await asyncio.sleep(0.05)
    raise AssertionError(f"task {task_id} did not fail")


async def test_a_public_looking_source_is_still_fetched(
    closed_service: Service, origin: Origin, session
) -> None:
    """The refusals above come from the address checks, not from a service that fetches
    nothing: a name that does not resolve is a 502 (504 where DNS itself times out), not 403."""
    url = closed_service.url("/graph/passthrough.jpg?input=http://no-such-host.invalid/a.jpg")
    status, body = await get_json(session, url)
    assert (status, body["error"]["code"]) in ((502, "source_unreachable"), (504, "source_timeout"))


# -- the allow-list, end to end --------------------------------------------------------------


async def test_allow_list_refuses_other_hosts_before_fetching(
    start_service, origin: Origin, session
) -> None:
    svc = start_service(
        IMGSERVER_WORKERS="1",
        IMGSERVER_ALLOW_PRIVATE_SOURCES="1",
        IMGSERVER_ALLOWED_SOURCES="allowed.test,*.images.test",
    )
    path = unique()
    origin.add(path, jpeg(texture(32, 32)))
    before = svc.metrics()
    for base in (
        "http://127.0.0.1:PORT",
        "http://localhost:PORT",
        "http://images.test:PORT",
        "http://evilimages.test:PORT",
        "http://allowed.test.evil.test:PORT",
        "http://allowed.testx:PORT",
        "http://xallowed.test:PORT",
    ):
        source = base.replace("PORT", str(origin.port)) + path
        for method in ("GET", "POST"):
            url = svc.url("/graph/passthrough.jpg?" + urlencode({"input": source}))
            status, body = await get_json(session, url, method)
            assert (status, body["error"]["code"]) == (403, "source_not_allowed"), (source, body)
    after = svc.metrics()
    assert origin.hits(path) == 0
    published = 'imgserver_jobs_published_total{queue="%s"}'
    for queue in ("urgent", "background"):  # refused at the request: no job was even queued
        assert after.get(published % queue, 0) == before.get(published % queue, 0)
