"""Results that vanish from storage behind the index's back (a bucket emptied, a lifecycle rule
that expired them), on the real engines: two frontends and both worker roles as processes, a
real Redis, RabbitMQ and moto's S3 server. The index must stop redirecting to them: a sampled
hit finds the object gone and drops the entry everywhere, a POST checks and recomputes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
import time
from urllib.parse import urlencode

from imgserver import names

from ..conftest import Origin
from .test_distributed import Stack, fetch, graph_url, photo, stack, unique

__all__ = ["stack"]  # fixture

REPAIR_DEADLINE = 30.0  # seconds the index may keep redirecting to missing objects, at most
URLS = 5


def empty_bucket(s: Stack) -> int:
    """Delete every object of the stack's bucket (as an operator or a lifecycle rule would)."""
    client = s.s3.client()
    listed = client.list_objects_v2(Bucket=s.bucket).get("Contents", [])
    if listed:
        keys = [{"Key": o["Key"]} for o in listed]
        client.delete_objects(Bucket=s.bucket, Delete={"Objects": keys})
    assert "Contents" not in client.list_objects_v2(Bucket=s.bucket)
    return len(listed)


async def answer(url: str) -> tuple[int, str, bool]:
    """(status, X-Cache, whether the Location it redirects to exists)."""
    status, headers, body = await fetch(url)
    assert status == 301, body
    where, _, _ = await fetch(headers["Location"], "HEAD", wait=10)
    return status, headers["X-Cache"], where == 200


async def wait_task(web_url: str, task_id: str, wait: float = 60) -> str:
    deadline = time.monotonic() + wait
    status = ""
    while time.monotonic() < deadline:
        _, _, body = await fetch(f"{web_url}/tasks/{task_id}/status")
        status = json.loads(body)["status"]
        if status in ("completed", "completed_with_errors", "failed"):
            break
        await asyncio.sleep(0.1)
    return status


async def test_results_gone_from_s3_stop_being_redirected_to(stack: Stack, origin: Origin) -> None:
    # A checks every hit it serves; B checks none (and would trust its memory of the index for
    # 10 minutes): B must learn of A's repairs.
    checking = stack.frontend(IMGSERVER_VERIFY_HITS="1")
    trusting = stack.frontend(IMGSERVER_VERIFY_HITS="0", IMGSERVER_HIT_CACHE_TTL="600")
    stack.worker("urgent")
    stack.worker("background")
    sources = [origin.add(unique(), photo(320, 200)) for _ in range(URLS + 1)]
    urls = [graph_url(checking, "passthrough.webp", src, width=100) for src in sources]
    *got, posted = urls

    def on(web_base: str, url: str) -> str:
        return url.replace(checking.base, web_base)

    for url in urls:  # made, then hits on both frontends (each keeps the entry in memory)
        assert (await answer(url))[1:] == ("MISS", True)
        assert (await answer(on(trusting.base, url)))[1:] == ("HIT", True)
        assert (await answer(url))[1:] == ("HIT", True)

    assert empty_bucket(stack) == URLS + 1

    # A POST of a URL whose index says "hit" checks storage, and makes the result again.
    status, headers, body = await fetch(on(trusting.base, posted), "POST")
    assert status == 202, (status, headers, body)
    assert await wait_task(trusting.base, json.loads(body)["task"]["id"]) == "completed"
    assert (await answer(on(trusting.base, posted)))[2]

    # A GET of each on A, which checks it after answering...
    started = time.monotonic()
    bad = sum(not exists for _, _, exists in [await answer(url) for url in got])
    last_bad = time.monotonic()
    # ... then GETs on B only, round after round, until none redirects to a missing object:
    # B's memory of the index must be dropped by A's repairs for B to make them again.
    rounds, clean = 0, False
    while not clean and time.monotonic() - started < REPAIR_DEADLINE:
        rounds += 1
        found = [await answer(on(trusting.base, url)) for url in got]
        missing = sum(not exists for _, _, exists in found)
        if missing:
            bad, last_bad = bad + missing, time.monotonic()
        clean = missing == 0
    window = last_bad - started
    print(
        f"after the bucket was emptied: {bad} redirect(s) to missing objects ({len(got)} on the "
        f"checking frontend), then {rounds} round(s) of {len(got)} GETs on the other; the last "
        f"{window:.2f} s after the first GET"
    )
    assert clean, f"still redirecting to missing objects after {REPAIR_DEADLINE} s"

    # Then every answer on both frontends leads to an object that exists.
    final = [await answer(on(web.base, url)) for url in urls for web in (checking, trusting)]
    gone = sum(not exists for _, _, exists in final)
    print(f"after the repair window: {gone} of {len(final)} redirect(s) to missing objects")
    assert gone == 0
    assert stack.s3.client().list_objects_v2(Bucket=stack.bucket)["KeyCount"] == URLS + 1
    # Each repair was counted once: A's checks after its hits, and B's check of the POST.
    missing_checks = 'imgserver_hit_checks_total{result="missing"}'
    assert checking.metrics().get(missing_checks) == len(got)
    assert trusting.metrics().get(missing_checks) == 1


async def test_results_lifetime_puts_the_bucket_rule_and_bounds_index_entries(
    stack: Stack, origin: Origin
) -> None:
    """With a results lifetime, the frontend puts the bucket's lifecycle rule (keeping the
    bucket's other rules), and an index entry never outlives its object."""
    client = stack.s3.client()
    other = {"ID": "logs", "Filter": {"Prefix": "logs/"}, "Status": "Enabled"}
    other["Expiration"] = {"Days": 3}
    client.put_bucket_lifecycle_configuration(
        Bucket=stack.bucket, LifecycleConfiguration={"Rules": [other]}
    )
    web = stack.frontend(IMGSERVER_RESULTS_LIFETIME="2")
    stack.worker("urgent", IMGSERVER_RESULTS_LIFETIME="2")
    rules = client.get_bucket_lifecycle_configuration(Bucket=stack.bucket)["Rules"]
    assert other in rules
    ours = [r for r in rules if r["ID"] != "logs"]
    assert len(ours) == 1
    assert ours[0]["Expiration"] == {"Days": 2} and ours[0]["Status"] == "Enabled"
    assert ours[0]["Filter"] == {"Prefix": names.RESULTS_PREFIX}

    url = graph_url(web, "passthrough.webp", origin.add(unique(), photo(200, 100)), width=50)
    status, headers, _ = await fetch(url)
    assert (status, headers["X-Cache"]) == (301, "MISS")
    key = headers["Location"].rsplit("/", 1)[1]
    ttl = stack.redis().ttl(names.REDIS_RESULT.format(key=key))
    assert 2 * 86400 - 120 < ttl <= 2 * 86400


async def test_embedded_results_expire_and_missing_ones_are_made_again(
    start_service, origin: Origin, tmp_path
) -> None:
    """The embedded mode (SQLite, local files): a result found in storage is indexed no longer
    than it has left, and no redirect to it is cached longer; expired results are swept at
    start-up; a file deleted behind the index's back is made again after a checked hit."""
    data = tmp_path / "embedded"
    env = {"IMGSERVER_WORKERS": "1", "IMGSERVER_RESULTS_LIFETIME": "1"}
    svc = start_service(data_dir=data, **env, IMGSERVER_VERIFY_HITS="1")
    path = "/graph/passthrough.webp?" + urlencode({"input": origin.add(unique(), photo())})
    url = svc.url(path)
    status, headers, _ = await fetch(url)
    assert (status, headers["X-Cache"], headers["Cache-Control"]) == (
        301,
        "MISS",
        "public, max-age=3600",
    )
    key = headers["Location"].rsplit("/", 1)[1]
    result = data / "storage" / names.RESULTS_PREFIX / key[:2] / key

    # A file deleted behind the index's back: the hit that finds it gone is the last one.
    result.unlink()
    assert (await fetch(url))[1]["X-Cache"] == "HIT"
    for _ in range(50):
        _, headers, _ = await fetch(url)
        if headers["X-Cache"] == "MISS":
            break
        await asyncio.sleep(0.1)
    assert headers["X-Cache"] == "MISS" and result.exists()
    svc.stop()

    index = data / "imgserver.sqlite3"

    def indexed() -> list[tuple[str, float]]:
        with contextlib.closing(sqlite3.connect(index)) as db:
            query = "SELECT key, json_extract(entry, '$.created_at') FROM cache"
            return db.execute(query).fetchall()

    # The index lost; the object found in storage with 100 s left: indexed for those only.
    then = time.time() - 86400 + 100
    os.utime(result, (then, then))
    with contextlib.closing(sqlite3.connect(index)) as db, db:
        db.execute("DELETE FROM cache")
    svc = start_service(data_dir=data, **env)
    status, headers, _ = await fetch(svc.url(path))
    assert (status, headers["X-Cache"]) == (301, "HIT")
    assert 0 < int(headers["Cache-Control"].rsplit("=", 1)[1]) <= 100
    [(indexed_key, created_at)] = indexed()  # dated by the object, not by the re-indexing
    assert indexed_key == key and abs(created_at - then) < 1
    svc.stop()

    # Both older than the lifetime: swept at start-up (the file and the entry), made again.
    then -= 110
    os.utime(result, (then, then))
    with contextlib.closing(sqlite3.connect(index)) as db, db:
        db.execute("UPDATE cache SET created_at = ?", (then,))
    svc = start_service(data_dir=data, **env)
    for _ in range(50):
        if not result.exists() and not indexed():
            break
        await asyncio.sleep(0.1)
    assert not result.exists() and not indexed()
    status, headers, _ = await fetch(svc.url(path))
    assert (status, headers["X-Cache"]) == (301, "MISS")
    assert result.exists()
