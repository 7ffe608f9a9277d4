"""The processes a benchmark run starts, each on a free loopback port, and how to read them:
nginx (the origin of the sources, and the 301 floor), thumbor, the bare aiohttp 301 app, the
distributed stack (Redis, RabbitMQ, moto S3: tests/servers.py), wrk, and /proc accounting.
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
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.procinfo import children, worker_pids  # noqa: E402
from tests.servers import (  # noqa: E402
    RABBIT_BIN,
    RabbitServer,
    RedisServer,
    S3Server,
    Service,
    WorkerProcess,
    free_port,
    nginx_conf,
)

__all__ = ["RabbitServer", "RedisServer", "S3Server", "Service", "WorkerProcess", "worker_pids"]

CACHE = REPO / "bench" / ".cache"
THUMBOR_VENV = CACHE / "thumbor-venv"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
RESULT_LOCATION = "http://127.0.0.1/results/" + "0" * 64
TICK = os.sysconf("SC_CLK_TCK")


def wait_port(port: int, timeout: float, proc: subprocess.Popen) -> None:
    """Wait until something accepts connections on ``port``; stop ``proc`` if nothing does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.1)
    stop_group(proc)
    raise RuntimeError(f"{proc.args[0]}: nothing listens on {port} after {timeout} s")


def stop_group(proc: subprocess.Popen | None, timeout: float = 10) -> None:
    """Stop a process started with ``start_new_session`` and everything it forked."""
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


class Nginx:
    """A private nginx, one worker process: the origin serving ``sources`` on ``origin_port``,
    and the hit path's floor answering ``return 301`` on ``moved_port``."""

    def __init__(self, root: Path, sources: Path) -> None:
        self.root = root
        self.origin_port, self.moved_port = free_port(), free_port()
        (root / "nginx.conf").write_text(
            nginx_conf(
                root,
                f"""
            access_log off;
            sendfile on;
            tcp_nopush on;
            keepalive_requests 1000000;
            types {{ image/jpeg jpg; image/png png; }}
            server {{
                listen 127.0.0.1:{self.origin_port};
                root {sources};
            }}
            server {{
                listen 127.0.0.1:{self.moved_port};
                location / {{
                    add_header X-Cache HIT;
                    add_header Cache-Control "public, max-age=3600";
                    return 301 {RESULT_LOCATION};
                }}
            }}
        """,
                connections=4096,
            )
        )
        self.proc: subprocess.Popen | None = None

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.origin_port}"

    def start(self) -> Nginx:
        command = [
            NGINX,
            "-p",
            str(self.root),
            "-c",
            str(self.root / "nginx.conf"),
            "-e",
            str(self.root / "error.log"),
        ]
        self.proc = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        wait_port(self.origin_port, 10, self.proc)
        wait_port(self.moved_port, 10, self.proc)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)  # graceful; the master stops its worker
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                stop_group(self.proc)


THUMBOR_CONF = """\
LOADER = 'thumbor.loaders.http_loader'
STORAGE = 'thumbor.storages.no_storage'
RESULT_STORAGE = None
ENGINE = 'thumbor.engines.pil'
ALLOW_UNSAFE_URL = True
QUALITY = 80
"""


class Thumbor:
    """thumbor 7.8 from its own venv: PIL engine, no storage, no result storage, unsafe URLs,
    ``--processes N`` (tornado forks N servers sharing the socket)."""

    def __init__(self, root: Path, processes: int) -> None:
        self.root = root
        self.port = free_port()
        self.processes = processes
        root.mkdir(parents=True, exist_ok=True)
        (root / "thumbor.conf").write_text(THUMBOR_CONF)
        self.proc: subprocess.Popen | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Thumbor:
        command = [
            str(THUMBOR_VENV / "bin" / "thumbor"),
            "-p",
            str(self.port),
            "-i",
            "127.0.0.1",
            "-c",
            str(self.root / "thumbor.conf"),
            "-l",
            "error",
            "--processes",
            str(self.processes),
        ]
        log = (self.root / "thumbor.log").open("ab")
        self.proc = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        wait_port(self.port, 60, self.proc)
        return self

    def stop(self) -> None:
        stop_group(self.proc)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid


class Bare301:
    """bench/bare301.py: aiohttp answering 301 and nothing else."""

    def __init__(self) -> None:
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    def start(self) -> Bare301:
        script = str(REPO / "bench" / "bare301.py")
        self.proc = subprocess.Popen(
            [sys.executable, script, str(self.port)],
            stdout=subprocess.DEVNULL,
            start_new_session=True,
        )
        wait_port(self.port, 30, self.proc)
        return self

    def stop(self) -> None:
        stop_group(self.proc)


class Stack:
    """The distributed mode's backends: redis-server, a private RabbitMQ node, moto S3."""

    def __init__(self) -> None:
        self.redis = RedisServer()
        self.rabbit = RabbitServer()
        # Erlang schedulers busy-wait by default; on a 2-core box shared with the image
        # workers that spin would be stolen from them (a real broker has its own machine).
        self.rabbit.env["RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS"] = (
            "+sbwt none +sbwtdcpu none +sbwtdio none"
        )
        self.s3 = S3Server()
        self.bucket = ""

    def start(self) -> Stack:
        self.redis.start()
        self.rabbit.start()
        self.s3.start()
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
        self.bucket = self.s3.new_bucket()
        return self

    def stop(self) -> None:
        for stop in (self.rabbit.close, self.redis.stop, self.s3.stop):
            with contextlib.suppress(Exception):
                stop()

    def env(self, s3: bool = True) -> dict[str, str]:
        env = {"IMGSERVER_REDIS_URL": self.redis.url, "IMGSERVER_AMQP_URL": self.rabbit.url}
        if s3:
            env |= self.s3.env(self.bucket) | {
                "IMGSERVER_S3_ACL": "public-read",
                "IMGSERVER_S3_PUBLIC_URL": f"{self.s3.endpoint}/{self.bucket}",
            }
        return env

    @property
    def pids(self) -> list[int]:
        """The stack's own processes (for CPU accounting): redis, moto, the Erlang VM."""
        pids = [p.pid for p in (self.redis.proc, self.s3.proc) if p is not None]
        node = self.rabbit.node.encode()
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError):
                    if node in (entry / "cmdline").read_bytes():
                        pids.append(int(entry.name))
        return pids


def stack_available() -> bool:
    return bool(shutil.which("redis-server")) and (RABBIT_BIN / "rabbitmq-server").exists()


# -- /proc ------------------------------------------------------------------------------------


def tree(pid: int) -> list[int]:
    """``pid`` and all its descendants."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children(p))
    return out


def cpu_seconds(pids: list[int]) -> dict[int, float]:
    """User + system CPU seconds of each live process."""
    out = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[pid] = (int(fields[11]) + int(fields[12])) / TICK
    return out


class CpuMeter:
    """CPU seconds used by process trees between ``start()`` and ``stop()``."""

    def __init__(self, roots: list[int]) -> None:
        self.roots = roots
        self.before: dict[int, float] = {}

    def _now(self) -> dict[int, float]:
        return cpu_seconds([p for r in self.roots for p in tree(r)])

    def start(self) -> None:
        self.before = self._now()

    def stop(self) -> float:
        after = self._now()
        return sum(v - self.before.get(pid, 0.0) for pid, v in after.items())


def status_kb(pid: int, field: str) -> int:
    """A ``kB`` field of /proc/PID/status (VmHWM, VmRSS), 0 when the process is gone."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def reset_peak(pid: int) -> None:
    """Reset VmHWM to the current RSS (Linux: write 5 to clear_refs)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


# -- wrk --------------------------------------------------------------------------------------

UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not m:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(m.group(1)) * UNITS[m.group(2)]


def parse_wrk(out: str) -> dict[str, float]:
    """Requests/s, mean and percentile latencies (ms), counts and errors from wrk's output."""
    r: dict[str, float] = {}
    out = "\n".join(line.rstrip() for line in out.splitlines())
    m = re.search(r"^\s*Latency\s+(\S+)\s+(\S+)\s+(\S+)", out, re.M)
    if m:
        r["mean_ms"], r["stdev_ms"], r["max_ms"] = (_ms(g) for g in m.groups())
    for pct, value in re.findall(r"^\s+(50|75|90|99)%\s+(\S+)$", out, re.M):
        r[f"p{pct}_ms"] = _ms(value)
    m = re.search(r"(\d+) requests in ([\d.]+)(\w+)", out)
    if m:
        r["requests"] = int(m.group(1))
    m = re.search(r"^Requests/sec:\s+([\d.]+)", out, re.M)
    if m:
        r["rps"] = float(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    r["socket_errors"] = sum(int(g) for g in m.groups()) if m else 0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    r["bad_responses"] = int(m.group(1)) if m else 0
    if "rps" not in r or "p99_ms" not in r:
        raise RuntimeError(f"could not read wrk's output:\n{out}")
    return r


def wrk(url: str, connections: int, seconds: float, threads: int = 2) -> dict[str, float]:
    threads = max(1, min(threads, connections))
    command = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds:g}s",
        "--latency",
        "--timeout",
        "30s",
        url,
    ]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    result = parse_wrk(out)
    result["connections"] = connections
    return result
