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

from ..addresses import ELSEWHERE, LOOPBACK
from ..conftest import Origin, Service
from ..images import jpeg, texture

CLIENT_TIMEOUT = aiohttp.ClientTimeout(total=10)


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
