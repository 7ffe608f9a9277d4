"""Private instances of the distributed mode's services on this machine, on loopback only:
a RabbitMQ node with its own epmd, and the command lines of redis-server and moto's S3 server.

``python -m imgserver stack`` (``make stack``) and the test suite's fixtures (tests/servers.py)
both start them from here.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

RABBIT_BIN = Path("/usr/lib/rabbitmq/bin")
LOOPBACK_ERL = "-kernel inet_dist_use_interface {127,0,0,1}"


def wait_port(port: int, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Return once something accepts connections on 127.0.0.1:``port``; raise RuntimeError
    after ``timeout`` s, or as soon as ``proc`` (the process meant to listen there) exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the process for port {port} exited ({proc.returncode})")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {timeout} s")


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something already listens where binding ``host``:``port`` would go (on that
    address or on all addresses). A host that does not resolve is not "in use"."""
    try:
        infos = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except OSError:
        return False
    for family, kind, proto, _, address in infos:
        with socket.socket(family, kind, proto) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is not in use
            try:
                s.bind(address)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    return True
    return False


def port_taken_message(port: int, setting: str) -> str:
    return f"port {port} is in use ({setting}): stop what uses it or choose another port"


def redis_argv(port: int, data_dir: Path | None = None) -> list[str]:
    """redis-server in the foreground on 127.0.0.1:``port``. With ``data_dir``, it persists there
    with an append-only file (fsync every second) and loads it again on start; without, it keeps
    nothing."""
    argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--daemonize", "no"]
    argv += ["--loglevel", "warning", "--save", ""]
    if data_dir is None:
        return [*argv, "--appendonly", "no"]
    data_dir.mkdir(parents=True, exist_ok=True)
    return [*argv, "--dir", str(data_dir), "--appendonly", "yes", "--appendfsync", "everysec"]


def s3_argv(port: int) -> list[str]:
    """moto's S3 server (in memory) on 127.0.0.1:``port``, in the foreground."""
    return [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]


class RabbitNode:
    """A private RabbitMQ node: its own name, AMQP port (distribution port + 20000), data and logs
    under ``base``, and its own epmd on ``epmd_port``. Everything listens on 127.0.0.1 only.

    ``start()`` starts epmd (if it is not running yet) and the node, and returns once the node
    has booted; ``stop()`` stops the node (its data stays under ``base``); ``close()`` also stops
    the epmd it started.
    """

    def __init__(self, node: str, port: int, base: Path, epmd_port: int) -> None:
        if port + 20000 > 65535:
            raise ValueError(f"RabbitMQ's AMQP port must be at most 45535, not {port}")
        self.node = node
        self.port = port
        self.dist_port = port + 20000
        self.epmd_port = epmd_port
        self.base = base
        self.epmd: subprocess.Popen[bytes] | None = None
        self.env = {
            **os.environ,
            "HOME": str(base),  # the Erlang cookie lives here
            "RABBITMQ_NODENAME": node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": LOOPBACK_ERL,
            "RABBITMQ_CTL_ERL_ARGS": LOOPBACK_ERL,
            "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(base / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "plugins"),
            "RABBITMQ_PID_FILE": str(base / "node.pid"),
            "ERL_EPMD_PORT": str(epmd_port),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
        }

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def ctl(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        command = [str(RABBIT_BIN / "rabbitmqctl"), "-n", self.node, *args]
        return subprocess.run(
            command,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            start_new_session=True,  # a Ctrl-C meant for the caller must not cut it short
        )

    def start(self, timeout: float = 60) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        (self.base / "plugins").write_text("[].\n")
        if self.epmd is None or self.epmd.poll() is not None:
            # In its own session: a Ctrl-C on the terminal must not end it before the node
            # stops (rabbitmqctl finds the node through it).
            self.epmd = subprocess.Popen(
                ["epmd", "-port", str(self.epmd_port), "-address", "127.0.0.1"],
                env=self.env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            wait_port(self.epmd_port, 10, self.epmd)
        subprocess.run(
            [str(RABBIT_BIN / "rabbitmq-server"), "-detached"],
            env=self.env,
            check=True,
            capture_output=True,
            start_new_session=True,
        )
        # -detached returns before the node has registered with epmd, and until it has,
        # `await_startup` fails at once: ask again until it answers (then it waits for the boot).
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            with contextlib.suppress(subprocess.TimeoutExpired):
                if self.ctl("-q", "await_startup", "--timeout", "30", timeout=left).returncode == 0:
                    wait_port(self.port, 10)
                    return
            time.sleep(0.2)
        log = self.base / "log" / f"{self.node}.log"
        raise RuntimeError(f"RabbitMQ node {self.node} did not start in {timeout:g} s (see {log})")

    def stop(self) -> None:
        """Stop the node and wait until its runtime has exited (it reads the pid file)."""
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.ctl("stop", self.env["RABBITMQ_PID_FILE"], timeout=60)

    def close(self) -> None:
        """Stop the node and the epmd this object started."""
        self.stop()
        if self.epmd is not None:
            self.epmd.terminate()
            try:
                self.epmd.wait(10)
            except subprocess.TimeoutExpired:
                self.epmd.kill()
                self.epmd.wait()
            self.epmd = None
