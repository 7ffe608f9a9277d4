"""Uploads, images, tasks and live updates end to end over HTTP: the service as a real process."""

from __future__ import annotations

import asyncio
import io
import struct
import time
import zlib
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from multidict import CIMultiDict
from PIL import Image as PILImage

from ..conftest import Origin, Service
from ..images import alpha_png, animation, jpeg, pages, texture
from ..sse import FINAL, events, task_statuses

API_FIELDS = {
    "id",
    "original_url",
    "compressed_url",
    "task_id",
    "format",
    "width",
    "height",
    "bytes",
    "compressed_bytes",
    "created_at",
    "updated_at",
}


def photo(width: int = 640, height: int = 400) -> bytes:
    return jpeg(texture(width, height))


def png_header(width: int, height: int) -> bytes:
    """Only a PNG signature and an IHDR chunk: a pixel bomb announces itself here."""
    ihdr = b"IHDR" + struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + ihdr + struct.pack(">I", zlib.crc32(ihdr))


async def upload(
    svc: Service,
    data: bytes | None,
    query: str = "",
    *,
    raw: bool = False,
    field: str = "image",
    content_type: str = "application/octet-stream",
) -> tuple[int, CIMultiDict, Any]:
    """POST /images (multipart field ``field``, or the raw body); the answer is always JSON."""
    kw: dict[str, Any] = {}
    if raw:
        kw = {"data": data, "headers": {"Content-Type": content_type}}
    elif data is not None:
        form = aiohttp.FormData()
        form.add_field(field, data, filename="upload.bin", content_type=content_type)
        kw = {"data": form}
    async with aiohttp.ClientSession() as s, s.post(svc.url("/images" + query), **kw) as r:
        assert r.content_type == "application/json", await r.text()
        return r.status, CIMultiDict(r.headers), await r.json()


async def get_json(url: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as s, s.get(url) as r:
        assert r.content_type == "application/json", await r.text()
        return r.status, await r.json()


async def get_bytes(url: str) -> tuple[int, str, bytes]:
    async with aiohttp.ClientSession() as s, s.get(url) as r:
        return r.status, r.headers.get("Content-Type", ""), await r.read()


async def wait_task(svc: Service, task_id: str, wait: float = 30) -> dict[str, Any]:
    """Poll the task until it is final."""
    deadline = time.monotonic() + wait
    while True:
        status, task = await get_json(svc.url(f"/tasks/{task_id}"))
        assert status == 200, task
        if task["status"] in FINAL or time.monotonic() > deadline:
            return task
        await asyncio.sleep(0.05)


async def wait_image(svc: Service, image_id: str, wait: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + wait
    while True:
        status, image = await get_json(svc.url(f"/images/{image_id}"))
        assert status == 200, image
        if image["status"] in FINAL or time.monotonic() > deadline:
            return image
        await asyncio.sleep(0.05)


async def occupy_background(svc: Service, origin: Origin, seconds: float) -> None:
    """Keep the background worker busy for a while (a prefetch of a slow source): a task
    queued next stays pending that long. (The test services run 2 image processes, so the
    background role takes one job at a time.)"""
    slow = origin.add(f"/slow-{time.monotonic_ns()}.jpg", photo(64, 64), body_delay=seconds)
    url = svc.url("/graph/passthrough.jpg?input=" + quote(slow, safe=""))
    async with aiohttp.ClientSession() as s, s.post(url) as r:
        assert r.status == 202, await r.text()
    for _ in range(100):  # until the worker is on it
        if origin.hits(slow.split(str(origin.port))[1]):
            return
        await asyncio.sleep(0.02)


# -- uploading --------------------------------------------------------------------------------


async def test_multipart_upload_is_compressed(service: Service) -> None:
    original = photo(640, 400)
    status, headers, image = await upload(service, original, content_type="image/jpeg")
    assert status == 201, image
    assert set(image) >= API_FIELDS
    assert headers["Location"] == f"/images/{image['id']}"
    assert (image["format"], image["width"], image["height"]) == ("jpeg", 640, 400)
    assert image["bytes"] == len(original)
    assert image["compressed_url"] is None and image["compressed_bytes"] is None

    task = await wait_task(service, image["task_id"])
    assert task["status"] == "completed", task
    assert (task["image_id"], task["graph"], task["input"], task["format"]) == (
        image["id"],
        "compress",
        f"upload:{image['id']}",
        "jpeg",
    )

    status, done = await get_json(service.url(f"/images/{image['id']}"))
    assert status == 200
    assert done["status"] == "completed"
    assert done["compressed_url"] == task["result_url"]
    assert done["created_at"] == image["created_at"] and done["updated_at"] > image["updated_at"]
    status, content_type, compressed = await get_bytes(done["compressed_url"])
    assert (status, content_type) == (200, "image/jpeg")
    assert len(compressed) == done["compressed_bytes"] <= len(original)
    assert PILImage.open(io.BytesIO(compressed)).size == (640, 400)
    status, content_type, stored = await get_bytes(done["original_url"])
    assert (status, content_type, stored) == (200, "image/jpeg", original)


async def test_raw_upload_ignores_content_type(service: Service) -> None:
    original = alpha_png(120, 80)
    status, _, image = await upload(service, original, raw=True, content_type="text/plain")
    assert status == 201, image
    assert (image["format"], image["width"], image["height"]) == ("png", 120, 80)
    done = await wait_image(service, image["id"])
    assert done["status"] == "completed"
    status, content_type, compressed = await get_bytes(done["compressed_url"])
    assert content_type == "image/png" and len(compressed) <= len(original)


async def test_upload_with_another_graph_params_and_format(service: Service) -> None:
    status, _, image = await upload(
        service, photo(400, 200), "?graph=resize&width=100&format=webp&quality=60"
    )
    assert status == 201, image
    task = await wait_task(service, image["task_id"])
    assert task["status"] == "completed", task
    assert (task["graph"], task["format"]) == ("resize", "webp")
    assert task["params"]["width"] == 100 and task["params"]["quality"] == 60
    _, content_type, body = await get_bytes(task["result_url"])
    assert content_type == "image/webp"
    assert PILImage.open(io.BytesIO(body)).size == (100, 50)


async def test_an_upload_is_an_input_for_any_graph(service: Service) -> None:
    _, _, image = await upload(service, photo(300, 300))
    url = service.url(f"/graph/desaturate.png?input=upload:{image['id']}&width=30")
    async with aiohttp.ClientSession() as s, s.get(url, allow_redirects=False) as r:
        assert r.status == 301, await r.text()
        location = r.headers["Location"]
    status, content_type, body = await get_bytes(location)
    assert (status, content_type) == (200, "image/png")
    assert PILImage.open(io.BytesIO(body)).size == (30, 30)
    # a task of another graph on the upload leaves the image's own record alone
    done = await wait_image(service, image["id"])
    assert done["compressed_url"] != location


async def test_tiff_size_comes_from_the_header(service: Service) -> None:
    original = bytes(texture(90, 60).tiffsave_buffer())
    status, _, image = await upload(service, original)
    assert status == 201, image
    assert (image["format"], image["width"], image["height"]) == ("tiff", 90, 60)
    done = await wait_image(service, image["id"])
    assert done["status"] == "completed", done
    assert (done["width"], done["height"]) == (90, 60)
    assert (await get_bytes(done["compressed_url"]))[1] == "image/jpeg"  # TIFF: JPEG by default


async def test_animation_cut_at_the_frame_limit(start_service) -> None:
    svc = start_service(IMGSERVER_MAX_FRAMES="2")
    status, _, image = await upload(svc, animation(), "?format=gif")
    assert status == 201, image
    task = await wait_task(svc, image["task_id"])
    assert task["status"] == "completed_with_errors", task
    assert any("frames" in w for w in task["warnings"])
    done = await wait_image(svc, image["id"])
    assert done["status"] == "completed_with_errors"
    assert done["warnings"] == task["warnings"]
    _, content_type, body = await get_bytes(done["compressed_url"])
    assert content_type == "image/gif" and pages(body)[2] == 2


# -- listing ----------------------------------------------------------------------------------


async def test_list_newest_first_with_cursor_and_restart(start_service, tmp_path) -> None:
    data = tmp_path / "kept"
    svc = start_service(data_dir=data)
    ids = []
    for i in range(5):
        status, _, image = await upload(svc, photo(40 + i, 40))
        assert status == 201, image
        ids.append(image["id"])
    for image_id in ids:
        await wait_image(svc, image_id)

    async def all_pages(service: Service) -> list[list[dict[str, Any]]]:
        got, cursor = [], None
        while True:
            query = "?limit=2" + (f"&cursor={cursor}" if cursor else "")
            status, page = await get_json(service.url("/images" + query))
            assert status == 200, page
            got.append(page["images"])
            cursor = page["next_cursor"]
            if cursor is None:
                return got

    paged = await all_pages(svc)
    assert [len(p) for p in paged] == [2, 2, 1]
    assert [i["id"] for p in paged for i in p] == ids[::-1]
    assert all(i["status"] == "completed" and i["compressed_url"] for p in paged for i in p)
    status, default = await get_json(svc.url("/images"))
    assert [i["id"] for i in default["images"]] == ids[::-1] and default["next_cursor"] is None

    svc.stop()  # records survive a restart
    again = start_service(data_dir=data)
    repaged = await all_pages(again)

    def strip(pages, base):
        return [
            [{k: v.replace(base, "") if isinstance(v, str) else v for k, v in i.items()} for i in p]
            for p in pages
        ]

    assert strip(repaged, again.base) == strip(paged, svc.base)
    assert (await get_bytes(repaged[0][0]["compressed_url"]))[0] == 200


# -- errors -----------------------------------------------------------------------------------

UPLOAD_ERRORS = [
    # (name, body, query, raw, status, code)
    ("no body", None, "", True, 415, "unsupported_source"),
    ("empty body", b"", "", True, 415, "unsupported_source"),
    ("empty field", b"", "", False, 415, "unsupported_source"),
    (
        "html",
        b"<!DOCTYPE html><html><body>not an image</body></html>" * 3,
        "",
        True,
        415,
        "unsupported_source",
    ),
    ("html field", b"<html><body>" + b"x" * 100, "", False, 415, "unsupported_source"),
    ("pixel bomb", png_header(100_000, 100_000), "", True, 422, "too_many_pixels"),
    ("unknown graph", b"x", "?graph=nosuchgraph", True, 404, "unknown_graph"),
    ("bad graph name", b"x", "?graph=../etc", True, 404, "unknown_graph"),
    ("out of range", b"x", "?quality=500", True, 400, "invalid_param"),
    ("unknown param", b"x", "?colour=red", True, 400, "invalid_param"),
    ("wrong type", b"x", "?graph=resize&width=wide", True, 400, "invalid_param"),
    ("repeated", b"x", "?quality=1&quality=2", True, 400, "invalid_param"),
    ("input given", b"x", "?input=http://example.com/a.jpg", True, 400, "invalid_param"),
    ("nocache", b"x", "?_nocache=1", True, 400, "invalid_param"),
    ("bad format", b"x", "?format=bmp", True, 415, "unsupported_format"),
]


@pytest.mark.parametrize(
    "name,body,query,raw,status,code", UPLOAD_ERRORS, ids=[c[0] for c in UPLOAD_ERRORS]
)
async def test_upload_errors(service: Service, name, body, query, raw, status, code) -> None:
    got, _, answer = await upload(service, body, query, raw=raw)
    assert got == status, answer
    assert answer["error"]["code"] == code and answer["error"]["message"]
    if code == "invalid_param" and "graph" not in query:
        assert "quality" in answer["error"]["params"]


async def test_multipart_without_an_image_field(service: Service) -> None:
    status, _, answer = await upload(service, photo(32, 32), field="file")
    assert (status, answer["error"]["code"]) == (400, "invalid_input")
    assert "'image'" in answer["error"]["message"]


READ_ERRORS = [
    ("/images?limit=0", 400, "invalid_param"),
    ("/images?limit=101", 400, "invalid_param"),
    ("/images?limit=ten", 400, "invalid_param"),
    ("/images?limit=-1", 400, "invalid_param"),
    ("/images?cursor=not-a-cursor", 400, "invalid_param"),
    ("/images?limit=5&limit=6", 400, "invalid_param"),
    ("/images?page=2", 400, "invalid_param"),
    ("/images/0123456789abcdef01234567", 404, "not_found"),
    ("/images/nope", 404, "not_found"),
    ("/tasks/nope", 404, "not_found"),
    ("/tasks/nope/events", 404, "not_found"),
]


@pytest.mark.parametrize("path,status,code", READ_ERRORS, ids=[c[0] for c in READ_ERRORS])
async def test_read_errors(service: Service, path: str, status: int, code: str) -> None:
    got, answer = await get_json(service.url(path))
    assert got == status, answer
    assert answer["error"]["code"] == code and answer["error"]["message"]


async def test_too_large(start_service) -> None:
    svc = start_service(IMGSERVER_MAX_SOURCE_BYTES="200000")
    big = b"\xff\xd8\xff" + b"\0" * 300_000
    for raw in (True, False):  # Content-Length says so
        status, _, answer = await upload(svc, big, raw=raw)
        assert (status, answer["error"]["code"]) == (413, "source_too_large"), raw

    async def stream() -> AsyncIterator[bytes]:  # chunked, no Content-Length: the cap acts
        yield b"\xff\xd8\xff"  # while reading
        for _ in range(10):
            yield b"\0" * 50_000

    async with aiohttp.ClientSession() as s, s.post(svc.url("/images"), data=stream()) as r:
        assert r.status == 413 and (await r.json())["error"]["code"] == "source_too_large"
    status, _, image = await upload(svc, photo(64, 64))  # under the cap: fine
    assert status == 201, image


# -- live updates -----------------------------------------------------------------------------


async def test_task_events_follow_an_upload_to_the_end(service: Service, origin: Origin) -> None:
    await occupy_background(service, origin, 1.5)
    status, _, image = await upload(service, photo(800, 500))
    assert status == 201, image
    url = service.url(f"/tasks/{image['task_id']}/events")
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout) as s, s.get(url) as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/event-stream")
        assert r.headers["Cache-Control"] == "no-cache"
        assert r.headers["X-Accel-Buffering"] == "no"
        seen = await task_statuses(r, image["task_id"])  # returns when the server ends it
    assert seen[0] == "pending", seen
    assert "processing" in seen and seen[-1] == "completed", seen
    order = ["pending", "processing", "completed"]
    assert [order.index(s) for s in seen] == sorted(order.index(s) for s in seen)

    async with aiohttp.ClientSession(timeout=timeout) as s, s.get(url) as r:  # already final:
        assert await task_statuses(r, image["task_id"]) == ["completed"]  # one event, the end


async def test_events_stream_sees_two_uploads(service: Service) -> None:
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout) as s, s.get(service.url("/events")) as r:
        assert r.status == 200 and r.headers["Content-Type"].startswith("text/event-stream")
        uploads = [await upload(service, photo(100 + i, 100)) for i in range(2)]
        images = {u[2]["id"]: u[2]["task_id"] for u in uploads}
        tasks: dict[str, list[str]] = {t: [] for t in images.values()}
        image_states: dict[str, list[str]] = {i: [] for i in images}
        async for name, data in events(r):
            if name == "task" and data["id"] in tasks:
                assert data["image_id"] in images
                tasks[data["id"]].append(data["status"])
            elif name == "image" and data["id"] in images:
                image_states[data["id"]].append(data["status"])
                if data["status"] == "completed":
                    assert data["compressed_url"] and data["compressed_bytes"]
            if all(s and s[-1] == "completed" for s in image_states.values()):
                break
    for statuses in tasks.values():
        assert statuses[0] == "pending" and statuses[-1] == "completed", tasks
    for statuses in image_states.values():
        assert statuses[0] == "pending" and statuses[-1] == "completed", image_states


async def test_a_client_that_goes_away_ends_its_stream(start_service) -> None:
    svc = start_service(IMGSERVER_WORKERS="1")
    counter = 'imgserver_http_requests_total{route="/events",status="200"}'
    async with aiohttp.ClientSession() as s:
        r = await s.get(svc.url("/events"))
        assert r.status == 200
        r.close()  # the client drops the connection
    for _ in range(50):  # the handler notices (within a second) and returns
        if svc.metrics().get(counter) == 1:
            break
        await asyncio.sleep(0.1)
    assert svc.metrics().get(counter) == 1


async def test_shutdown_with_open_streams_does_not_hang(start_service) -> None:
    svc = start_service(IMGSERVER_WORKERS="1")
    _, _, image = await upload(svc, photo(32, 32))
    async with aiohttp.ClientSession() as s:
        streams = [await s.get(svc.url("/events")) for _ in range(2)]
        streams.append(await s.get(svc.url(f"/tasks/{image['task_id']}/events")))
        assert svc.proc is not None
        started = time.monotonic()
        svc.proc.terminate()
        code = await asyncio.to_thread(svc.proc.wait, 20)
        took = time.monotonic() - started
        for r in streams:  # each stream was ended by the server, not cut
            await asyncio.wait_for(r.read(), 5)
    print(f"exit with {len(streams)} open streams took {took:.2f} s")
    assert code == 0 and took < 10, (code, took, svc.log())


async def test_a_refused_upload_leaves_nothing_behind(start_service, origin: Origin) -> None:
    svc = start_service(IMGSERVER_MAX_QUEUE_BACKGROUND="1")
    await occupy_background(svc, origin, 3.0)
    waiting = origin.add(f"/waiting-{time.monotonic_ns()}.jpg", photo(32, 32))
    async with aiohttp.ClientSession() as s:
        await asyncio.sleep(0.5)  # (the frontend re-reads the queue depth every 0.25 s)
        url = svc.url("/graph/passthrough.png?input=" + quote(waiting, safe=""))
        async with s.post(url) as r:
            assert r.status == 202  # it waits in the queue: now the queue is full
        async with s.get(svc.url("/events")) as stream:
            status, headers, answer = await upload(svc, photo(40, 40))
            assert (status, answer["error"]["code"]) == (429, "overloaded"), answer
            assert int(headers["Retry-After"]) > 0
            seen = []
            async for name, data in events(stream):
                if name == "image":
                    seen.append((data["status"], (data["error"] or {}).get("code")))
                    if data["status"] == "failed":
                        break
    assert seen == [("pending", None), ("failed", "overloaded")]
    _, page = await get_json(svc.url("/images"))
    assert page == {"images": [], "next_cursor": None}
    assert not [p for p in (svc.data_dir / "storage" / "originals").rglob("*") if p.is_file()]
