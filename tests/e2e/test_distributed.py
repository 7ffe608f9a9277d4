"""The distributed mode end to end, and its faults: frontends and worker roles as real
processes on a real Redis, a real RabbitMQ node and moto's S3 server over HTTP."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import aiohttp
import pytest
import redis

from imgserver import names

from ..conftest import Origin
from ..images import jpeg, texture
from ..servers import RabbitServer, RedisServer, S3Server, Service, WorkerProcess
from ..sse import events, task_statuses


def photo(width: int = 640, height: int = 400) -> bytes:
    return jpeg(texture(width, height))


class Stack:
    def __init__(
        self, redis_server: RedisServer, rabbit: RabbitServer, s3: S3Server, tmp: Path
    ) -> None:
        self.redis_server, self.rabbit, self.s3 = redis_server, rabbit, s3
        self.tmp = tmp
        self.bucket = s3.new_bucket()
        self.env = {
            **os.environ,
            **s3.env(self.bucket),
            "IMGSERVER_REDIS_URL": redis_server.url,
            "IMGSERVER_AMQP_URL": rabbit.url,
            "IMGSERVER_S3_PUBLIC_URL": f"{s3.endpoint}/{self.bucket}",
            "IMGSERVER_S3_ACL": "public-read",
            "IMGSERVER_ALLOW_PRIVATE_SOURCES": "1",
            "IMGSERVER_WORKERS": "1",
            "IMGSERVER_RETRY_BACKOFF": "0.05",
            "IMGSERVER_LOG_LEVEL": "WARNING",
        }
        self.processes: list[Service | WorkerProcess] = []

    def frontend(self, **env: str) -> Service:
        svc = Service(
            self.tmp / f"web{len(self.processes)}",
            {k: v for k, v in self.env.items() if k.startswith(("IMGSERVER_", "AWS_"))} | env,
        )
        self.processes.append(svc)
        return svc.start()

    def worker(self, role: str = "urgent", **env: str) -> WorkerProcess:
        w = WorkerProcess(role, {**self.env, **env}, self.tmp)
        self.processes.append(w)
        return w.start()

    def redis(self) -> redis.Redis:
        return redis.Redis.from_url(self.redis_server.url)

    def close(self) -> None:
        for p in reversed(self.processes):
            p.stop()


@pytest.fixture
def stack(redis_server, rabbit_server, s3_server, tmp_path) -> Iterator[Stack]:
    redis_server.flushall()
    rabbit_server.purge_all()
    s = Stack(redis_server, rabbit_server, s3_server, tmp_path)
    yield s
    s.close()


def graph_url(svc: Service, spec: str, source: str, **params: object) -> str:
    return svc.url(f"/graph/{spec}?" + urlencode({"input": source, **params}))


async def fetch(url: str, method: str = "GET", wait: float = 30, **kw) -> tuple[int, dict, bytes]:
    client_timeout = aiohttp.ClientTimeout(total=wait)
    async with (
        aiohttp.ClientSession(timeout=client_timeout) as s,
        s.request(method, url, allow_redirects=False, **kw) as r,
    ):
        return r.status, dict(r.headers), await r.read()


async def wait_ready(svc: Service, wait: float = 30) -> None:
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            status, _, _ = await fetch(svc.url("/readyz"), wait=2)
        except (aiohttp.ClientError, TimeoutError):
            status = 0
        if status == 200:
            return
        await asyncio.sleep(0.2)
    raise AssertionError("the frontend did not become ready")


def unique() -> str:
    import uuid

    return f"/d-{uuid.uuid4().hex[:12]}.jpg"


async def test_miss_then_hit_goes_to_s3_and_redis(stack: Stack, origin: Origin) -> None:
    web = stack.frontend()
    stack.worker("urgent")
    src = origin.add(unique(), photo(800, 500))
    url = graph_url(web, "passthrough.webp", src, width=200)
    status, headers, _ = await fetch(url)
    assert (status, headers["X-Cache"]) == (301, "MISS")
    location = headers["Location"]
    assert location.startswith(f"{stack.s3.endpoint}/{stack.bucket}/results/")
    key = location.rsplit("/", 1)[1]
    assert stack.redis().exists(names.REDIS_RESULT.format(key=key))
    head = stack.s3.client().head_object(Bucket=stack.bucket, Key=f"results/{key}")
    assert head["ContentType"] == "image/webp"
    assert head["CacheControl"] == "public, max-age=31536000, immutable"

    status, headers, _ = await fetch(url)
    assert (status, headers["X-Cache"], headers["Location"]) == (301, "HIT", location)
    status, headers, body = await fetch(location)
    assert status == 200 and headers["Content-Type"] == "image/webp" and body[8:12] == b"WEBP"


async def test_a_chain_and_a_watermark_in_the_distributed_mode(
    stack: Stack, origin: Origin
) -> None:
    """The inner result of a chain is made by the worker (through S3 and Redis), and a
    watermark is fetched by it; a second frontend then finds both cached."""
    web, other = stack.frontend(), stack.frontend()
    stack.worker("urgent")
    src = origin.add(unique(), photo(800, 500))
    logo = origin.add(unique(), photo(40, 20))
    inner = "/graph/resize.png?" + urlencode({"input": src, "width": 200})
    status, headers, _ = await fetch(
        graph_url(web, "transform.jpg", inner, rotate=90, watermark=logo)
    )
    assert (status, headers["X-Cache"]) == (301, "MISS")
    status, headers, body = await fetch(headers["Location"])
    assert status == 200 and body[:2] == b"\xff\xd8"
    status, headers, _ = await fetch(graph_url(other, "resize.png", src, width=200))
    assert (status, headers["X-Cache"]) == (301, "HIT")  # made on the way, for everyone


async def test_prefetch_runs_on_the_background_role(stack: Stack, origin: Origin) -> None:
    web = stack.frontend()
    background = stack.worker("background")
    src = origin.add(unique(), photo())
    url = graph_url(web, "compress.jpg", src)
    status, headers, body = await fetch(url, "POST")
    assert status == 202
    task = json.loads(body)["task"]
    for _ in range(200):
        _, _, body = await fetch(web.url(task["status_url"]))
        if json.loads(body)["status"] in ("completed", "failed"):
            break
        await asyncio.sleep(0.05)
    _, _, body = await fetch(web.url(f"/tasks/{task['id']}"))
    full = json.loads(body)
    assert full["status"] == "completed"
    assert full["result_url"] == headers["Location"]
    assert background.jobs() == 1
    assert (await fetch(url))[1]["X-Cache"] == "HIT"


async def test_kill_9_of_a_worker_mid_job_is_redelivered(stack: Stack, origin: Origin) -> None:
    web = stack.frontend()
    doomed = stack.worker("urgent")
    path = unique()
    src = origin.add(path, photo(), body_delay=2.0)  # the job is mid-fetch for 2 s
    request = asyncio.create_task(fetch(graph_url(web, "passthrough.jpg", src, width=64)))
    for _ in range(100):
        if origin.hits(path):
            break
        await asyncio.sleep(0.05)
    assert origin.hits(path) == 1
    doomed.kill9()
    stack.worker("urgent")  # a fresh worker gets the unacknowledged job again
    status, headers, body = await request
    assert (status, headers["X-Cache"]) == (301, "MISS"), body
    assert origin.hits(path) == 2
    assert (await fetch(headers["Location"]))[0] == 200


async def test_background_task_survives_a_killed_worker(stack: Stack, origin: Origin) -> None:
    web = stack.frontend()
    doomed = stack.worker("background")
    path = unique()
    src = origin.add(path, photo(), body_delay=1.5)
    _, _, body = await fetch(graph_url(web, "passthrough.png", src, width=50), "POST")
    task_id = json.loads(body)["task"]["id"]
    for _ in range(100):
        if origin.hits(path):
            break
        await asyncio.sleep(0.05)
    doomed.kill9()
    stack.worker("background")
    for _ in range(300):
        _, _, body = await fetch(web.url(f"/tasks/{task_id}/status"))
        if json.loads(body)["status"] == "completed":
            break
        await asyncio.sleep(0.05)
    assert json.loads(body)["status"] == "completed"


async def test_rabbitmq_restart(stack: Stack, origin: Origin) -> None:
    web = stack.frontend()
    worker = stack.worker("urgent")
    first = origin.add(unique(), photo(100, 100))
    assert (await fetch(graph_url(web, "passthrough.jpg", first)))[0] == 301
    stack.rabbit.restart()
    await wait_ready(web)
    src = origin.add(unique(), photo(100, 100))
    status, headers, body = await fetch(graph_url(web, "passthrough.jpg", src))
    assert (status, headers["X-Cache"]) == (301, "MISS"), body
    assert worker.jobs() == 2  # the same worker process, reconnected


async def test_redis_flush_keeps_results_via_s3(stack: Stack, origin: Origin) -> None:
    web = stack.frontend()
    worker = stack.worker("urgent")
    path = unique()
    url = graph_url(web, "passthrough.webp", origin.add(path, photo()), width=120)
    _, headers, _ = await fetch(url)
    location = headers["Location"]
    stack.redis_server.flushall()
    # another frontend: nothing in its memory, so the flushed index is all it can ask
    other = stack.frontend()
    status, headers, _ = await fetch(url.replace(web.base, other.base))
    assert (status, headers["X-Cache"], headers["Location"]) == (301, "HIT", location)
    # found in S3, not recomputed (the source download that ran alongside the check was dropped)
    assert (worker.jobs("ok"), worker.jobs("cached")) == (1, 1)
    key = location.rsplit("/", 1)[1]
    assert stack.redis().exists(names.REDIS_RESULT.format(key=key))  # and indexed again


async def test_redis_down_answers_503_quickly_and_recovers(stack: Stack, origin: Origin) -> None:
    web = stack.frontend()
    stack.worker("urgent")
    src = origin.add(unique(), photo(80, 80))
    url = graph_url(web, "passthrough.jpg", src)
    stack.redis_server.stop()
    try:
        started = time.monotonic()
        status, _, body = await fetch(url, wait=5)  # a hang fails here
        elapsed = time.monotonic() - started
        assert status == 503, body
        assert json.loads(body)["error"]["code"] == "unavailable"
        print(f"503 while Redis is down after {elapsed * 1000:.0f} ms")
        status, _, body = await fetch(web.url("/readyz"), wait=5)
        assert status == 503 and "index" in json.loads(body)["error"]["message"]
    finally:
        stack.redis_server.start()
    await wait_ready(web)
    status, _, body = await fetch(url)
    assert status == 301, body


async def test_single_flight_across_two_frontends(stack: Stack, origin: Origin) -> None:
    webs = [stack.frontend(), stack.frontend()]
    workers = [stack.worker("urgent"), stack.worker("urgent")]
    path = unique()
    src = origin.add(path, photo(), body_delay=1.0)
    urls = [graph_url(w, "passthrough.jpg", src, width=77) for w in webs]
    answers = await asyncio.gather(*(fetch(urls[i % 2]) for i in range(20)))
    assert {(a[0], a[1]["Location"]) for a in answers} == {(301, answers[0][1]["Location"])}
    assert origin.hits(path) == 1
    assert sum(w.jobs() for w in workers) == 1


async def test_background_flood_does_not_hold_up_urgent_work(stack: Stack, origin: Origin):
    web = stack.frontend()
    stack.worker("urgent")
    stack.worker("background")
    src = origin.add(unique(), photo(1600, 1000))
    base = await fetch(graph_url(web, "passthrough.jpg", src, width=301))  # warm up
    assert base[0] == 301

    async with aiohttp.ClientSession() as s:

        async def prefetch(i: int) -> int:
            async with s.post(graph_url(web, "gaussianblur.jpg", src, width=900 + i)) as r:
                return r.status

        assert set(await asyncio.gather(*(prefetch(i) for i in range(200)))) == {202}

    started = time.monotonic()
    status, headers, _ = await fetch(graph_url(web, "passthrough.jpg", src, width=302))
    latency = time.monotonic() - started
    _, _, body = await fetch(web.url("/metrics"))
    depth = [
        line
        for line in body.decode().splitlines()
        if line.startswith('imgserver_queue_depth{queue="background"}')
    ]
    waiting = float(depth[0].split()[1])
    print(
        f"urgent miss with 200 prefetches queued: {latency * 1000:.0f} ms; "
        f"{waiting:.0f} background jobs still waiting"
    )
    assert (status, headers["X-Cache"]) == (301, "MISS")
    assert waiting > 150  # the urgent job did not wait for the background queue to drain


async def test_upload_on_one_frontend_watched_live_on_another(stack: Stack) -> None:
    a, b = stack.frontend(), stack.frontend()
    timeout = aiohttp.ClientTimeout(total=90)
    async with aiohttp.ClientSession(timeout=timeout) as s:
        everything = await s.get(b.url("/events"))  # B hears changes made anywhere
        assert everything.status == 200
        form = aiohttp.FormData()
        form.add_field("image", photo(320, 200), filename="a.jpg", content_type="image/jpeg")
        async with s.post(a.url("/images"), data=form) as r:
            assert r.status == 201, await r.text()
            image = await r.json()
        assert image["original_url"].startswith(f"{stack.s3.endpoint}/{stack.bucket}/originals/")
        task_id = image["task_id"]

        async with s.get(b.url(f"/tasks/{task_id}/events")) as r:
            watching = asyncio.create_task(task_statuses(r, task_id))
            await asyncio.to_thread(stack.worker, "background")  # only now is there a worker
            seen = await asyncio.wait_for(watching, 60)
        assert seen[0] == "pending" and "processing" in seen and seen[-1] == "completed", seen

        image_statuses = []
        async for name, data in events(everything):
            if name == "image" and data["id"] == image["id"]:
                image_statuses.append(data["status"])
                if data["status"] == "completed":
                    break
        everything.close()
        assert image_statuses[0] == "pending", image_statuses

        async with s.get(b.url(f"/images/{image['id']}")) as r:
            done = await r.json()
        assert done["status"] == "completed"
        assert done["compressed_url"].startswith(f"{stack.s3.endpoint}/{stack.bucket}/results/")
        async with s.get(done["compressed_url"]) as r:
            assert r.status == 200 and len(await r.read()) == done["compressed_bytes"]
        async with s.get(b.url("/images?limit=1")) as r:
            assert [i["id"] for i in (await r.json())["images"]] == [image["id"]]


@pytest.mark.parametrize(
    "command,env,message",
    [
        (["workers", "urgent"], {}, "IMGSERVER_AMQP_URL is not set"),
        (
            ["imgserver", "serve"],
            {"IMGSERVER_AMQP_URL": "amqp://127.0.0.1:1/"},
            "IMGSERVER_AMQP_URL needs IMGSERVER_REDIS_URL",
        ),
        (
            ["imgserver", "serve"],
            {"IMGSERVER_REDIS_URL": "redis://127.0.0.1:1/0"},
            "redis: unavailable",
        ),
        (
            ["workers", "background"],
            {
                "IMGSERVER_REDIS_URL": "redis://127.0.0.1:1/0",
                "IMGSERVER_AMQP_URL": "amqp://127.0.0.1:1/",
            },
            "redis: unavailable",
        ),
    ],
)
def test_misconfigured_processes_exit_with_a_clear_message(command, env, message) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("IMGSERVER_")}
    proc = subprocess.run(
        [sys.executable, "-m", *command],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode in (2, 3)
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


async def test_a_failed_source_is_remembered_for_every_frontend(
    stack: Stack, origin: Origin
) -> None:
    """Issue 15: the failure memory lives in Redis. A source that answers 404 through frontend
    A is answered 404 by frontend B at once, nothing fetched or queued; a dead source is a 504
    within the request deadline (set alike on frontends and workers), and then remembered too;
    an admin's purge on B forgets it for everyone."""
    from imgserver.apikeys import KeyRing, parse_env

    keys = "web:dist-secret-dist-secret,ops:dist-secret-dist-admin:admin"
    env = {"IMGSERVER_REQUEST_DEADLINE": "3", "IMGSERVER_KEYS": keys}
    a, b = stack.frontend(**env), stack.frontend(**env)
    worker = stack.worker("urgent", **env)
    ring = KeyRing(parse_env(keys))

    def signed(svc: Service, spec: str, source: str, key: str = "web") -> str:
        # the source as is (only characters a query keeps): signed exactly as aiohttp sends it
        return svc.url(ring.signed_path(key, spec, f"input={source}"))

    gone_path, dead_path = unique(), unique()
    gone = origin.add(gone_path, b"gone", status=404, content_type="text/plain")
    dead = origin.add(dead_path, photo(), delay=30.0)

    status, headers, body = await fetch(signed(a, "passthrough.jpg", gone))
    assert (status, json.loads(body)["error"]["code"]) == (404, "source_not_found"), body
    assert headers["Cache-Control"] == "public, max-age=60"
    for method in ("GET", "HEAD", "POST"):
        status, headers, body = await fetch(signed(b, "resize.webp", gone), method)
        assert status == 404 and headers["Cache-Control"] == "public, max-age=60", method
    assert origin.hits(gone_path) == 1
    digest = names.source_digest(gone)
    assert stack.redis().exists(names.REDIS_FAILURE.format(scope=f"source:{digest}"))

    started = time.monotonic()
    status, headers, body = await fetch(signed(a, "passthrough.jpg", dead))
    took = time.monotonic() - started
    print(f"\ndead source through frontend A: {status} after {took:.2f} s (deadline 3 s)")
    assert (status, json.loads(body)["error"]["code"]) == (504, "source_timeout"), body
    assert headers["Cache-Control"] == "no-store"
    status, _, body = await fetch(signed(b, "passthrough.jpg", dead))
    assert (status, json.loads(body)["error"]["code"]) == (504, "source_timeout")
    assert origin.hits(dead_path) == 1
    assert worker.jobs("source_timeout") == 1

    purge = b.url(ring.signed_path("ops", "cache", f"input={gone}"))
    status, _, body = await fetch(purge, "DELETE")
    assert status == 200 and json.loads(body)["surrogate_keys"] == [f"src-{digest[:16]}"]
    origin.add(gone_path, photo())  # the source is back (a new route: its hits start at 0)
    status, headers, _ = await fetch(signed(a, "passthrough.jpg", gone))
    assert (status, headers["X-Cache"], origin.hits(gone_path)) == (301, "MISS", 1)
    assert headers["Surrogate-Key"] == f"src-{digest[:16]} graph-passthrough"
