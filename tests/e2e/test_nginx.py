"""nginx in front of the service (deploy/nginx/): a real nginx, run as a private instance on a
free loopback port with the config rendered from the template by deploy/nginx/render.py, before
the service in proxy delivery mode. The /graph/ cache (HIT on the second request, one entry per
Accept when the format is negotiated), event streams passed on unbuffered, uploads (and the cap
answered as JSON), and the web client in a real browser through it all.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from imgserver.uploads import MULTIPART_OVERHEAD

from ..conftest import REPO, Service, free_port
from ..images import jpeg, marked, png, texture
from ..servers import nginx_conf
from ..sse import FINAL, events, task_statuses

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
RENDER = REPO / "deploy" / "nginx" / "render.py"
CAP = 4_000_000  # IMGSERVER_MAX_SOURCE_BYTES of the service under test: a cap quick to cross
GRAPH_REQUESTS = re.compile(  # /graph/ requests the service answered, by status
    r'^imgserver_http_requests_total\{route="/graph/\{spec\}",.*\} (\S+)$', re.M
)


class Nginx:
    """A private nginx: its config, temp paths, cache, logs and pid all under ``root``."""

    def __init__(self, root: Path, upstreams: list[str], *render_args: str) -> None:
        self.root = root
        self.port = free_port()
        (root / "tmp").mkdir(parents=True, exist_ok=True)
        render = [
            sys.executable,
            str(RENDER),
            "--listen",
            f"127.0.0.1:{self.port}",
            "-o",
            str(root / "imgserver.conf"),
            *render_args,
        ]
        for upstream in upstreams:
            render += ["--upstream", upstream]
        subprocess.run(render, check=True, capture_output=True, text=True)
        (root / "nginx.conf").write_text(
            nginx_conf(
                root,
                f"""
            access_log {root}/access.log;
            include {root}/imgserver.conf;
        """,
            )
        )
        self.command = [
            NGINX,
            "-p",
            str(root),
            "-c",
            str(root / "nginx.conf"),
            "-e",
            str(root / "error.log"),
        ]
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def config(self) -> str:
        return (self.root / "imgserver.conf").read_text()

    def check(self) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self.command, "-t"], capture_output=True, text=True)

    def start(self) -> Nginx:
        if not Path(NGINX).exists():
            pytest.fail("nginx is not installed: run `make test` (system-deps.sh installs it)")
        checked = self.check()
        assert checked.returncode == 0, checked.stderr
        self.proc = subprocess.Popen(
            self.command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log()
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port)):
                return self
            time.sleep(0.02)
        raise RuntimeError(f"nginx did not start:\n{self.log()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None

    def log(self) -> str:
        path = self.root / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@pytest.fixture(scope="module")
def proxied(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """The service in proxy delivery mode (200 with the bytes, immutable, ETag)."""
    env = {"IMGSERVER_DELIVERY": "proxy", "IMGSERVER_MAX_SOURCE_BYTES": str(CAP)}
    svc = Service(tmp_path_factory.mktemp("proxied"), env)
    svc.start()
    yield svc
    svc.stop()


@pytest.fixture(scope="module")
def nginx(tmp_path_factory: pytest.TempPathFactory, proxied: Service) -> Iterator[Nginx]:
    root = tmp_path_factory.mktemp("nginx")
    n = Nginx(
        root,
        [f"127.0.0.1:{proxied.port}"],
        "--cache-dir",
        str(root / "cache"),
        "--cache-max-size",
        "100m",
        "--max-source-bytes",
        str(CAP),
    )
    n.start()
    yield n
    n.stop()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as s:
        yield s


async def upload(
    session: aiohttp.ClientSession, url: str, data: bytes, *, multipart: bool = True
) -> tuple[int, Any]:
    if multipart:
        form = aiohttp.FormData()
        form.add_field("image", data, filename="big.png", content_type="image/png")
        kw: dict[str, Any] = {"data": form}
    else:
        kw = {"data": data, "headers": {"Content-Type": "application/octet-stream"}}
    async with session.post(url, **kw) as r:
        assert r.content_type == "application/json", (r.status, await r.text())
        return r.status, await r.json()


async def fetch(session: aiohttp.ClientSession, url: str, accept: str = "*/*"):
    async with session.get(url, headers={"Accept": accept}) as r:
        return r.status, r.headers, await r.read()


def graph_requests(svc: Service) -> float:
    """How many /graph/ requests the service has answered (Service.metrics() cannot read this
    label: its value has braces)."""
    with urllib.request.urlopen(svc.url("/metrics"), timeout=5) as r:
        text = r.read().decode()
    return sum(float(n) for n in GRAPH_REQUESTS.findall(text))


async def uploaded(session: aiohttp.ClientSession, nginx: Nginx, width: int = 320) -> str:
    status, image = await upload(session, nginx.url("/images"), jpeg(texture(width, 200)))
    assert status == 201, image
    return image["id"]


# -- the template -----------------------------------------------------------------------------


def test_the_template_renders_valid_configs(tmp_path: Path) -> None:
    """With and without the cache, one or several frontends: `nginx -t` accepts them all."""
    for n, args in enumerate(([], ["--cache-dir", str(tmp_path / "cache")])):
        instance = Nginx(tmp_path / f"n{n}", ["127.0.0.1:8080", "127.0.0.1:8081"], *args)
        checked = instance.check()
        assert checked.returncode == 0, checked.stderr
        config = instance.config
        assert not re.search(r"@[A-Z_]+@", config)  # every placeholder filled
        assert ("proxy_cache imgserver;" in config) == bool(args)
        assert "server 127.0.0.1:8080;\n    server 127.0.0.1:8081;" in config
        # the upload cap is the service's: the image plus the multipart framing it allows
        assert f"client_max_body_size {50_000_000 + MULTIPART_OVERHEAD};" in config
    bad = subprocess.run(
        [sys.executable, str(RENDER), "--upstream", "x; include /etc/passwd"],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and "cannot go into the nginx config" in bad.stderr


# -- the /graph/ cache ------------------------------------------------------------------------


async def test_the_same_image_twice_is_an_nginx_cache_hit(
    nginx: Nginx, proxied: Service, session: aiohttp.ClientSession
) -> None:
    image_id = await uploaded(session, nginx)
    url = nginx.url(f"/graph/passthrough.webp?input=upload:{image_id}&width=120")
    before = graph_requests(proxied)

    status, first, body = await fetch(session, url)
    assert status == 200, body
    assert (first["X-Proxy-Cache"], first["X-Cache"]) == ("MISS", "MISS")
    assert first["Content-Type"] == "image/webp"
    assert first["Cache-Control"] == "public, max-age=31536000, immutable"

    status, second, again = await fetch(session, url)
    assert (status, second["X-Proxy-Cache"], again) == (200, "HIT", body)
    assert second["ETag"] == first["ETag"]
    assert graph_requests(proxied) - before == 1  # the service saw only the first

    # a conditional request is answered by nginx too
    async with session.get(url, headers={"If-None-Match": first["ETag"]}) as r:
        assert (r.status, r.headers["X-Proxy-Cache"]) == (304, "HIT")
    assert graph_requests(proxied) - before == 1


async def test_a_negotiated_format_is_cached_once_per_accept(
    nginx: Nginx, proxied: Service, session: aiohttp.ClientSession
) -> None:
    image_id = await uploaded(session, nginx, 300)
    negotiated = nginx.url(f"/graph/passthrough?input=upload:{image_id}&width=90")
    before = graph_requests(proxied)
    seen = {}
    for accept in ("image/webp,*/*", "image/jpeg"):
        status, headers, body = await fetch(session, negotiated, accept)
        assert (status, headers["X-Proxy-Cache"], headers["Vary"]) == (200, "MISS", "Accept")
        seen[accept] = (headers["Content-Type"], body)
    assert [t for t, _ in seen.values()] == ["image/webp", "image/jpeg"]
    for accept, (content_type, body) in seen.items():
        status, headers, again = await fetch(session, negotiated, accept)
        assert (headers["X-Proxy-Cache"], headers["Content-Type"], again) == (
            "HIT",
            content_type,
            body,
        )
    assert graph_requests(proxied) - before == 2

    # with an extension the format is fixed: Accept is not part of the key
    explicit = nginx.url(f"/graph/passthrough.png?input=upload:{image_id}&width=90")
    results = [await fetch(session, explicit, accept) for accept in ("image/webp", "image/jpeg")]
    assert [h["X-Proxy-Cache"] for _, h, _ in results] == ["MISS", "HIT"]
    assert graph_requests(proxied) - before == 3


async def test_errors_are_cached_as_the_service_says(
    nginx: Nginx, session: aiohttp.ClientSession
) -> None:
    """A 404 is kept for IMGSERVER_FAILURE_TTL (its Cache-Control); a 5xx never (no-store):
    nginx asks the service again, which answers from its failure memory."""
    url = nginx.url("/graph/passthrough.webp?input=upload:0123456789abcdef01234567&width=50")
    for cache in ("MISS", "HIT"):
        status, headers, body = await fetch(session, url)
        assert status == 404 and json.loads(body)["error"]["code"] == "not_found"
        assert (headers["X-Proxy-Cache"], headers["Cache-Control"]) == (
            cache,
            "public, max-age=60",
        )
    dead = f"http://127.0.0.1:{free_port()}/closed.jpg"
    url = nginx.url(f"/graph/passthrough.webp?input={dead}&width=50")
    for _ in range(2):
        status, headers, body = await fetch(session, url)
        assert status == 502 and json.loads(body)["error"]["code"] == "source_unreachable"
        assert (headers["X-Proxy-Cache"], headers["Cache-Control"]) == ("MISS", "no-store")


# -- event streams ----------------------------------------------------------------------------


async def test_events_pass_through_nginx_unbuffered(
    nginx: Nginx, session: aiohttp.ClientSession
) -> None:
    async with session.get(nginx.url("/events")) as stream:
        assert stream.status == 200
        assert stream.headers["Content-Type"].startswith("text/event-stream")
        # the first bytes arrive at once, not when a buffer fills
        assert await asyncio.wait_for(stream.content.readline(), 2) == b"retry: 2000\n"

        seen: list[tuple[float, str, dict[str, Any]]] = []
        wanted: list[str] = []  # the image uploaded below (other tests' tasks may end too)

        def done() -> bool:
            return any(
                n == "task" and d.get("image_id") in wanted and d["status"] in FINAL
                for _, n, d in seen
            )

        async def read() -> None:
            async for name, data in events(stream):
                seen.append((time.monotonic(), name, data))
                if done():
                    return

        reader = asyncio.create_task(read())
        started = time.monotonic()
        image_id = await uploaded(session, nginx)
        wanted.append(image_id)
        if not done():
            await asyncio.wait_for(reader, 15)
        reader.cancel()
    mine = [(t, n, d) for t, n, d in seen if image_id in (d.get("id"), d.get("image_id"))]
    assert mine, seen
    assert mine[0][0] - started < 2  # the new image was announced while the upload ran
    assert [d["status"] for _, n, d in mine if n == "task"][-1] == "completed"

    # a task's own stream: through to its final state, then nginx ends it too
    image_id = await uploaded(session, nginx)
    async with session.get(nginx.url(f"/images/{image_id}")) as r:
        task_id = (await r.json())["task_id"]
    async with session.get(nginx.url(f"/tasks/{task_id}/events")) as stream:
        statuses = await asyncio.wait_for(task_statuses(stream, task_id), 15)
    assert statuses[-1] == "completed"


# -- uploads ----------------------------------------------------------------------------------


async def test_uploads_through_nginx_and_the_cap(
    nginx: Nginx, session: aiohttp.ClientSession
) -> None:
    big = png(texture(1100, 1000), compression=0)  # an uncompressed PNG: 3.3 MB
    assert 3_000_000 < len(big) < CAP
    status, image = await upload(session, nginx.url("/images"), big)
    assert status == 201, image
    assert image["bytes"] == len(big)
    assert image["original_url"].startswith(nginx.url("/originals/"))  # Host kept, port too
    status, _, stored = await fetch(session, image["original_url"])
    assert (status, stored == big) == (200, True)

    # over nginx's limit: refused by nginx, in the API's JSON error shape
    status, error = await upload(
        session, nginx.url("/images"), b"\0" * (CAP + 200_000), multipart=False
    )
    assert status == 413
    assert error["error"]["code"] == "source_too_large" and error["error"]["limit"] == CAP
    # within nginx's limit (which allows for multipart framing) but over the image cap: the
    # service refuses it, in the same shape
    padded = png(marked(64, 64)) + b"\0" * CAP
    status, error = await upload(session, nginx.url("/images"), padded, multipart=False)
    assert (status, error["error"]["code"]) == (413, "source_too_large")


async def test_no_frontend_answering_is_json_503(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    n = Nginx(tmp_path / "nginx", [f"127.0.0.1:{free_port()}"]).start()
    try:
        status, headers, body = await fetch(session, n.url("/healthz"))
    finally:
        n.stop()
    assert (status, headers["Content-Type"], headers["Retry-After"]) == (
        503,
        "application/json",
        "5",
    )
    assert json.loads(body)["error"]["code"] == "unavailable"


# -- the web client, in a browser, through nginx ----------------------------------------------


def test_the_web_client_works_through_nginx(nginx: Nginx, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    from ..browser import launch

    photos = []
    for i, colour in enumerate(((200, 40, 40), (40, 160, 60), (40, 80, 200))):
        path = tmp_path / f"photo{i}.jpg"
        path.write_bytes(jpeg(marked(480, 320, base=colour)))
        photos.append(path)
    expect.set_options(timeout=30_000)
    with sync_playwright() as p:
        browser = launch(p)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.set_default_timeout(30_000)
            page.goto(nginx.url("/"))
            expect(page.locator("#live")).to_have_attribute("data-state", "live")
            page.set_input_files("#files", [str(f) for f in photos])
            for f in photos:
                done = page.locator(".card[data-status=completed]").filter(has_text=f.name)
                expect(done).to_have_count(1)
                expect(done.locator(".saving")).to_have_text(re.compile(r"% smaller$"))
            # the thumbnails come through nginx's cache (proxy mode: 200 with the bytes)
            thumbs = page.locator(".card .thumb img")
            for i in range(3):
                img = thumbs.nth(i)
                deadline = time.monotonic() + 20
                while not img.evaluate("i => i.complete && i.naturalWidth") and (
                    time.monotonic() < deadline
                ):
                    page.wait_for_timeout(50)
                assert img.evaluate("i => i.naturalWidth") == 320
        finally:
            browser.close()
