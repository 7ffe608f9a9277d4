"""The service as a CDN origin (issue 15, items 1-3), over HTTP against the real process: a
dead or slow source answers 504 within the request deadline, a source's 404 is a 404, a 5xx a
502; failures are remembered (a repeat fetches nothing); errors say how long a cache may keep
them; HEAD answers exactly as GET; answers carry surrogate keys, and a purge names them.

Every /graph/ request here is signed (the service has API keys), so the signed form is what is
tested throughout. The distributed twins (failure memory seen by a second frontend) are in
``test_distributed.py``."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from urllib.parse import quote

import aiohttp
import pytest
from multidict import CIMultiDict
from yarl import URL

from imgserver.apikeys import KeyRing, parse_env
from imgserver.names import source_digest

from ..conftest import Origin
from ..images import jpeg, texture
from ..servers import Service

SECRET = "cdn-secret-cdn-secret"
KEYS = f"web:{SECRET},ops:{SECRET}-admin:admin"
DEADLINE = 3.0  # seconds a GET waits: a dead source must be answered before this


def photo(width: int = 96, height: int = 64) -> bytes:
    return jpeg(texture(width, height))


class Cdn:
    """The service under test and its key ring: ``url`` signs a /graph/ request."""

    def __init__(self, svc: Service) -> None:
        self.svc = svc
        self.ring = KeyRing(parse_env(KEYS))

    def url(self, spec: str, source: str | None, key: str = "web", **params: object) -> str:
        given = [] if source is None else [f"input={quote(source, safe='')}"]
        query = "&".join([*given, *(f"{k}={v}" for k, v in params.items())])
        return self.svc.url(self.ring.signed_path(key, spec, query))

    def purge_url(self, source: str) -> str:
        return self.svc.url(
            self.ring.signed_path("ops", "cache", f"input={quote(source, safe='')}")
        )


@pytest.fixture(scope="module")
def cdn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cdn]:
    svc = Service(
        tmp_path_factory.mktemp("cdn"),
        {
            "IMGSERVER_KEYS": KEYS,
            "IMGSERVER_WORKERS": "1",
            "IMGSERVER_REQUEST_DEADLINE": str(DEADLINE),
        },
    )
    svc.start()
    yield Cdn(svc)
    svc.stop()


def unique(suffix: str = ".jpg") -> str:
    return f"/cdn-{uuid.uuid4().hex[:12]}{suffix}"


async def call(url: str, method: str = "GET") -> tuple[int, CIMultiDict[str], bytes, float]:
    """(status, headers, body, seconds) of one request, redirects not followed."""
    started = time.monotonic()
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as s,
        s.request(method, URL(url, encoded=True), allow_redirects=False) as r,
    ):
        body = await r.read()
        return r.status, CIMultiDict(r.headers), body, time.monotonic() - started


def code(body: bytes) -> str:
    return str(json.loads(body)["error"]["code"])


def surrogates(source: str, graph: str) -> tuple[str, str]:
    keys = [f"src-{source_digest(source)[:16]}", f"graph-{graph}"]
    return " ".join(keys), ",".join(keys)


# -- errors a CDN can cache correctly -----------------------------------------------------------


@pytest.mark.parametrize("kind", ["dead", "trickle"])
async def test_a_dead_or_slow_source_is_a_504_within_the_deadline(
    cdn: Cdn, origin: Origin, kind: str
) -> None:
    """A source that never answers (read timeout 10 s), or sends a byte a second (no read
    timeout ever fires): 504 source_timeout before the request deadline, where a 503 would be
    the frontend giving up; the repeat, and another graph of the source, answer it at once."""
    path = unique()
    route = {"delay": 30.0} if kind == "dead" else {"trickle": 1.0}
    src = origin.add(path, photo(), **route)  # type: ignore[arg-type]
    status, headers, body, took = await call(cdn.url("passthrough.jpg", src))
    print(f"\n{kind} source: {status} after {took:.2f} s (deadline {DEADLINE:g} s)")
    assert (status, code(body)) == (504, "source_timeout"), body
    assert headers["Cache-Control"] == "no-store"  # a CDN must not keep a transient error
    assert origin.hits(path) == 1  # the client's time allowed no second try
    error = json.loads(body)["error"]

    status, headers, body, took = await call(cdn.url("passthrough.jpg", src))
    print(f"the repeat: {status} after {took:.3f} s")
    assert (status, json.loads(body)["error"]) == (504, error)
    before = cdn.svc.metrics().get('imgserver_failure_hits_total{code="source_timeout"}', 0)
    status, _, body, _ = await call(cdn.url("resize.webp", src, width=40))
    assert (status, code(body)) == (504, "source_timeout")
    assert origin.hits(path) == 1  # remembered: nothing was fetched again
    after = cdn.svc.metrics()['imgserver_failure_hits_total{code="source_timeout"}']
    assert after == before + 1


async def test_a_source_404_or_410_is_a_cacheable_404(cdn: Cdn, origin: Origin) -> None:
    for upstream in (404, 410):
        path = unique()
        src = origin.add(path, b"gone", status=upstream, content_type="text/plain")
        status, headers, body, _ = await call(cdn.url("passthrough.jpg", src))
        assert (status, code(body)) == (404, "source_not_found"), body
        assert json.loads(body)["error"]["upstream_status"] == upstream
        assert headers["Cache-Control"] == "public, max-age=60"
        assert (headers["Surrogate-Key"], headers["Cache-Tag"]) == surrogates(src, "passthrough")
        assert origin.hits(path) == 1  # a 404 is not retried
        status, again, _, _ = await call(cdn.url("passthrough.jpg", src))
        assert (status, again["Cache-Control"]) == (404, "public, max-age=60")
        assert origin.hits(path) == 1


async def test_a_5xx_after_retries_is_a_502_never_kept(cdn: Cdn, origin: Origin) -> None:
    path = unique()
    src = origin.add(path, b"oops", status=500, content_type="text/plain")
    status, headers, body, _ = await call(cdn.url("passthrough.jpg", src))
    assert (status, code(body)) == (502, "source_unreachable"), body
    assert headers["Cache-Control"] == "no-store"
    tries = origin.hits(path)
    assert tries == 4  # IMGSERVER_JOB_MAX_ATTEMPTS: the backoff (0.05 s here) fits the deadline
    status, _, body, _ = await call(cdn.url("passthrough.jpg", src, width=50))
    assert (status, code(body)) == (502, "source_unreachable")
    assert origin.hits(path) == tries


async def test_an_undecodable_source_is_remembered_for_that_request(
    cdn: Cdn, origin: Origin
) -> None:
    """A truncated JPEG passes the sniff and the header check and fails in the decoder: a
    failure of that graph on that source, remembered under the request (its cache key), not
    under the source (another graph may still be asked for)."""
    path = unique()
    src = origin.add(path, photo(300, 300)[:1500])
    url = cdn.url("passthrough.jpg", src, width=20)
    status, headers, body, _ = await call(url)
    assert (status, code(body)) == (422, "undecodable_source"), body
    assert headers["Cache-Control"] == "public, max-age=60"
    status, _, body, _ = await call(url)
    assert (status, code(body), origin.hits(path)) == (422, "undecodable_source", 1)
    status, _, body, _ = await call(cdn.url("resize.png", src, width=20))
    assert (status, code(body), origin.hits(path)) == (422, "undecodable_source", 2)


async def test_a_prefetch_of_a_remembered_failure_answers_it(cdn: Cdn, origin: Origin) -> None:
    """POST of a source whose failure is remembered: the error itself, at once, as a GET (no
    task is made, nothing is queued)."""
    path = unique()
    src = origin.add(path, b"gone", status=404, content_type="text/plain")
    assert (await call(cdn.url("passthrough.jpg", src)))[0] == 404
    status, _, body, _ = await call(cdn.url("passthrough.webp", src, width=30), "POST")
    assert (status, code(body)) == (404, "source_not_found")
    assert origin.hits(path) == 1


async def test_a_purge_forgets_the_failure_and_names_its_surrogate_key(
    cdn: Cdn, origin: Origin
) -> None:
    path = unique()
    src = origin.add(path, b"gone", status=404, content_type="text/plain")
    assert (await call(cdn.url("passthrough.jpg", src)))[0] == 404
    origin.add(path, photo())  # the source is back: the memory still answers 404 ...
    assert (await call(cdn.url("passthrough.jpg", src)))[0] == 404
    hits = origin.hits(path)
    status, _, body, _ = await call(cdn.purge_url(src), "DELETE")
    assert status == 200
    purged = json.loads(body)
    assert purged["surrogate_keys"] == [f"src-{source_digest(src)[:16]}"]
    assert purged["deleted"] == 0  # no result was made from it
    # ... until it is purged: then the source is asked again
    status, headers, _, _ = await call(cdn.url("passthrough.jpg", src))
    assert (status, headers["X-Cache"], origin.hits(path)) == (301, "MISS", hits + 1)


async def test_the_admin_nocache_bypasses_the_failure_memory(cdn: Cdn, origin: Origin) -> None:
    path = unique()
    src = origin.add(path, b"gone", status=404, content_type="text/plain")
    assert (await call(cdn.url("passthrough.jpg", src)))[0] == 404
    origin.add(path, photo())
    status, _, _, _ = await call(cdn.url("passthrough.jpg", src, key="ops", _nocache=1))
    assert status == 301


# -- HEAD answers exactly as GET, without a body ------------------------------------------------

SAME = (
    "Location",
    "Cache-Control",
    "X-Cache",
    "Surrogate-Key",
    "Cache-Tag",
    "Content-Type",
    "ETag",
    "Vary",
    "Retry-After",
)


def assert_head_like_get(get: tuple, head: tuple) -> None:
    (g_status, g_headers, g_body, _), (h_status, h_headers, h_body, _) = get, head
    assert h_status == g_status and h_body == b""
    for name in SAME:
        assert h_headers.get(name) == g_headers.get(name), name
    assert h_headers["Content-Length"] == g_headers["Content-Length"] == str(len(g_body))


async def test_head_is_get_without_the_body(cdn: Cdn, origin: Origin) -> None:
    path = unique()
    src = origin.add(path, photo())
    # a HEAD miss computes like a GET miss
    head = await call(cdn.url("passthrough.webp", src, width=48), "HEAD")
    assert (head[0], head[1]["X-Cache"], head[2]) == (301, "MISS", b"")
    assert origin.hits(path) == 1
    # a hit
    get = await call(cdn.url("passthrough.webp", src, width=48))
    head = await call(cdn.url("passthrough.webp", src, width=48), "HEAD")
    assert get[1]["X-Cache"] == "HIT"
    assert_head_like_get(get, head)
    # errors: a request error, a source error (remembered), an auth error, an unknown graph
    gone = origin.add(unique(), b"gone", status=404, content_type="text/plain")
    for url in (
        cdn.url("passthrough.jpg", src, width="wide"),
        cdn.url("passthrough.jpg", gone),
        cdn.url("nosuchgraph.jpg", src),
        cdn.url("passthrough.jpg", src).replace("/graph/web/", "/graph/web/0"),
    ):
        get = await call(url)
        head = await call(url, "HEAD")
        assert get[0] >= 400
        assert_head_like_get(get, head)


async def test_head_in_proxy_delivery(start_service, origin: Origin) -> None:
    svc = start_service(IMGSERVER_WORKERS="1", IMGSERVER_DELIVERY="proxy")
    src = origin.add(unique(), photo())
    url = svc.url(f"/graph/passthrough.png?input={quote(src, safe='')}&width=40")
    head = await call(url, "HEAD")  # a miss, made by the HEAD
    get = await call(url)
    assert (head[0], head[1]["X-Cache"], get[1]["X-Cache"]) == (200, "MISS", "HIT")
    assert int(head[1]["Content-Length"]) == len(get[2]) > 0
    assert_head_like_get(get, await call(url, "HEAD"))
    assert head[1]["ETag"] == get[1]["ETag"]
    assert (get[1]["Surrogate-Key"], get[1]["Cache-Tag"]) == surrogates(src, "passthrough")


# -- surrogate keys ------------------------------------------------------------------------------


async def test_results_carry_surrogate_keys_and_a_purge_names_them(
    cdn: Cdn, origin: Origin
) -> None:
    src = origin.add(unique(), photo())
    expected = surrogates(src, "resize")
    for cache in ("MISS", "HIT"):
        status, headers, _, _ = await call(cdn.url("resize.jpg", src, width=30))
        assert (status, headers["X-Cache"]) == (301, cache)
        assert (headers["Surrogate-Key"], headers["Cache-Tag"]) == expected
    # a chained request is named by the source at the end of its chain: a purge drops it too
    inner = f"/graph/passthrough.png?input={quote(src, safe='')}"
    status, headers, _, _ = await call(cdn.url("resize.jpg", inner, width=20))
    assert status == 301
    assert headers["Surrogate-Key"] == f"src-{source_digest(src)[:16]} graph-resize"
    # a graph that draws its image has no source
    status, headers, _, _ = await call(cdn.url("canvas.png", None, width=8, height=8))
    assert (status, headers["Surrogate-Key"], headers["Cache-Tag"]) == (
        301,
        "graph-canvas",
        "graph-canvas",
    )

    status, _, body, _ = await call(cdn.purge_url(src), "DELETE")
    purged = json.loads(body)
    assert status == 200 and purged["deleted"] == 3  # resize, its chained twin, the inner one
    assert purged["surrogate_keys"] == [expected[0].split()[0]]


async def test_stale_directives_by_setting(start_service, origin: Origin) -> None:
    svc = start_service(
        IMGSERVER_WORKERS="1",
        IMGSERVER_STALE_WHILE_REVALIDATE="60",
        IMGSERVER_STALE_IF_ERROR="86400",
    )
    url = svc.url(f"/graph/passthrough.jpg?input={quote(origin.add(unique(), photo()), safe='')}")
    status, headers, _, _ = await call(url)
    assert status == 301
    assert headers["Cache-Control"] == (
        "public, max-age=3600, stale-while-revalidate=60, stale-if-error=86400"
    )
