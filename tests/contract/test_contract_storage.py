"""The storage contract, run against the embedded LocalStorage and against S3Storage talking to
moto's S3 over real HTTP; then what only S3 has (ACLs, presigning, prefixes, a store that is
down or answers errors, calls kept off the event loop)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import boto3.session
import botocore.client
import botocore.response
import pytest
from aiohttp import web
from yarl import URL

from imgserver.backends.base import Storage
from imgserver.backends.local_storage import LocalStorage
from imgserver.backends.s3 import S3Storage
from imgserver.errors import Unavailable
from imgserver.names import ORIGINALS_PREFIX, result_path
from imgserver.settings import Settings

from ..servers import S3Server, free_port

# Binary payloads that LocalStorage sniffs to the same types S3 stores (every byte value).
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 16
JPEG = b"\xff\xd8\xff\xe0" + bytes(reversed(range(256))) * 9 + b"\r\n\0"
CACHE_CONTROL = "public, max-age=31536000, immutable"
QUICK = 5.0  # seconds within which a dead store must be reported


@pytest.fixture(autouse=True)
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Credentials for botocore to sign with (the test endpoints take any), also in the tests
    whose endpoint is not moto's."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")


def rpath(name: str) -> str:
    return result_path(hashlib.sha256(name.encode()).hexdigest())


def s3_settings(s3_server: S3Server, bucket: str, **overrides: Any) -> Settings:
    return Settings.from_env({}, s3_bucket=bucket, s3_endpoint_url=s3_server.endpoint, **overrides)


@dataclass
class Backend:
    kind: str
    storage: Storage
    stack: contextlib.AsyncExitStack
    settings: Settings
    bucket: str = ""
    _base: str = field(default="")

    async def base(self) -> str:
        """The origin given to url(): for local storage, a real server running the app's
        own stored-file route; S3 ignores it."""
        if self.kind == "s3":
            return "http://service.invalid"
        if not self._base:
            self._base = await serve_local(self.storage, self.settings, self.stack)
        return self._base


async def serve_local(
    storage: Storage, settings: Settings, stack: contextlib.AsyncExitStack
) -> str:
    from imgserver.web import storage as storage_routes
    from imgserver.web.state import LOCAL_STORAGE, SETTINGS

    assert isinstance(storage, LocalStorage)
    app = web.Application()
    app[SETTINGS] = settings
    app[LOCAL_STORAGE] = storage
    app.router.add_routes(storage_routes.routes)
    runner = web.AppRunner(app)
    await runner.setup()
    stack.push_async_callback(runner.cleanup)
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return f"http://127.0.0.1:{port}"


@pytest.fixture(params=["local", "s3"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    async with contextlib.AsyncExitStack() as stack:
        if request.param == "local":
            settings = Settings.from_env({}, data_dir=tmp_path)
            local = await stack.enter_async_context(LocalStorage(tmp_path / "storage"))
            yield Backend("local", local, stack, settings)
        else:
            s3_server: S3Server = request.getfixturevalue("s3_server")
            bucket = s3_server.new_bucket()
            settings = s3_settings(s3_server, bucket)
            s3 = await stack.enter_async_context(S3Storage(settings))
            yield Backend("s3", s3, stack, settings, bucket)


async def http_get(url: str) -> tuple[int, bytes, dict[str, str]]:
    timeout = aiohttp.ClientTimeout(total=10)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.get(URL(url, encoded=True), allow_redirects=False) as resp,
    ):
        return resp.status, await resp.read(), dict(resp.headers)


# -- the contract: both backends -----------------------------------------------------------------


async def test_put_get_round_trip(backend: Backend) -> None:
    storage = backend.storage
    await storage.put(rpath("a"), PNG, "image/png")
    await storage.put(ORIGINALS_PREFIX + "upload1", JPEG, "image/jpeg")

    got = await storage.get(rpath("a"))
    assert got is not None
    assert got.data == PNG
    assert got.content_type == "image/png"
    original = await storage.get(ORIGINALS_PREFIX + "upload1")
    assert original is not None
    assert (original.data, original.content_type) == (JPEG, "image/jpeg")


async def test_head_gives_type_size_and_modification_time(backend: Backend) -> None:
    before = time.time()
    await backend.storage.put(rpath("h"), JPEG, "image/jpeg")
    after = time.time()
    head = await backend.storage.head(rpath("h"))
    assert head is not None
    assert (head.content_type, head.size) == ("image/jpeg", len(JPEG))
    # S3 dates objects in whole seconds, rounded down; one second more for the clock's grain
    assert int(before) - 1 <= head.modified <= after + 1


async def test_missing_object_is_none(backend: Backend) -> None:
    assert await backend.storage.get(rpath("never")) is None
    assert await backend.storage.head(rpath("never")) is None


async def test_overwrite_replaces_data_and_type(backend: Backend) -> None:
    storage = backend.storage
    await storage.put(rpath("o"), PNG, "image/png")
    await storage.put(rpath("o"), JPEG, "image/jpeg")
    got = await storage.get(rpath("o"))
    assert got is not None
    assert (got.data, got.content_type) == (JPEG, "image/jpeg")
    assert (await storage.head(rpath("o")) or ())[:2] == ("image/jpeg", len(JPEG))


async def test_delete(backend: Backend) -> None:
    storage = backend.storage
    await storage.put(rpath("d"), PNG, "image/png")
    await storage.put(rpath("keep"), PNG, "image/png")
    await storage.delete(rpath("d"))
    assert await storage.get(rpath("d")) is None
    assert await storage.head(rpath("d")) is None
    assert await storage.get(rpath("keep")) is not None  # only that one went
    await storage.delete(rpath("d"))  # again: fine
    await storage.delete(rpath("never"))  # never existed: fine


async def test_url_serves_the_bytes_over_http(backend: Backend) -> None:
    await backend.storage.put(rpath("u"), PNG, "image/png")
    await backend.storage.put(ORIGINALS_PREFIX + "u2", JPEG, "image/jpeg")
    base = await backend.base()
    for path, data, mime in (
        (rpath("u"), PNG, "image/png"),
        (ORIGINALS_PREFIX + "u2", JPEG, "image/jpeg"),
    ):
        url = backend.storage.url(path, base)
        assert url.startswith("http")
        status, body, headers = await http_get(url)
        assert status == 200, (url, body[:300])
        assert body == data
        assert headers["Content-Type"] == mime
        assert headers["Cache-Control"] == CACHE_CONTROL


async def test_ping(backend: Backend) -> None:
    await backend.storage.ping()


async def test_concurrent_puts_all_land(backend: Backend) -> None:
    storage = backend.storage
    items = {rpath(f"c{i}"): PNG + i.to_bytes(2, "big") * (i + 1) for i in range(20)}
    await asyncio.gather(*(storage.put(p, d, "image/png") for p, d in items.items()))
    got = await asyncio.gather(*(storage.get(p) for p in items))
    assert [g.data if g else None for g in got] == list(items.values())


# -- S3 only ---------------------------------------------------------------------------------------


@pytest.fixture
async def s3(s3_server: S3Server) -> AsyncIterator[Callable[..., Awaitable[S3Storage]]]:
    """Factory: await s3(bucket=None, **settings) -> an open S3Storage (a fresh bucket if none)."""
    opened: list[S3Storage] = []

    async def make(bucket: str | None = None, **overrides: Any) -> S3Storage:
        settings = s3_settings(s3_server, bucket or s3_server.new_bucket(), **overrides)
        storage = S3Storage(settings)
        opened.append(storage)
        await storage.open()
        return storage

    yield make
    for storage in opened:
        await storage.close()


def _grantees(s3_server: S3Server, bucket: str, key: str) -> set[str]:
    acl = s3_server.client().get_object_acl(Bucket=bucket, Key=key)
    return {g["Grantee"].get("URI", "") + ":" + g["Permission"] for g in acl["Grants"]}


ALL_USERS_READ = "http://acs.amazonaws.com/groups/global/AllUsers:READ"


async def test_objects_carry_content_type_and_cache_control(s3, s3_server: S3Server) -> None:
    storage = await s3()
    await storage.put(rpath("cc"), PNG, "image/png")
    head = s3_server.client().head_object(Bucket=storage.bucket, Key=rpath("cc"))
    assert head["ContentType"] == "image/png"
    assert head["CacheControl"] == CACHE_CONTROL
    assert head["ContentLength"] == len(PNG)
    # No ACL unless asked for: buckets that enforce object ownership refuse them.
    assert ALL_USERS_READ not in _grantees(s3_server, storage.bucket, rpath("cc"))


async def test_cache_control_follows_result_max_age(s3, s3_server: S3Server) -> None:
    storage = await s3(result_max_age=600)
    await storage.put(rpath("age"), PNG, "image/png")
    head = s3_server.client().head_object(Bucket=storage.bucket, Key=rpath("age"))
    assert head["CacheControl"] == "public, max-age=600, immutable"


async def test_presigned_url_by_default(s3, s3_server: S3Server) -> None:
    storage = await s3(s3_presign_expiry=1234)
    await storage.put(rpath("p"), PNG, "image/png")
    url = storage.url(rpath("p"), "http://service.invalid")
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}" == s3_server.endpoint  # base is ignored
    assert parts.path == f"/{storage.bucket}/{rpath('p')}"
    query = parse_qs(parts.query)
    assert query["X-Amz-Expires"] == ["1234"]
    assert "X-Amz-Signature" in query


async def test_public_url_mode(s3, s3_server: S3Server) -> None:
    bucket = s3_server.new_bucket()
    public = f"{s3_server.endpoint}/{bucket}"
    storage = await s3(bucket, s3_acl="public-read", s3_public_url=public + "/")
    await storage.put(rpath("pub"), JPEG, "image/jpeg")

    url = storage.url(rpath("pub"), "http://service.invalid")
    assert url == f"{public}/{rpath('pub')}"  # no signature, no double slash
    status, body, headers = await http_get(url)
    assert status == 200
    assert body == JPEG
    assert headers["Content-Type"] == "image/jpeg"
    assert headers["Cache-Control"] == CACHE_CONTROL
    assert ALL_USERS_READ in _grantees(s3_server, bucket, rpath("pub"))


async def test_prefix_is_applied_to_keys(s3, s3_server: S3Server) -> None:
    bucket = s3_server.new_bucket()
    storage = await s3(bucket, s3_prefix="tenant-a/")
    await storage.put(rpath("x"), PNG, "image/png")

    admin = s3_server.client()
    keys = [o["Key"] for o in admin.list_objects_v2(Bucket=bucket)["Contents"]]
    assert keys == [f"tenant-a/{rpath('x')}"]
    assert (await storage.head(rpath("x")) or ())[:2] == ("image/png", len(PNG))
    assert f"/{bucket}/tenant-a/{rpath('x')}?" in storage.url(rpath("x"), "")
    status, body, _ = await http_get(storage.url(rpath("x"), ""))
    assert (status, body) == (200, PNG)

    # An object outside the prefix is not this storage's.
    admin.put_object(Bucket=bucket, Key=rpath("y"), Body=JPEG, ContentType="image/jpeg")
    assert await storage.get(rpath("y")) is None
    await storage.delete(rpath("x"))
    assert "Contents" not in admin.list_objects_v2(Bucket=bucket, Prefix="tenant-a/")


async def test_open_missing_bucket_is_unavailable(s3_server: S3Server) -> None:
    storage = S3Storage(s3_settings(s3_server, "imgtest-no-such-bucket"))
    try:
        with pytest.raises(Unavailable, match=r"^s3: .*imgtest-no-such-bucket.* does not exist"):
            await storage.open()
    finally:
        await storage.close()


async def test_open_unreachable_endpoint_is_unavailable_quickly() -> None:
    settings = Settings.from_env(
        {}, s3_bucket="b", s3_endpoint_url=f"http://127.0.0.1:{free_port()}"
    )
    storage = S3Storage(settings)
    start = time.monotonic()
    try:
        with pytest.raises(Unavailable, match=r"^s3: bucket 'b' at .* does not answer"):
            await storage.open()
    finally:
        await storage.close()
    assert time.monotonic() - start < QUICK


async def test_store_going_down_is_unavailable_quickly() -> None:
    server = S3Server()  # a second endpoint of our own, to stop under an open storage
    server.start()
    try:
        bucket = server.new_bucket()
        storage = S3Storage(
            Settings.from_env({}, s3_bucket=bucket, s3_endpoint_url=server.endpoint)
        )
        await storage.open()
        await storage.put(rpath("k"), PNG, "image/png")  # the pool now holds live connections
        assert await storage.get(rpath("k")) is not None
    finally:
        server.stop()

    try:
        calls: dict[str, Callable[[], Awaitable[object]]] = {
            "get": lambda: storage.get(rpath("k")),
            "put": lambda: storage.put(rpath("k"), PNG, "image/png"),
            "head": lambda: storage.head(rpath("k")),
            "delete": lambda: storage.delete(rpath("k")),
            "ping": storage.ping,
        }
        for name, call in calls.items():
            start = time.monotonic()
            with pytest.raises(Unavailable, match=r"^s3: ") as raised:
                await call()
            assert time.monotonic() - start < QUICK, name
            assert raised.value.status == 503
    finally:
        await storage.close()


@pytest.fixture
def silent_endpoint() -> Any:
    """A port that accepts connections (the kernel's backlog) but never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


async def test_silent_store_times_out_as_unavailable(silent_endpoint: str) -> None:
    settings = Settings.from_env({}, s3_bucket="b", s3_endpoint_url=silent_endpoint)
    storage = S3Storage(settings, read_timeout=0.3)
    start = time.monotonic()
    try:
        with pytest.raises(Unavailable, match=r"^s3: bucket 'b' .* does not answer.*timeout"):
            await storage.open()
    finally:
        await storage.close()
    assert time.monotonic() - start < QUICK


async def test_default_timeouts_and_retries_are_bounded(s3) -> None:
    config = (await s3()).client.meta.config
    assert 0 < config.connect_timeout <= 5
    assert 0 < config.read_timeout <= 10
    assert config.retries == {"mode": "standard", "total_max_attempts": 2}
    assert config.max_pool_connections >= 16


@pytest.fixture
async def failing_s3() -> AsyncIterator[tuple[str, list[str]]]:
    """An S3 endpoint whose bucket answers HEAD but every object request 503 SlowDown."""
    hits: list[str] = []

    async def handle(request: web.Request) -> web.Response:
        hits.append(f"{request.method} {request.path}")
        if request.method == "HEAD" and request.path.rstrip("/") == "/b":
            return web.Response()
        body = "<Error><Code>SlowDown</Code><Message>Reduce your request rate.</Message></Error>"
        return web.Response(status=503, text=body, content_type="application/xml")

    async with endpoint(handle) as url:
        yield url, hits


@contextlib.asynccontextmanager
async def endpoint(
    handle: Callable[[web.Request], Awaitable[web.Response]],
) -> AsyncIterator[str]:
    """A made-up S3 endpoint on loopback answering every request with ``handle``; its URL."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_error_answers_are_unavailable_with_limited_retries(failing_s3) -> None:
    endpoint, hits = failing_s3
    storage = S3Storage(Settings.from_env({}, s3_bucket="b", s3_endpoint_url=endpoint))
    try:
        await storage.open()
        for call in (
            lambda: storage.get(rpath("e")),
            lambda: storage.head(rpath("e")),
            lambda: storage.put(rpath("e"), PNG, "image/png"),
        ):
            hits.clear()
            start = time.monotonic()
            with pytest.raises(Unavailable, match=r"^s3: .*503"):
                await call()
            assert time.monotonic() - start < QUICK
            assert len(hits) == 2, hits  # one try, one retry
    finally:
        await storage.close()


async def test_missing_bucket_is_not_a_missing_object(s3, s3_server: S3Server) -> None:
    storage = await s3()
    s3_server.client().delete_bucket(Bucket=storage.bucket)
    with pytest.raises(Unavailable, match="NoSuchBucket"):
        await storage.get(rpath("x"))
    with pytest.raises(Unavailable):
        await storage.put(rpath("x"), PNG, "image/png")
    with pytest.raises(Unavailable):
        await storage.ping()


async def test_calls_never_run_on_the_event_loop(
    s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[str, threading.Thread]] = []
    make_api_call = botocore.client.BaseClient._make_api_call
    make_client = boto3.session.Session.client

    def record_api_call(self: Any, operation: str, params: Any) -> Any:
        seen.append((operation, threading.current_thread()))
        return make_api_call(self, operation, params)

    def recording_read(read: Callable[..., bytes]) -> Callable[..., bytes]:
        def record_read(self: Any, *args: Any, **kwargs: Any) -> bytes:
            seen.append(("read body", threading.current_thread()))
            return read(self, *args, **kwargs)

        return record_read

    def record_client(self: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(("create client", threading.current_thread()))
        return make_client(self, *args, **kwargs)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", record_api_call)
    # Bodies stream from the socket; botocore hands out subclasses (checksum validation).
    body_classes = [
        botocore.response.StreamingBody,
        *botocore.response.StreamingBody.__subclasses__(),
    ]
    for cls in body_classes:
        monkeypatch.setattr(cls, "read", recording_read(cls.read))
    monkeypatch.setattr(boto3.session.Session, "client", record_client)
    bucket = s3_server.new_bucket()
    seen.clear()

    storage = S3Storage(s3_settings(s3_server, bucket))
    await storage.open()
    await storage.put(rpath("t"), PNG, "image/png")
    assert await storage.get(rpath("t")) is not None
    assert await storage.head(rpath("t")) is not None
    assert await storage.get(rpath("missing")) is None
    await storage.delete(rpath("t"))
    await storage.ping()
    await storage.close()

    loop_thread = threading.current_thread()
    assert {name for name, _ in seen} == {
        "create client",
        "HeadBucket",
        "PutObject",
        "GetObject",
        "read body",
        "HeadObject",
        "DeleteObject",
        "GetBucketLifecycleConfiguration",  # at open: is there a rule of ours to remove?
    }
    on_loop = [name for name, thread in seen if thread is loop_thread]
    assert on_loop == []
    assert all(t.name.startswith("imgserver-s3") for _, t in seen)


async def test_close_is_idempotent_and_calls_after_close_fail_clearly(s3) -> None:
    storage = await s3()
    await storage.close()
    await storage.close()
    with pytest.raises(RuntimeError, match="not open"):
        await storage.get(rpath("x"))


# -- results lifetime: the bucket's lifecycle rule (S3), the sweep (local files) ---------------


def _rules(s3_server: S3Server, bucket: str) -> list[dict[str, Any]]:
    client = s3_server.client()
    try:
        return list(client.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"])
    except client.exceptions.ClientError as exc:
        assert exc.response["Error"]["Code"] == "NoSuchLifecycleConfiguration"
        return []


LOGS_RULE = {
    "ID": "logs",
    "Filter": {"Prefix": "logs/"},
    "Status": "Enabled",
    "Expiration": {"Days": 3},
}


def _ours(prefix: str, days: int) -> dict[str, Any]:
    return {
        "ID": f"imgserver {prefix}results/",
        "Filter": {"Prefix": f"{prefix}results/"},
        "Status": "Enabled",
        "Expiration": {"Days": days},
    }


async def test_results_lifetime_puts_its_rule_and_keeps_the_others(s3, s3_server: S3Server) -> None:
    bucket = s3_server.new_bucket()
    s3_server.client().put_bucket_lifecycle_configuration(
        Bucket=bucket, LifecycleConfiguration={"Rules": [LOGS_RULE]}
    )
    await s3(bucket, results_lifetime=7, s3_prefix="t/")
    assert _rules(s3_server, bucket) == [LOGS_RULE, _ours("t/", 7)]
    await s3(bucket, results_lifetime=30, s3_prefix="t/")  # changed: replaced, not added
    assert _rules(s3_server, bucket) == [LOGS_RULE, _ours("t/", 30)]
    await s3(bucket, results_lifetime=2)  # another prefix: a rule of its own
    assert _rules(s3_server, bucket) == [LOGS_RULE, _ours("t/", 30), _ours("", 2)]
    await s3(bucket, s3_prefix="t/")  # forever again: its rule goes
    assert _rules(s3_server, bucket) == [LOGS_RULE, _ours("", 2)]
    await s3(bucket)
    assert _rules(s3_server, bucket) == [LOGS_RULE]

    alone = s3_server.new_bucket()
    await s3(alone, results_lifetime=1)
    assert _rules(s3_server, alone) == [_ours("", 1)]
    await s3(alone)  # its only rule: the configuration goes
    assert _rules(s3_server, alone) == []


async def test_lifecycle_opt_out_leaves_the_bucket_alone(s3, s3_server: S3Server) -> None:
    bucket = s3_server.new_bucket()
    await s3(bucket, results_lifetime=7, s3_lifecycle=False)
    assert _rules(s3_server, bucket) == []
    await s3(bucket, results_lifetime=7)
    await s3(bucket, s3_lifecycle=False)  # forever, but hands off: the rule stays
    assert _rules(s3_server, bucket) == [_ours("", 7)]


async def test_a_rule_expiring_results_sooner_is_reported(
    s3, s3_server: S3Server, caplog: pytest.LogCaptureFixture
) -> None:
    bucket = s3_server.new_bucket()
    everything = {"ID": "tidy", "Filter": {"Prefix": ""}, "Status": "Enabled"}
    everything["Expiration"] = {"Days": 1}
    s3_server.client().put_bucket_lifecycle_configuration(
        Bucket=bucket, LifecycleConfiguration={"Rules": [everything, LOGS_RULE]}
    )
    await s3(bucket, results_lifetime=7)
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warned) == 1, warned
    assert "'tidy'" in warned[0] and "before the results lifetime (7 days)" in warned[0]
    assert _rules(s3_server, bucket) == [everything, LOGS_RULE, _ours("", 7)]


@pytest.fixture
async def denying_s3() -> AsyncIterator[tuple[str, dict[str, int]]]:
    """An S3 endpoint whose bucket answers HEAD, and answers lifecycle calls as the returned
    dict says: {"GET": 403} denies reading the configuration, {"PUT": 403} writing it."""
    statuses: dict[str, int] = {}

    async def handle(request: web.Request) -> web.Response:
        if request.method == "HEAD":
            return web.Response()
        status = statuses.get(request.method, 200)
        if status == 403:
            body = "<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>"
            return web.Response(status=403, text=body, content_type="application/xml")
        if request.method == "GET":
            body = "<Error><Code>NoSuchLifecycleConfiguration</Code><Message/></Error>"
            return web.Response(status=404, text=body, content_type="application/xml")
        return web.Response()

    async with endpoint(handle) as url:
        yield url, statuses


@pytest.mark.parametrize("denied", ["GET", "PUT"])
async def test_lifecycle_permission_denied_is_a_warning(
    denying_s3: tuple[str, dict[str, int]], denied: str, caplog: pytest.LogCaptureFixture
) -> None:
    endpoint, statuses = denying_s3
    statuses[denied] = 403
    settings = Settings.from_env({}, s3_bucket="b", s3_endpoint_url=endpoint, results_lifetime=7)
    storage = S3Storage(settings)
    try:
        await storage.open()  # start-up goes on
        await storage.ping()
    finally:
        await storage.close()
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warned) == 1, warned
    assert "403 AccessDenied" in warned[0]
    assert f"s3:{denied.title()}LifecycleConfiguration" in warned[0]

    caplog.clear()  # without a results lifetime, nothing depends on it: not a word
    storage = S3Storage(Settings.from_env({}, s3_bucket="b", s3_endpoint_url=endpoint))
    try:
        await storage.open()
    finally:
        await storage.close()
    assert [r for r in caplog.records if r.levelname == "WARNING"] == []


async def test_local_sweep_deletes_only_expired_results(tmp_path: Path) -> None:
    from imgserver.lifetime import DAY, Lifetime

    async with LocalStorage(tmp_path, Lifetime(days=2)) as storage:
        for name in ("old", "young", "fresh"):
            await storage.put(rpath(name), PNG, "image/png")
        await storage.put(ORIGINALS_PREFIX + "old-upload", JPEG, "image/jpeg")
        now = time.time()
        for path, age in (
            (rpath("old"), 2 * DAY + 10),
            (rpath("young"), 2 * DAY - 60),
            (ORIGINALS_PREFIX + "old-upload", 30 * DAY),  # originals never expire
        ):
            os.utime(storage.file(path), (now - age, now - age))
        assert await storage.sweep(now) == 1
        assert await storage.head(rpath("old")) is None
        for path in (rpath("young"), rpath("fresh"), ORIGINALS_PREFIX + "old-upload"):
            assert await storage.head(path) is not None, path
    async with LocalStorage(tmp_path) as forever:  # no lifetime: nothing is swept
        assert await forever.sweep(now + 100 * DAY) == 0
