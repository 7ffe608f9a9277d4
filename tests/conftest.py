"""Shared fixtures: a real HTTP origin on loopback, and the service run as a real process."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from .servers import REPO, Service, free_port, rabbit_server, redis_server, s3_server

__all__ = ["REPO", "Origin", "Service", "free_port", "rabbit_server", "redis_server", "s3_server"]


@dataclass
class Route:
    body: bytes = b""
    status: int = 200
    content_type: str | None = "image/jpeg"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # before the status line
    body_delay: float = 0.0  # after the headers, before the body
    length: bool = True  # send Content-Length (else the body ends when the connection closes)
    endless: bool = False  # stream zeros until the client goes away
    trickle: float = 0.0  # seconds between the body's bytes, sent one at a time
    hits: int = 0


class Origin:
    """A real HTTP server on loopback serving test images (and misbehaving on request)."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.lock = threading.Lock()
        origin = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?")[0]
                route = origin.routes.get(path)
                if route is None:
                    self.send_error(404)
                    return
                with origin.lock:
                    route.hits += 1
                time.sleep(route.delay)
                self.send_response(route.status)
                if route.content_type:
                    self.send_header("Content-Type", route.content_type)
                for k, v in route.headers.items():
                    self.send_header(k, v)
                if route.length and not route.endless:
                    self.send_header("Content-Length", str(len(route.body)))
                self.end_headers()
                time.sleep(route.body_delay)
                with contextlib.suppress(OSError):
                    if route.trickle:
                        for byte in route.body:
                            self.wfile.write(bytes([byte]))
                            self.wfile.flush()
                            time.sleep(route.trickle)
                    if route.endless:
                        while True:
                            self.wfile.write(b"\0" * 65536)
                    if not route.trickle:
                        self.wfile.write(route.body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def add(self, path: str, body: bytes = b"", **kw: object) -> str:
        self.routes[path] = Route(body, **kw)  # type: ignore[arg-type]
        return self.url(path)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def hits(self, path: str) -> int:
        return self.routes[path].hits

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="session")
def origin() -> Iterator[Origin]:
    o = Origin()
    yield o
    o.close()


@pytest.fixture
def start_service(tmp_path: Path) -> Iterator:
    """Factory: start_service(**env) -> a running Service, stopped after the test."""
    started: list[Service] = []

    def start(data_dir: Path | None = None, **env: str) -> Service:
        svc = Service(data_dir or tmp_path / f"svc{len(started)}", env)
        started.append(svc)
        return svc.start()

    yield start
    for svc in started:
        svc.stop()


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """One service shared by a test module (embedded default, private sources allowed)."""
    svc = Service(tmp_path_factory.mktemp("service"), {})
    svc.start()
    yield svc
    svc.stop()


TIERS = ("unit", "contract", "e2e")
# Fixtures, and values of a parametrized backend fixture, that mean a real server is used.
SERVICE_FIXTURES = frozenset({"redis_server", "rabbit_server", "s3_server", "redis_env"})
SERVICE_PARAMS = frozenset({"redis", "amqp", "amqp-quorum", "s3"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test with its tier (its directory), and ``services`` when it needs a real
    Redis, RabbitMQ or S3 endpoint (a fixture that starts one, or a backend parameter)."""
    for item in items:
        tier = item.path.parent.name
        if tier in TIERS:
            item.add_marker(getattr(pytest.mark, tier))
        params = getattr(getattr(item, "callspec", None), "params", {})
        if SERVICE_FIXTURES & set(getattr(item, "fixturenames", ())) or SERVICE_PARAMS & {
            v for v in params.values() if isinstance(v, str)
        }:
            item.add_marker(pytest.mark.services)
