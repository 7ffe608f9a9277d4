"""Signed URLs, rotation, legacy keys, admin keys and quotas, enforced by the service."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from urllib.parse import quote

import aiohttp
import pytest
from yarl import URL

from imgserver.apikeys import ApiKey, KeyRing, parse_env

from ..conftest import REPO, Origin
from ..images import jpeg, texture

SECRET = "s3cret-s3cret-s3cret"
OTHER = "0ther-0ther-0ther-0ther"
KEYS = (
    f"main:{SECRET},next:{OTHER},old:{SECRET}-legacy:legacy,root:{SECRET}-admin:admin,"
    f"off:{SECRET}-off:disabled,metered:{SECRET}-metered:quota=1"
)


async def status_of(url: str, method: str = "GET") -> tuple[int, dict, dict]:
    async with (
        aiohttp.ClientSession() as s,
        s.request(method, URL(url, encoded=True), allow_redirects=False) as r,  # as written
    ):
        body = await r.read()
        data = json.loads(body) if r.content_type == "application/json" else {}
        return r.status, dict(r.headers), data


def signed(svc, ring: KeyRing, key: str, spec: str, query: str) -> str:
    return svc.url(ring.signed_path(key, spec, query))


@pytest.fixture(scope="module")
def keyed(tmp_path_factory):
    from ..servers import Service

    svc = Service(
        tmp_path_factory.mktemp("keyed"), {"IMGSERVER_KEYS": KEYS, "IMGSERVER_WORKERS": "1"}
    )
    svc.start()
    yield svc, KeyRing(parse_env(KEYS))
    svc.stop()


def image_query(origin: Origin) -> str:
    src = origin.add(f"/k-{uuid.uuid4().hex[:10]}.jpg", jpeg(texture(64, 48)))
    # encoded the way imgflo-url does (encodeURIComponent): the signature covers it as sent
    return f"input={quote(src, safe='')}&width=32"


async def test_unsigned_and_badly_signed_requests_are_refused(keyed, origin: Origin) -> None:
    svc, ring = keyed
    query = image_query(origin)
    status, _, body = await status_of(svc.url(f"/graph/passthrough.jpg?{query}"))
    assert (status, body["error"]["code"]) == (403, "signature_required")
    bad = signed(svc, ring, "main", "passthrough.jpg", query + "&height=10") + ""
    bad = bad.replace("&height=10", "")  # signature of another query
    status, _, body = await status_of(bad)
    assert (status, body["error"]["code"]) == (403, "bad_signature")
    status, _, body = await status_of(signed(svc, ring, "off", "passthrough.jpg", query))
    assert (status, body["error"]["code"]) == (403, "bad_signature")


async def test_rotation_and_legacy_keys_work(keyed, origin: Origin) -> None:
    svc, ring = keyed
    query = image_query(origin)
    for key in ("main", "next", "old"):
        status, headers, body = await status_of(signed(svc, ring, key, "passthrough.jpg", query))
        assert status == 301, body
    # all three keys got the same result: the key and signature never enter the cache key
    assert headers["X-Cache"] == "HIT"
    legacy = ring.keys["old"]
    hmac_sig = ApiKey("old", legacy.secret).sign("passthrough.jpg", query)
    status, _, body = await status_of(svc.url(f"/graph/old/{hmac_sig}/passthrough.jpg?{query}"))
    assert (status, body["error"]["code"]) == (403, "bad_signature")


async def test_nocache_needs_an_admin_key(keyed, origin: Origin) -> None:
    svc, ring = keyed
    query = image_query(origin)
    assert (await status_of(signed(svc, ring, "main", "passthrough.jpg", query)))[0] == 301
    status, _, body = await status_of(
        signed(svc, ring, "main", "passthrough.jpg", query + "&_nocache=1")
    )
    assert (status, body["error"]["code"]) == (403, "signature_required")
    status, headers, _ = await status_of(
        signed(svc, ring, "root", "passthrough.jpg", query + "&_nocache=1")
    )
    assert (status, headers["X-Cache"]) == (301, "MISS")  # computed again


async def test_quota_limits_misses_not_hits(keyed, origin: Origin) -> None:
    svc, ring = keyed
    first, second = image_query(origin), image_query(origin)
    status, headers, _ = await status_of(signed(svc, ring, "metered", "passthrough.jpg", first))
    assert (status, headers["X-Cache"]) == (301, "MISS")
    status, _, body = await status_of(signed(svc, ring, "metered", "passthrough.jpg", second))
    assert (status, body["error"]["code"]) == (403, "quota_exceeded")
    status, _, body = await status_of(
        signed(svc, ring, "metered", "passthrough.jpg", second), "POST"
    )
    assert (status, body["error"]["code"]) == (403, "quota_exceeded")
    status, headers, _ = await status_of(signed(svc, ring, "metered", "passthrough.jpg", first))
    assert (status, headers["X-Cache"]) == (301, "HIT")  # hits are still served


def sign_command(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "imgserver", "sign", *args],
        cwd=REPO,
        env={"IMGSERVER_KEYS": KEYS},
        capture_output=True,
        text=True,
    )


async def test_sign_command_output_is_accepted(keyed, origin: Origin) -> None:
    svc, _ = keyed
    url = svc.url(f"/graph/passthrough.webp?{image_query(origin)}")
    out = await asyncio.to_thread(sign_command, url, "--key", "next")
    assert out.returncode == 0, out.stderr
    out = out.stdout.strip()
    assert out.startswith(svc.url("/graph/next/"))
    status, headers, _ = await status_of(out)
    assert status == 301 and headers["X-Cache"] == "MISS"
    bad = await asyncio.to_thread(sign_command, url, "--key", "off")
    assert bad.returncode == 2 and "no such enabled API key" in bad.stderr


async def test_cache_purge_needs_an_admin_key(keyed, origin: Origin) -> None:
    svc, ring = keyed
    query = image_query(origin)
    source = query.split("&")[0]  # input=...
    for spec in ("passthrough.jpg", "passthrough.webp"):
        assert (await status_of(signed(svc, ring, "main", spec, query)))[0] == 301

    status, _, body = await status_of(svc.url(f"/cache?{source}"), "DELETE")
    assert (status, body["error"]["code"]) == (403, "signature_required")
    status, _, body = await status_of(svc.url(ring.signed_path("main", "cache", source)), "DELETE")
    assert (status, body["error"]["code"]) == (403, "signature_required")  # not an admin key
    forged = ring.signed_path("root", "cache", source).replace("/cache/root/", "/cache/root/0")
    status, _, body = await status_of(svc.url(forged), "DELETE")
    assert (status, body["error"]["code"]) == (403, "bad_signature")

    status, _, body = await status_of(svc.url(ring.signed_path("root", "cache", source)), "DELETE")
    assert status == 200 and body["deleted"] == 2
    status, headers, _ = await status_of(signed(svc, ring, "main", "passthrough.jpg", query))
    assert (status, headers["X-Cache"]) == (301, "MISS")  # made again

    extra = source + "&width=3"
    status, _, body = await status_of(svc.url(ring.signed_path("root", "cache", extra)), "DELETE")
    assert (status, body["error"]["code"]) == (400, "invalid_input")
