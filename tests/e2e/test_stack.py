"""``python -m imgserver stack`` (``make stack``) as an operator runs it: it starts every time,
stops cleanly on Ctrl-C (no traceback, nothing left listening, no epmd), keeps Redis and RabbitMQ
data between runs, runs beside a second stack, and restarts a role killed with SIGKILL."""

from __future__ import annotations

import fcntl
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlencode

import pytest

from imgserver.localservices import RabbitNode, port_in_use
from imgserver.stack import StackConfig

from ..conftest import Origin
from ..procinfo import children
from ..servers import REPO, free_port
from .test_distributed import photo, unique

pytestmark = [pytest.mark.slow, pytest.mark.services]

RUNS = 5


class StackRun:
    """One state dir and set of ports; ``start()`` / ``stop()`` as often as needed."""

    def __init__(self, state: Path) -> None:
        amqp = free_port()
        while amqp > 45535:
            amqp = free_port()
        self.env = {
            **os.environ,
            "STACK_DIR": str(state),
            "STACK_AMQP_PORT": str(amqp),
            "IMGSERVER_ALLOW_PRIVATE_SOURCES": "1",
            "IMGSERVER_WORKERS": "1",
            "IMGSERVER_LOG_LEVEL": "WARNING",
        }
        for name in ("WEB", "REDIS", "EPMD", "S3", "URGENT", "BACKGROUND"):
            self.env[f"STACK_{name}_PORT"] = str(free_port())
        self.config = StackConfig.from_env(self.env)
        self.log_path = state.parent / f"{state.name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def web(self) -> str:
        return f"http://127.0.0.1:{self.config.ports['web']}"

    def all_ports(self) -> list[int]:
        return [*self.config.ports.values(), self.config.ports["amqp"] + 20000]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def start(self, timeout: float = 240) -> None:
        self.log_path.write_bytes(b"")
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "imgserver", "stack"],
                cwd=REPO,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.wait_for("| ready: web", timeout)

    def wait_for(self, text: str, timeout: float, count: int = 1) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while self.log().count(text) < count:
            assert self.proc.poll() is None, (
                f"the stack exited {self.proc.returncode}:\n{self.log()}"
            )
            assert time.monotonic() < deadline, f"no {text!r} after {timeout} s:\n{self.log()}"
            time.sleep(0.2)

    def stop(self) -> None:
        """Ctrl-C, as on a terminal: the stack exits 0, with no traceback, and leaves nothing
        listening on any of its ports (epmd included)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGINT)
        code = self.proc.wait(120)
        log = self.log()
        assert code == 0, log
        assert "Traceback" not in log, log
        assert "| stopped" in log, log
        busy = [p for p in self.all_ports() if port_in_use(p)]
        assert not busy, f"still listening after stop: {busy}\n{log}"

    def role_pid(self, role: str) -> int:
        assert self.proc is not None
        for pid in children(self.proc.pid):
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            if argv[1:4] == [b"-m", b"workers", role.encode()]:
                return pid
        raise AssertionError(f"no {role} role among {children(self.proc.pid)}")

    def rabbit(self) -> RabbitNode:
        c = self.config
        return RabbitNode(c.node, c.ports["amqp"], c.state / "rabbit", c.ports["epmd"])

    def redis(self, *args: str) -> str:
        port = str(self.config.ports["redis"])
        out = subprocess.run(["redis-cli", "-p", port, *args], capture_output=True, text=True)
        return out.stdout.strip()


def listening_addresses(ports: list[int]) -> set[str]:
    out = subprocess.run(["ss", "-ltnH"], capture_output=True, text=True, check=True).stdout
    found = set()
    for line in out.splitlines():
        local = line.split()[3]
        address, _, port = local.rpartition(":")
        if int(port) in ports:
            found.add(address)
    return found


def miss(run: StackRun, source: str) -> int:
    """A cache miss through the stack's web role and its urgent worker: the status."""
    query = urlencode({"input": source, "width": 120})
    request = urllib.request.Request(f"{run.web}/graph/passthrough.jpg?{query}")

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: object, **kw: object) -> None:
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(request, timeout=60) as r:
            return int(r.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_stack_starts_every_time_and_restarts_a_killed_role(tmp_path: Path, origin: Origin) -> None:
    a = StackRun(tmp_path / "a")
    b = StackRun(tmp_path / "b")  # beside it: other ports, another state dir
    assert a.config.node != b.config.node
    source = origin.add(unique(), photo())
    for run in range(1, RUNS + 1):
        a.start()
        if run == 1:
            # loopback only: AMQP, RabbitMQ's distribution port, epmd, Redis, S3, web, workers
            assert listening_addresses(a.all_ports()) <= {"127.0.0.1", "[::1]"}
            assert a.redis("SET", "kept", "yes") == "OK"
            assert a.rabbit().ctl("add_vhost", "kept").returncode == 0
            assert miss(a, source) == 301
        else:  # Redis (append-only file) and RabbitMQ (its node's data) kept what they had
            assert a.redis("GET", "kept") == "yes"
            assert "kept" in a.rabbit().ctl("-q", "list_vhosts").stdout.split()
        if run >= RUNS - 1:
            b.start()
            assert miss(b, origin.add(unique(), photo())) == 301
        if run == RUNS:
            os.kill(a.role_pid("urgent"), signal.SIGKILL)
            a.wait_for("urgent exited (killed by SIGKILL); restarting", 30)
            a.wait_for("workers: urgent ready", 120, count=2)
            assert miss(a, origin.add(unique(), photo())) == 301
        if run >= RUNS - 1:
            b.stop()
        a.stop()


def run_stack(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "imgserver", "stack"]
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=60)


def test_a_busy_port_is_named_with_its_setting(tmp_path: Path) -> None:
    a = StackRun(tmp_path / "a")
    port = a.config.ports["redis"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
        s.listen()
        out = run_stack(a.env)
    assert out.returncode == 1
    assert out.stderr.splitlines() == [
        f"stack: port {port} is in use (STACK_REDIS_PORT): stop what uses it or choose another port"
    ]


def test_a_second_stack_on_the_same_state_dir_is_refused(tmp_path: Path) -> None:
    a = StackRun(tmp_path / "a")
    a.config.state.mkdir(parents=True)
    with a.config.state.joinpath("lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a running stack holds it
        out = run_stack(a.env)
    assert out.returncode == 1
    assert out.stderr.splitlines() == [
        f"stack: another stack runs with the state dir {a.config.state} (set STACK_DIR to "
        "run a second one)"
    ]
