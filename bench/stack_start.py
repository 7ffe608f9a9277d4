"""How long `make stack` takes to serve, and how often it starts at all.

    python bench/stack_start.py [--runs 5] [--timeout 120] -- COMMAND ...

Runs COMMAND (e.g. ``deploy/stack.sh``) ``--runs`` times, one after the other, each on fresh
free loopback ports (``STACK_*_PORT``). A run counts as started when the web role answers
``/healthz`` 200 and both worker roles printed ``workers: ROLE ready``; its start time is the
wall time from launch to then. Each run is then stopped with SIGINT (Ctrl-C) and must exit
within the timeout. Prints every run and the median start time of the runs that started.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def one_run(command: list[str], timeout: float) -> tuple[float | None, str]:
    ports = {name: free_port() for name in ("WEB", "REDIS", "S3", "EPMD", "URGENT", "BACKGROUND")}
    amqp = free_port()
    while amqp + 20000 > 65535:
        amqp = free_port()
    env = {**os.environ, **{f"STACK_{k}_PORT": str(v) for k, v in ports.items()}}
    env["STACK_AMQP_PORT"] = str(amqp)
    with tempfile.TemporaryFile() as out:
        start = time.monotonic()
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
        elapsed: float | None = None
        deadline = start + timeout
        while time.monotonic() < deadline and proc.poll() is None:
            out.seek(0)
            text = out.read().decode(errors="replace")
            roles = all(f"workers: {r} ready" in text for r in ("urgent", "background"))
            healthy = False
            url = f"http://127.0.0.1:{ports['WEB']}/healthz"
            with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1) as r:
                healthy = r.status == 200
            if roles and healthy:
                elapsed = time.monotonic() - start
                break
            time.sleep(0.1)
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        out.seek(0)
        tail = out.read().decode(errors="replace").strip().splitlines()[-3:]
    return elapsed, " / ".join(tail)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--timeout", type=float, default=120)
    parser.add_argument("command", nargs="+")
    args = parser.parse_args()
    times = []
    for i in range(args.runs):
        elapsed, tail = one_run(args.command, args.timeout)
        status = f"started in {elapsed:.1f} s" if elapsed is not None else f"FAILED: {tail}"
        print(f"run {i + 1}: {status}", flush=True)
        if elapsed is not None:
            times.append(elapsed)
    load = os.getloadavg()
    print(
        f"{len(times)}/{args.runs} started; median start "
        + (f"{statistics.median(times):.1f} s" if times else "n/a")
        + f"; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )
    return 0 if len(times) == args.runs else 1


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    sys.exit(main())
