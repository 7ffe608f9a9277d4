"""Real processes for the tests (and bench/), each on a free loopback port: redis-server, a
private RabbitMQ node, moto's S3 server over real HTTP, the service (``Service``) and worker
roles (``WorkerProcess``).

Session-scoped fixtures start each once; fault tests stop and restart them (``restart()``),
so anything that stops a server must start it again before the test ends.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from imgserver.localservices import RABBIT_BIN, RabbitNode, redis_argv, s3_argv
from imgserver.localservices import wait_port as _wait_port

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _require(binary: str) -> None:
    if shutil.which(binary) is None and not Path(binary).exists():
        pytest.fail(f"{binary} is not installed: run `make test` (it installs the test services)")


def nginx_conf(root: Path, http: str, connections: int = 256) -> str:
    """A private nginx's main config: everything under ``root`` (pid, logs, temp paths), one
    worker process in the foreground, and ``http`` inside the ``http {}`` block."""
    root.joinpath("tmp").mkdir(parents=True, exist_ok=True)
    # As root, nginx's workers would run as nobody, who cannot read our private directories.
    user = "user root;" if os.geteuid() == 0 else ""
    temp = "\n".join(
        f"{kind}_temp_path {root}/tmp/{kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""
        {user}
        worker_processes 1;
        daemon off;
        pid {root}/nginx.pid;
        error_log {root}/error.log warn;
        events {{ worker_connections {connections}; }}
        http {{
            {temp}
            {http}
        }}
    """


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
            redis_argv(self.port), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        _wait_port(self.port, 10)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def freeze(self) -> None:
        """SIGSTOP: Redis hangs (connections are accepted, nothing answers) until ``thaw``."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        if self.proc is not None:
            os.kill(self.proc.pid, signal.SIGCONT)

    def flushall(self) -> None:
        subprocess.run(
            ["redis-cli", "-p", str(self.port), "FLUSHALL"], check=True, capture_output=True
        )


class RabbitServer(RabbitNode):
    """A private RabbitMQ node (its own name, ports, epmd, data and logs under a temporary dir;
    imgserver/localservices.py, which `make stack` uses too)."""

    def __init__(self) -> None:
        _require(str(RABBIT_BIN / "rabbitmq-server"))
        port = free_port()
        while port + 20000 > 65535:
            port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="rabbit-"))
        super().__init__(f"imgtest{port}@localhost", port, self.dir, free_port())

    def restart(self) -> None:
        self.stop()
        self.start()

    def vhost(self, name: str) -> str:
        """A new virtual host on this node (its own queues), and the URL that opens it."""
        self.ctl("add_vhost", name).check_returncode()
        self.ctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*").check_returncode()
        return f"{self.url}{name}"

    def delete_vhost(self, name: str) -> None:
        self.ctl("delete_vhost", name)

    def purge_all(self) -> None:
        out = self.ctl("list_queues", "-q", "name").stdout.split()
        for name in out:
            if name != "name":
                self.ctl("purge_queue", name)

    def close(self) -> None:
        super().close()
        shutil.rmtree(self.dir, ignore_errors=True)


class S3Server:
    """moto's S3 server over real HTTP, in its own process, with a fresh bucket per test
    (``new_bucket()``)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            s3_argv(self.port),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_port(self.port, 30)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None

    def client(self):
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )

    def new_bucket(self) -> str:
        name = f"imgtest-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name

    def env(self, bucket: str) -> dict[str, str]:
        """Settings (as IMGSERVER_/AWS_ variables) that point the service at ``bucket``."""
        return {
            "IMGSERVER_S3_BUCKET": bucket,
            "IMGSERVER_S3_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_DEFAULT_REGION": "us-east-1",
        }


class Service:
    """``python -m imgserver serve`` in a subprocess, on a free loopback port."""

    def __init__(self, data_dir: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        self.data_dir = data_dir
        self.log_path = data_dir / "service.log"
        self.env = {
            **os.environ,
            "IMGSERVER_HOST": "127.0.0.1",
            "IMGSERVER_PORT": str(self.port),
            "IMGSERVER_DATA_DIR": str(data_dir),
            "IMGSERVER_ALLOW_PRIVATE_SOURCES": "1",
            "IMGSERVER_WORKERS": "2",
            "IMGSERVER_LOG_LEVEL": "WARNING",
            "IMGSERVER_RETRY_BACKOFF": "0.05",
            **env,
        }
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return self.base + path

    def start(self, timeout: float = 60.0) -> Service:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "imgserver", "serve"],
            cwd=REPO,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"service exited {self.proc.returncode}:\n{self.log()}")
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(self.url("/healthz"), timeout=1) as r,
            ):
                if r.status == 200:
                    return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"service did not become healthy:\n{self.log()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def metrics(self) -> dict[str, float]:
        """The /metrics page as {'name{labels}': value}."""
        with urllib.request.urlopen(self.url("/metrics"), timeout=5) as r:
            text = r.read().decode()
        values = {}
        for line in text.splitlines():
            m = re.match(r"^([a-zA-Z_:][\w:]*(?:\{[^}]*\})?) (\S+)$", line)
            if m:
                values[m.group(1)] = float(m.group(2))
        return values


class WorkerProcess:
    """``python -m workers ROLE`` with its own /metrics port."""

    def __init__(self, role: str, env: dict[str, str], log_dir: Path) -> None:
        self.role = role
        self.metrics_port = free_port()
        self.log_path = log_dir / f"worker-{role}-{self.metrics_port}.log"
        self.env = {**env, "IMGSERVER_WORKER_METRICS_PORT": str(self.metrics_port)}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60) -> WorkerProcess:
        log = self.log_path.open("ab")
        command = [sys.executable, "-m", "workers", self.role]
        self.proc = subprocess.Popen(
            command, cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited {self.proc.returncode}:\n{self.log()}")
            if f"workers: {self.role} ready" in self.log():
                return self
            time.sleep(0.1)
        raise RuntimeError(f"worker did not start:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill9(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(40)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def jobs(self, outcome: str = "ok") -> float:
        import re
        import urllib.request

        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as r:
            text = r.read().decode()
        m = re.search(
            rf'imgserver_jobs_total{{outcome="{outcome}",role="{self.role}"}} (\S+)', text
        )
        return float(m.group(1)) if m else 0.0


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
