"""Real backing services for the tests, each on a free loopback port:
redis-server, a private RabbitMQ node, and moto's S3 server over real HTTP.

Session-scoped fixtures start each once; fault tests stop and restart them (``restart()``),
so anything that stops a server must start it again before the test ends.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

RABBIT_BIN = Path("/usr/lib/rabbitmq/bin")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {timeout} s")


def _require(binary: str) -> None:
    if shutil.which(binary) is None and not Path(binary).exists():
        pytest.fail(f"{binary} is not installed: run `make test` (it installs the test services)")


class RedisServer:
    def __init__(self) -> None:
        _require("redis-server")
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        _wait_port(self.port, 10)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def flushall(self) -> None:
        subprocess.run(["redis-cli", "-p", str(self.port), "FLUSHALL"], check=True,
                       capture_output=True)  # fmt: skip


class RabbitServer:
    """A private RabbitMQ node (its own name, ports, data and logs under a temporary dir)."""

    def __init__(self) -> None:
        _require(str(RABBIT_BIN / "rabbitmq-server"))
        self.port = free_port()
        while self.port + 20000 > 65535:
            self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="rabbit-"))
        self.node = f"imgtest{self.port}@localhost"
        (self.dir / "plugins").write_text("[].\n")
        self.env = {
            **os.environ,
            "HOME": str(self.dir),  # the Erlang cookie lives here
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.port + 20000),
            "RABBITMQ_MNESIA_BASE": str(self.dir / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.dir / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.dir / "plugins"),
        }

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def ctl(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        command = [str(RABBIT_BIN / "rabbitmqctl"), "-n", self.node, *args]
        return subprocess.run(
            command, env=self.env, capture_output=True, text=True, timeout=timeout
        )

    def start(self, timeout: float = 60) -> None:
        subprocess.run([str(RABBIT_BIN / "rabbitmq-server"), "-detached"], env=self.env,
                       check=True, capture_output=True)  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.ctl("await_startup", timeout=timeout).returncode == 0:
                _wait_port(self.port, 10)
                return
            time.sleep(0.3)
        raise RuntimeError(f"RabbitMQ node {self.node} did not start")

    def stop(self) -> None:
        self.ctl("stop")

    def restart(self) -> None:
        self.stop()
        self.start()

    def purge_all(self) -> None:
        out = self.ctl("list_queues", "-q", "name").stdout.split()
        for name in out:
            if name != "name":
                self.ctl("purge_queue", name)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class S3Server:
    """moto's S3 over real HTTP, with a fresh bucket per test (``new_bucket()``)."""

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        self.port = free_port()
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.server.start()
        _wait_port(self.port, 10)

    def stop(self) -> None:
        self.server.stop()

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id="test", aws_secret_access_key="test")  # fmt: skip

    def new_bucket(self) -> str:
        name = f"imgtest-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name

    def env(self, bucket: str) -> dict[str, str]:
        """Settings (as IMGSERVER_/AWS_ variables) that point the service at ``bucket``."""
        return {"IMGSERVER_S3_BUCKET": bucket, "IMGSERVER_S3_ENDPOINT_URL": self.endpoint,
                "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                "AWS_DEFAULT_REGION": "us-east-1"}  # fmt: skip


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def rabbit_server() -> Iterator[RabbitServer]:
    server = RabbitServer()
    server.start()
    yield server
    server.close()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "test")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "test")
    server = S3Server()
    server.start()
    yield server
    server.stop()
