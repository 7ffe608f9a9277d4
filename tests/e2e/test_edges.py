"""Clean edges an operator meets first: a port already in use is one line naming the port and
its setting (exit 1); Ctrl-C on ``serve`` or a worker (SIGINT to the whole process group, as a
terminal sends it) stops it with exit 0 and no traceback."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..conftest import Origin
from ..servers import REPO, Service, free_port
from .test_distributed import Stack, graph_url, photo, stack, unique

__all__ = ["stack"]  # the fixture, from test_distributed

NOISE = ("Traceback", "KeyError", "resource_tracker", "leaked", "Exception")


@pytest.fixture
def listener() -> Iterator[int]:
    """A port something listens on (on all addresses, as another server would)."""
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        s.listen()
        yield s.getsockname()[1]


def run(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *argv], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )


def test_serve_names_a_port_in_use(listener: int, tmp_path: Path) -> None:
    env = {**os.environ, "IMGSERVER_PORT": str(listener), "IMGSERVER_DATA_DIR": str(tmp_path)}
    for host in ("127.0.0.1", "0.0.0.0"):
        out = run(["-m", "imgserver", "serve"], {**env, "IMGSERVER_HOST": host})
        assert out.returncode == 1
        assert out.stderr.splitlines() == [
            f"imgserver: port {listener} is in use (IMGSERVER_PORT): stop what uses it or "
            "choose another port"
        ]


def test_a_worker_names_its_metrics_port_in_use(listener: int) -> None:
    env = {
        **os.environ,
        "IMGSERVER_REDIS_URL": "redis://127.0.0.1:1/0",  # never reached: the port comes first
        "IMGSERVER_AMQP_URL": "amqp://guest:guest@127.0.0.1:1/",
        "IMGSERVER_S3_BUCKET": "unused",
        "IMGSERVER_WORKER_METRICS_PORT": str(listener),
    }
    out = run(["-m", "workers", "urgent"], env)
    assert out.returncode == 1
    assert out.stderr.splitlines() == [
        f"workers: port {listener} is in use (IMGSERVER_WORKER_METRICS_PORT): stop what uses "
        "it or choose another port"
    ]


def interrupt(proc: subprocess.Popen[bytes]) -> str:
    """Ctrl-C on a terminal: SIGINT to the whole process group; the output, after it exits 0."""
    os.killpg(proc.pid, signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    text = out.decode(errors="replace")
    assert proc.returncode == 0, text
    assert not [word for word in NOISE if word in text], text
    return text


def started(argv: list[str], env: dict[str, str], ready: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, *argv],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, as a shell gives a foreground job
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    for line in proc.stdout:  # its first lines, until it says it is ready
        if ready.encode() in line:
            return proc
        assert time.monotonic() < deadline
    raise AssertionError(f"exited {proc.wait()} before {ready!r}")


async def test_ctrl_c_on_serve_after_work_is_quiet(origin: Origin, tmp_path: Path) -> None:
    from .test_distributed import fetch

    svc = Service(tmp_path, {"IMGSERVER_WORKERS": "2"})
    proc = started(["-m", "imgserver", "serve"], svc.env, "imgserver: serving on")
    status, _, _ = await fetch(
        graph_url(svc, "passthrough.jpg", origin.add(unique(), photo()), width=90)
    )
    assert status == 301  # the image processes and their shared memory were used
    interrupt(proc)


async def test_ctrl_c_on_a_worker_after_work_is_quiet(stack: Stack, origin: Origin) -> None:
    from .test_distributed import fetch

    web = stack.frontend()
    env = {**stack.env, "IMGSERVER_WORKER_METRICS_PORT": str(free_port())}
    proc = started(["-m", "workers", "urgent"], env, "workers: urgent ready")
    try:
        status, _, _ = await fetch(
            graph_url(web, "passthrough.jpg", origin.add(unique(), photo()), width=90)
        )
        assert status == 301
    finally:
        interrupt(proc)
