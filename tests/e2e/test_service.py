"""End to end over HTTP: the service as a real process, a real origin on loopback."""

from __future__ import annotations

import asyncio
import io
import time
import uuid

import aiohttp
import pytest
import pyvips
from multidict import CIMultiDict
from PIL import Image

from ..conftest import Origin, Service
from ..images import jpeg, texture


def photo(width: int = 640, height: int = 400) -> bytes:
    """An opaque RGB JPEG with some structure."""
    return jpeg(texture(width, height))


def cmyk_rotated_jpeg() -> bytes:
    """A 300x200 CMYK JPEG stored sideways with EXIF orientation 6: upright it is 200x300.

    Upright, the top 1/4 is red (C=0 M=255 Y=255 K=0) and the rest is blue.
    """
    w, h = 200, 300
    y = pyvips.Image.xyz(w, h)[1]
    top = y < h // 4
    c = top.ifthenelse(0, 255)
    m = pyvips.Image.black(w, h) + 255
    yy = top.ifthenelse(255, 0)
    k = pyvips.Image.black(w, h)
    upright = c.bandjoin([m, yy, k]).cast("uchar").copy(interpretation="cmyk")
    stored = upright.rot270()  # orientation 6 means "rotate 90 clockwise to display"
    stored = stored.copy()
    stored.set_type(pyvips.GValue.gint_type, "orientation", 6)
    return stored.jpegsave_buffer(Q=95)


def unique(prefix: str = "/img") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


async def get(url: str, **kw) -> tuple[int, CIMultiDict, bytes]:
    async with (
        aiohttp.ClientSession() as s,
        s.get(url, allow_redirects=False, **kw) as r,
    ):
        return r.status, CIMultiDict(r.headers), await r.read()


async def graph_url(service: Service, graph: str, source: str, **params) -> str:
    from urllib.parse import urlencode

    return service.url(f"/graph/{graph}?" + urlencode({"input": source, **params}))


async def test_miss_then_hit_passthrough_webp(service: Service, origin: Origin) -> None:
    src = origin.add(unique() + ".jpg", photo(1280, 800))
    url = await graph_url(service, "passthrough.webp", src, width=400)
    status, headers, _ = await get(url)
    assert status == 301
    assert headers["X-Cache"] == "MISS"
    location = headers["Location"]
    assert location.startswith(service.base + "/results/")

    status, headers, _ = await get(url)
    assert (status, headers["X-Cache"], headers["Location"]) == (301, "HIT", location)
    assert "Vary" not in headers  # the extension chose the format

    status, headers, body = await get(location)
    assert status == 200
    assert headers["Content-Type"] == "image/webp"
    assert "immutable" in headers["Cache-Control"]
    im = Image.open(io.BytesIO(body))
    assert (im.format, im.size) == ("WEBP", (400, 250))


async def test_cmyk_exif_rotated_comes_out_upright_srgb(service: Service, origin: Origin) -> None:
    src = origin.add(unique() + ".jpg", cmyk_rotated_jpeg())
    status, headers, _ = await get(await graph_url(service, "passthrough.png", src))
    assert status == 301
    _, headers, body = await get(headers["Location"])
    im = Image.open(io.BytesIO(body))
    assert im.mode == "RGB"
    assert im.size == (200, 300)
    r, g, b = im.getpixel((100, 10))  # top: red
    assert r > 180 and g < 90 and b < 90
    r, g, b = im.getpixel((100, 250))  # bottom: blue
    assert b > 120 and r < 90


async def test_negotiated_format_and_vary(service: Service, origin: Origin) -> None:
    src = origin.add(unique() + ".jpg", photo())
    url = await graph_url(service, "passthrough", src, width=100)
    status, headers, _ = await get(url, headers={"Accept": "image/webp,image/*;q=0.8"})
    assert status == 301 and headers["Vary"] == "Accept"
    _, h_webp, _ = await get(headers["Location"])
    assert h_webp["Content-Type"] == "image/webp"

    status, headers, _ = await get(url, headers={"Accept": "image/png,image/*"})
    assert status == 301 and headers["Vary"] == "Accept" and headers["X-Cache"] == "MISS"
    _, h_jpeg, _ = await get(headers["Location"])
    assert h_jpeg["Content-Type"] == "image/jpeg"  # opaque, no WebP: JPEG


async def test_jpeg_xl_by_extension_not_negotiated_by_default(
    service: Service, origin: Origin
) -> None:
    src = origin.add(unique() + ".jpg", photo())
    url = await graph_url(service, "passthrough", src, width=100)
    safari = "image/webp,image/avif,image/jxl,image/heic,image/*,*/*;q=0.8"
    status, headers, _ = await get(url, headers={"Accept": safari})
    assert status == 301 and headers["Vary"] == "Accept"
    _, h_webp, _ = await get(headers["Location"])
    assert h_webp["Content-Type"] == "image/webp"  # the contract: WebP when accepted
    status, headers, _ = await get(await graph_url(service, "passthrough.jxl", src, width=80))
    assert status == 301 and "Vary" not in headers  # an explicit extension: not negotiated
    _, h_ext, _ = await get(headers["Location"])
    assert h_ext["Content-Type"] == "image/jxl"


async def test_param_order_and_defaults_share_one_result(service: Service, origin: Origin) -> None:
    src = origin.add(unique() + ".jpg", photo())
    from urllib.parse import quote

    base = service.url("/graph/gaussianblur.jpg?input=" + quote(src, safe=""))
    _, first, _ = await get(base + "&width=120&std-dev-x=3")
    _, second, _ = await get(base + "&std-dev-x=3.0&width=120&quality=80&std-dev-y=1.5")
    assert first["X-Cache"] == "MISS" and second["X-Cache"] == "HIT"
    assert first["Location"] == second["Location"]
    assert origin.hits(src.split(str(origin.port))[1]) == 1


async def test_single_flight_runs_one_job(service: Service, origin: Origin) -> None:
    path = unique() + ".jpg"
    src = origin.add(path, photo(), body_delay=0.8)  # slow enough that all requests overlap
    url = await graph_url(service, "passthrough.jpg", src, width=50)
    before = service.metrics()

    async with aiohttp.ClientSession() as s:

        async def one() -> tuple[int, str]:
            async with s.get(url, allow_redirects=False) as r:
                return r.status, r.headers["Location"]

        answers = await asyncio.gather(*(one() for _ in range(12)))
    after = service.metrics()

    assert {a for a in answers} == {(301, answers[0][1])}
    assert origin.hits(path) == 1

    def delta(name: str) -> float:
        return after.get(name, 0) - before.get(name, 0)

    assert delta('imgserver_jobs_published_total{queue="urgent"}') == 1
    assert delta('imgserver_jobs_total{outcome="ok",role="urgent"}') == 1
    assert delta("imgserver_singleflight_joins_total") == 11


async def test_prefetch_runs_in_background_to_completion(service: Service, origin: Origin) -> None:
    src = origin.add(unique() + ".jpg", photo())
    url = await graph_url(service, "desaturate.png", src, width=64)
    async with aiohttp.ClientSession() as s:
        async with s.post(url, allow_redirects=False) as r:
            assert r.status == 202
            future_location = r.headers["Location"]
            task = (await r.json())["task"]
        assert task["status"] in ("pending", "processing", "completed")
        assert task["status_url"] == f"/tasks/{task['id']}/status"

        deadline = time.monotonic() + 30
        status = task["status"]
        while status not in ("completed", "failed") and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            async with s.get(service.url(task["status_url"])) as r:
                body = await r.json()
                assert body["id"] == task["id"]
                status = body["status"]
        assert status == "completed"

        async with s.get(service.url(f"/tasks/{task['id']}")) as r:
            full = await r.json()
        assert full["result_url"] == future_location
        assert full["graph"] == "desaturate" and full["params"]["width"] == 64
        assert set(full["timings"]) >= {"queued", "started", "fetched", "processed", "stored"}

        async with s.get(url, allow_redirects=False) as r:
            assert (r.status, r.headers["X-Cache"]) == (301, "HIT")
            assert r.headers["Location"] == future_location
        async with s.post(url, allow_redirects=False) as r:  # POST of a cached result: 301
            assert (r.status, r.headers["X-Cache"]) == (301, "HIT")
        async with s.get(future_location) as r:
            im = Image.open(io.BytesIO(await r.read()))
            assert im.width == 64 and im.mode in ("L", "LA")


async def test_failed_prefetch_records_the_error(service: Service, origin: Origin) -> None:
    src = origin.add(unique() + ".html", b"<!doctype html><p>hi", content_type="image/jpeg")
    async with aiohttp.ClientSession() as s:
        async with s.post(await graph_url(service, "passthrough.jpg", src)) as r:
            task = (await r.json())["task"]
        for _ in range(200):
            async with s.get(service.url(f"/tasks/{task['id']}")) as r:
                full = await r.json()
            if full["status"] == "failed":
                break
            await asyncio.sleep(0.05)
    assert full["status"] == "failed"
    assert full["error"]["code"] == "unsupported_source"
    assert full["result_url"] is None


def _png_header(width: int, height: int) -> bytes:
    import struct
    import zlib

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return (
        b"\x89PNG\r\n\x1a\n"
        + struct.pack(">I", len(ihdr))
        + chunk
        + struct.pack(">I", zlib.crc32(chunk))
    )


ERROR_CASES = [
    # (name, path-and-query builder, expected status, expected code)
    ("unknown graph", lambda src: "/graph/nosuchgraph.jpg?input=" + src, 404, "unknown_graph"),
    ("bad ext", lambda src: "/graph/passthrough.bmp?input=" + src, 415, "unsupported_format"),
    ("no input", lambda src: "/graph/passthrough.jpg?width=10", 400, "invalid_input"),
    ("relative input", lambda src: "/graph/passthrough.jpg?input=demo/a.jpg", 400, "invalid_input"),
    ("ftp input", lambda src: "/graph/passthrough.jpg?input=ftp://x/a.jpg", 400, "invalid_input"),
    ("bad int", lambda src: f"/graph/passthrough.jpg?input={src}&width=wide", 400, "invalid_param"),
    ("range", lambda src: f"/graph/passthrough.jpg?input={src}&width=0", 400, "invalid_param"),
    ("unknown", lambda src: f"/graph/passthrough.jpg?input={src}&foo=1", 400, "invalid_param"),
    ("reserved", lambda src: f"/graph/passthrough.jpg?input={src}&_debug=1", 400, "invalid_param"),
    ("bad enum", lambda src: f"/graph/resize.jpg?input={src}&mode=zoom", 400, "invalid_param"),
    ("nocache", lambda src: f"/graph/noop?input={src}&_nocache=1", 403, "signature_required"),
    ("no task", lambda src: "/tasks/0000000000000000000000", 404, "not_found"),
    ("no route", lambda src: "/nothing/here", 404, "not_found"),
    ("no result", lambda src: "/results/" + "0" * 64, 404, "not_found"),
]


@pytest.mark.parametrize("name,path,status,code", ERROR_CASES, ids=[c[0] for c in ERROR_CASES])
async def test_request_errors(service: Service, origin: Origin, name, path, status, code) -> None:
    src = origin.add("/ok.jpg", photo(64, 64))
    got, headers, body = await get(service.url(path(src)))
    assert got == status, body
    assert headers["Content-Type"].startswith("application/json")
    import json

    error = json.loads(body)["error"]
    assert error["code"] == code
    assert error["message"]
    if code == "invalid_param":
        assert "width" in error["params"] and "type" in error["params"]["width"]


async def test_method_not_allowed_is_json(service: Service) -> None:
    async with aiohttp.ClientSession() as s, s.delete(service.url("/graphs")) as r:
        assert r.status == 405
        assert (await r.json())["error"]["code"] == "method_not_allowed"


SOURCE_CASES = [
    (
        "html",
        dict(body=b"<!DOCTYPE html><html>nope</html>", content_type="image/png"),
        415,
        "unsupported_source",
    ),
    ("empty", dict(body=b""), 415, "unsupported_source"),
    ("truncated jpeg", dict(body=None), 422, "undecodable_source"),
    (
        "huge png header",
        dict(body=_png_header(100_000, 100_000), content_type="image/png"),
        422,
        "too_many_pixels",
    ),
    ("upstream 404", dict(body=b"gone", status=404), 404, "source_not_found"),
    ("upstream 410", dict(body=b"gone", status=410), 404, "source_not_found"),
    ("upstream 403", dict(body=b"no", status=403), 502, "source_unreachable"),
    ("upstream 500", dict(body=b"oops", status=500), 502, "source_unreachable"),
]


@pytest.mark.parametrize("name,route,status,code", SOURCE_CASES, ids=[c[0] for c in SOURCE_CASES])
async def test_source_errors(service: Service, origin: Origin, name, route, status, code) -> None:
    route = dict(route)
    if route["body"] is None:
        route["body"] = photo(300, 300)[:1500]
    src = origin.add(unique(), **route)
    got, _, body = await get(await graph_url(service, "passthrough.jpg", src, width=20))
    assert got == status, body
    import json

    assert json.loads(body)["error"]["code"] == code
    # the service is still healthy afterwards and still serves good images
    good = origin.add(unique(), photo(64, 64))
    assert (await get(await graph_url(service, "passthrough.jpg", good)))[0] == 301


async def test_missing_content_type_does_not_matter(service: Service, origin: Origin) -> None:
    src = origin.add(unique(), photo(64, 64), content_type=None)
    status, _, body = await get(await graph_url(service, "passthrough.png", src))
    assert status == 301, body


async def test_unreachable_source(service: Service) -> None:
    from ..conftest import free_port

    src = f"http://127.0.0.1:{free_port()}/closed.jpg"
    status, _, body = await get(await graph_url(service, "passthrough.jpg", src))
    assert status == 502 and b"source_unreachable" in body


async def test_catalogue_endpoints(service: Service) -> None:
    status, _, body = await get(service.url("/graphs"))
    import json

    graphs = json.loads(body)["graphs"]
    expected = {"passthrough", "noop", "crop", "gaussianblur", "desaturate", "resize", "compress"}
    assert status == 200 and expected <= set(graphs)
    for g in graphs.values():
        assert {"width", "height"} <= set(g["params"])
        for p in g["params"].values():
            assert set(p) == {"type", "default", "minimum", "maximum", "values", "description"}
    status, _, body = await get(service.url("/graphs/crop"))
    crop = json.loads(body)
    assert crop["name"] == "crop" and crop["runtime"] == "vips"
    assert crop["params"]["cropwidth"]["type"] == "int"
    status, _, body = await get(service.url("/graphs/nope"))
    assert status == 404 and json.loads(body)["error"]["code"] == "unknown_graph"


async def test_health_ready_metrics_version(service: Service) -> None:
    import json

    assert (await get(service.url("/healthz")))[0] == 200
    status, _, body = await get(service.url("/readyz"))
    assert status == 200 and json.loads(body)["status"] == "ready"
    status, headers, body = await get(service.url("/metrics"))
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    assert b"imgserver_http_requests_total" in body
    status, _, body = await get(service.url("/version"))
    assert status == 200 and json.loads(body)["libraries"]["pyvips-binary"]


# -- services with their own settings --------------------------------------------------------


async def test_limits_deadline_and_timeouts(start_service, origin: Origin) -> None:
    svc = start_service(
        IMGSERVER_WORKERS="1",
        IMGSERVER_MAX_SOURCE_BYTES="200000",
        IMGSERVER_FETCH_READ_TIMEOUT="1.5",
        IMGSERVER_REQUEST_DEADLINE="0.6",
    )
    import json

    big = origin.add(unique(), b"\xff\xd8\xff" + b"\0" * 300_000)
    status, _, body = await get(await graph_url(svc, "passthrough.jpg", big))
    assert (status, json.loads(body)["error"]["code"]) == (413, "source_too_large")

    endless = origin.add(unique(), endless=True)  # no Content-Length: the cap acts while streaming
    status, _, body = await get(await graph_url(svc, "passthrough.jpg", endless))
    assert (status, json.loads(body)["error"]["code"]) == (413, "source_too_large")

    stalled = origin.add(unique(), photo(), delay=3.0)
    status, headers, body = await get(await graph_url(svc, "passthrough.jpg", stalled))
    # the source is too slow for the request deadline (0.6 s): 504 within it, not 503
    assert (status, json.loads(body)["error"]["code"]) == (504, "source_timeout")
    assert headers["Cache-Control"] == "no-store"

    # processing slower than the deadline: 503 timeout, and the job goes on
    src = origin.add(unique(), photo(640, 400))  # under the byte cap set here
    url = await graph_url(svc, "enhancelowres.jpg", src, iterations=32)  # about a second
    status, headers, body = await get(url)
    assert status == 503
    assert json.loads(body)["error"]["code"] == "timeout"
    assert int(headers["Retry-After"]) > 0 and headers["Cache-Control"] == "no-store"
    for _ in range(300):  # the job kept running: soon the result is there
        await asyncio.sleep(0.1)
        status, headers, _ = await get(url)
        if status == 301:
            break
    assert status == 301


async def test_source_timeout(start_service, origin: Origin) -> None:
    svc = start_service(IMGSERVER_WORKERS="1", IMGSERVER_FETCH_READ_TIMEOUT="0.5")
    slow = origin.add(unique(), photo(), delay=2.0)
    status, _, body = await get(await graph_url(svc, "passthrough.jpg", slow))
    import json

    assert (status, json.loads(body)["error"]["code"]) == (504, "source_timeout")


async def test_private_sources_refused_by_default(start_service, origin: Origin) -> None:
    svc = start_service(IMGSERVER_WORKERS="1", IMGSERVER_ALLOW_PRIVATE_SOURCES="0")
    import json

    src = origin.add(unique(), photo(64, 64))
    for source in (src, src.replace("127.0.0.1", "localhost")):
        status, _, body = await get(await graph_url(svc, "passthrough.jpg", source))
        assert (status, json.loads(body)["error"]["code"]) == (403, "source_not_allowed")
    assert origin.hits(src.split(str(origin.port))[1]) == 0


async def test_results_survive_a_restart(start_service, origin: Origin, tmp_path) -> None:
    data = tmp_path / "persist"
    src = origin.add(unique(), photo())
    svc = start_service(data_dir=data, IMGSERVER_WORKERS="1")
    url_path = (await graph_url(svc, "passthrough.webp", src, width=90)).removeprefix(svc.base)
    status, headers, _ = await get(svc.url(url_path))
    assert (status, headers["X-Cache"]) == (301, "MISS")
    svc.stop()

    again = start_service(data_dir=data, IMGSERVER_WORKERS="1")
    status, headers, _ = await get(again.url(url_path))
    assert (status, headers["X-Cache"]) == (301, "HIT")
    assert (await get(headers["Location"]))[0] == 200


async def test_proxy_delivery(start_service, origin: Origin) -> None:
    svc = start_service(IMGSERVER_WORKERS="1", IMGSERVER_DELIVERY="proxy")
    src = origin.add(unique(), photo())
    url = await graph_url(svc, "passthrough", src, width=80)
    accept = {"Accept": "image/webp"}
    status, headers, body = await get(url, headers=accept)
    assert status == 200 and headers["X-Cache"] == "MISS"
    assert headers["Content-Type"] == "image/webp"
    assert headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert headers["Vary"] == "Accept"
    assert int(headers["Content-Length"]) == len(body) > 0
    etag = headers["ETag"]
    status, headers, body = await get(url, headers=accept)
    assert (status, headers["X-Cache"], headers["ETag"]) == (200, "HIT", etag)
    status, headers, body = await get(url, headers={**accept, "If-None-Match": etag})
    assert status == 304 and body == b""


async def test_broken_graph_stops_startup(tmp_path) -> None:
    import shutil

    from ..conftest import REPO, Service

    graphs = tmp_path / "graphs"
    shutil.copytree(REPO / "graphs", graphs)
    (graphs / "broken.json").write_text(
        '{"description": "x", "runtime": "vips", "nodes": {"a": {"op": "sharpen"}}, "output": "a"}'
    )
    svc = Service(tmp_path / "data", {"IMGSERVER_GRAPHS_DIR": str(graphs)})
    with pytest.raises(RuntimeError) as err:
        svc.start(timeout=20)
    assert "broken.json" in str(err.value) and "unknown op 'sharpen'" in str(err.value)


@pytest.mark.parametrize(
    "upstream,tries,status,code",
    [
        (503, 4, 502, "source_unreachable"),
        (429, 4, 502, "source_unreachable"),
        (404, 1, 404, "source_not_found"),
        (403, 1, 502, "source_unreachable"),
    ],
)
async def test_transient_source_failures_are_retried(
    service: Service, origin: Origin, upstream, tries, status, code
) -> None:
    path = unique()
    src = origin.add(path, b"busy", status=upstream)
    got, _, body = await get(await graph_url(service, "passthrough.jpg", src))
    assert got == status and code.encode() in body
    assert origin.hits(path) == tries  # IMGSERVER_JOB_MAX_ATTEMPTS defaults to 4


@pytest.mark.parametrize("enabled", [False, True])
def test_access_log_only_when_enabled(tmp_path, enabled: bool) -> None:
    """IMGSERVER_ACCESS_LOG=1 logs a line per request; by default nothing is logged per request,
    even at log level INFO."""
    import urllib.request

    env = {"IMGSERVER_LOG_LEVEL": "INFO", "IMGSERVER_ACCESS_LOG": "1" if enabled else "0"}
    svc = Service(tmp_path, env).start()
    try:
        marker = uuid.uuid4().hex
        with urllib.request.urlopen(svc.url(f"/healthz?probe={marker}"), timeout=5) as r:
            assert r.status == 200
        deadline = time.monotonic() + 5
        while enabled and marker not in svc.log() and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        svc.stop()
    log = svc.log()
    assert (f"GET /healthz?probe={marker}" in log) is enabled, log
