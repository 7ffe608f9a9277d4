"""``python -m imgserver stack`` (``make stack``): the distributed mode on this machine.

Starts, on 127.0.0.1 only: redis-server (append-only file under the state dir), a private
RabbitMQ node with its own epmd (data under the state dir), moto's S3 server (in memory) with
the bucket, then the Procfile's roles (web, urgent, background) under a supervisor that starts
again any role that dies. Ctrl-C (or SIGTERM) stops the roles, then the services, then epmd.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import os
import shlex
import signal
import sys
import time
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from .localservices import (
    RabbitNode,
    port_in_use,
    port_taken_message,
    redis_argv,
    s3_argv,
    wait_port,
)
from .supervise import Role, Supervisor, say

# (setting, default): the web port falls back to IMGSERVER_PORT, then 8080
PORTS = {
    "web": ("STACK_WEB_PORT", 8080),
    "redis": ("STACK_REDIS_PORT", 6390),
    "amqp": ("STACK_AMQP_PORT", 5690),
    "epmd": ("STACK_EPMD_PORT", 4390),
    "s3": ("STACK_S3_PORT", 9090),
    "urgent": ("STACK_URGENT_PORT", 9101),
    "background": ("STACK_BACKGROUND_PORT", 9102),
}
START_TIMEOUT = 120.0


class StackError(Exception):
    """The stack cannot start; the message says why in one line."""


@dataclass(frozen=True)
class StackConfig:
    state: Path
    ports: dict[str, int]
    bucket: str
    procfile: Path

    @classmethod
    def from_env(cls, env: dict[str, str]) -> StackConfig:
        ports = {}
        for name, (setting, default) in PORTS.items():
            raw = env.get(setting) or (env.get("IMGSERVER_PORT") if name == "web" else None)
            try:
                port = int(raw) if raw else default
            except ValueError:
                raise StackError(f"{setting} must be a TCP port, not {raw!r}") from None
            if not 0 < port < 65536:
                raise StackError(f"{setting} must be a TCP port, not {port}")
            ports[name] = port
        if ports["amqp"] > 45535:
            raise StackError(
                f"STACK_AMQP_PORT must be at most 45535 (RabbitMQ's distribution port is it "
                f"+ 20000), not {ports['amqp']}"
            )
        state = Path(env.get("STACK_DIR") or ".stack").resolve()
        procfile = Path(env.get("STACK_PROCFILE") or Path(__file__).parent.parent / "Procfile")
        return cls(state, ports, env.get("STACK_BUCKET") or "imgserver", procfile)

    @property
    def node(self) -> str:
        """The RabbitMQ node's name, one per state dir (so per checkout): two stacks never share
        one, and a stack finds its node's data again on the next run."""
        digest = hashlib.sha1(str(self.state).encode()).hexdigest()[:10]
        return f"imgstack-{digest}@localhost"

    def busy_ports(self) -> list[str]:
        """One line per port that something else already listens on, naming its setting."""
        checks = [(PORTS[n][0], p) for n, p in self.ports.items()]
        checks.append(
            ("STACK_AMQP_PORT + 20000, RabbitMQ's distribution", self.ports["amqp"] + 20000)
        )
        return [port_taken_message(port, setting) for setting, port in checks if port_in_use(port)]

    def service_env(self) -> dict[str, str]:
        p = self.ports
        return {
            **os.environ,
            "IMGSERVER_HOST": "127.0.0.1",
            "IMGSERVER_DATA_DIR": str(self.state / "data"),
            "IMGSERVER_REDIS_URL": f"redis://127.0.0.1:{p['redis']}/0",
            "IMGSERVER_AMQP_URL": f"amqp://guest:guest@127.0.0.1:{p['amqp']}/",
            "IMGSERVER_S3_BUCKET": self.bucket,
            "IMGSERVER_S3_ENDPOINT_URL": f"http://127.0.0.1:{p['s3']}",
            "IMGSERVER_S3_PUBLIC_URL": f"http://127.0.0.1:{p['s3']}/{self.bucket}",
            "IMGSERVER_S3_ACL": "public-read",
            "AWS_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID", "stack"),
            "AWS_SECRET_ACCESS_KEY": os.environ.get("AWS_SECRET_ACCESS_KEY", "stack"),
            "AWS_DEFAULT_REGION": "us-east-1",
            # moto's S3 forgets its objects when it stops while Redis's index remembers them:
            # check every hit, so a result gone with it is redirected to once, then made again
            "IMGSERVER_VERIFY_HITS": os.environ.get("IMGSERVER_VERIFY_HITS", "1"),
        }


def procfile_roles(path: Path) -> list[tuple[str, list[str]]]:
    """``name: command`` lines; a command starting with ``python`` runs on this interpreter."""
    roles = []
    for line in path.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, _, command = line.partition(":")
        argv = shlex.split(command)
        if argv and argv[0] == "python":
            argv[0] = sys.executable
        roles.append((name.strip(), argv))
    return roles


async def wait_http(url: str, within: float) -> None:
    def poll() -> None:
        end = time.monotonic() + within
        while time.monotonic() < end:
            with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"{url} did not answer 200 in {within:g} s")

    await asyncio.to_thread(poll)


def create_bucket(endpoint: str, bucket: str, env: dict[str, str]) -> None:
    import boto3

    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
        s3.create_bucket(Bucket=bucket)


async def run(config: StackConfig, only: list[str]) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    p = config.ports
    env = config.service_env()
    rabbit = RabbitNode(config.node, p["amqp"], config.state / "rabbit", p["epmd"])
    supervisor = Supervisor()
    rabbit_started = asyncio.create_task(asyncio.to_thread(rabbit.start, START_TIMEOUT))

    async def redis_up() -> None:
        await asyncio.to_thread(wait_port, p["redis"], 30)

    async def s3_up() -> None:
        await asyncio.to_thread(wait_port, p["s3"], 60)
        await asyncio.to_thread(create_bucket, f"http://127.0.0.1:{p['s3']}", config.bucket, env)

    async def start() -> None:
        redis = Role("redis", redis_argv(p["redis"], config.state / "redis"), env, redis_up)
        s3 = Role("s3", s3_argv(p["s3"]), env, s3_up, stop_timeout=10)
        await asyncio.gather(
            supervisor.start(redis), supervisor.start(s3), asyncio.shield(rabbit_started)
        )
        roles = []
        for name, argv in procfile_roles(config.procfile):
            if only and name not in only:
                continue
            role_env = dict(env)
            if name == "web":
                role_env["IMGSERVER_PORT"] = str(p["web"])
                probe = f"http://127.0.0.1:{p['web']}/healthz"
            else:
                port = p.get(name, 0)
                role_env["IMGSERVER_WORKER_METRICS_PORT"] = str(port)
                probe = f"http://127.0.0.1:{port}/healthz" if port else ""
            roles.append(Role(name, argv, role_env, probe_after(probe)))
        await asyncio.gather(*(supervisor.start(r) for r in roles))

    say(
        "stack",
        f"redis :{p['redis']}, rabbitmq :{p['amqp']} (node {config.node}, epmd :{p['epmd']}), "
        f"s3 :{p['s3']} (bucket {config.bucket}), state {config.state}",
    )
    starting = asyncio.create_task(start())
    stopping = asyncio.create_task(stop.wait())
    code = 0
    try:
        await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if starting.done() and starting.exception() is not None:
            say("stack", f"did not start: {starting.exception()}")
            code = 1
        elif starting.done():
            say("stack", f"ready: web http://127.0.0.1:{p['web']} (Ctrl-C stops the stack)")
            await stopping
    finally:
        say("stack", "stopping")
        starting.cancel()
        stopping.cancel()
        await asyncio.gather(starting, return_exceptions=True)
        services = ("redis", "s3")
        await supervisor.stop([r.name for r in supervisor.roles if r.name not in services])
        await supervisor.stop(services)
        await supervisor.close()
        await asyncio.gather(rabbit_started, return_exceptions=True)
        await asyncio.to_thread(rabbit.close)
        say("stack", "stopped")
    return code


def probe_after(url: str) -> Callable[[], Awaitable[None]] | None:
    """After a role's (re)start: wait until its /healthz answers 200."""
    if not url:
        return None

    async def probe() -> None:
        await wait_http(url, START_TIMEOUT)

    return probe


def main(argv: list[str]) -> int:
    try:
        config = StackConfig.from_env(dict(os.environ))
        config.state.mkdir(parents=True, exist_ok=True)
        lock = hold_lock(config.state / "lock")
        busy = config.busy_ports()
        if busy:
            raise StackError(busy[0])
    except StackError as exc:
        print(f"stack: {exc}", file=sys.stderr)
        return 1
    try:
        return asyncio.run(run(config, argv))
    finally:
        lock.close()


def hold_lock(path: Path) -> IO[str]:
    handle = path.open("w")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise StackError(
            f"another stack runs with the state dir {path.parent} (set STACK_DIR to run a "
            "second one)"
        ) from None
    return handle
