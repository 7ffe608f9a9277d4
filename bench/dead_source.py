"""How long a client waits for the answer about a dead or trickling source, and for the repeat.

    python bench/dead_source.py [--repo DIR] [--deadline 25] [--repeats 3]

Runs ``python -m imgserver serve`` from ``--repo`` (default: this checkout; give another
checkout, e.g. the main branch, to compare before and after) in the embedded mode with the
default fetch timeouts (connect 5 s, read 10 s, total 30 s), and two origins on loopback:

- **dead**: accepts the connection, reads the request, never answers;
- **trickle**: answers 200 with ``Content-Length: 1000000`` and then one byte every 2 s (never
  long enough silent for the read timeout; only the total timeout or the budget ends it).

For each: the first GET's status, error code and time, then ``--repeats`` GETs of the same URL
right after (the "repeat"), and one GET of another graph of the same source. Prints a table;
asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlencode

import aiohttp

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def dead(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(asyncio.CancelledError, OSError, asyncio.IncompleteReadError):
        await reader.readuntil(b"\r\n\r\n")
        await asyncio.sleep(3600)


async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(asyncio.CancelledError, OSError, asyncio.IncompleteReadError):
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nContent-Length: 1000000\r\n\r\n"
        )
        while True:
            writer.write(b"\xff")
            await writer.drain()
            await asyncio.sleep(2)


def start_service(repo: Path, data: Path, deadline: float) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(repo),
        "IMGSERVER_HOST": "127.0.0.1",
        "IMGSERVER_PORT": str(port),
        "IMGSERVER_DATA_DIR": str(data),
        "IMGSERVER_ALLOW_PRIVATE_SOURCES": "1",
        "IMGSERVER_WORKERS": "1",
        "IMGSERVER_LOG_LEVEL": "ERROR",
        "IMGSERVER_REQUEST_DEADLINE": str(deadline),
    }
    log = (data / "service.log").open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "imgserver", "serve"], cwd=repo, env=env, stdout=log, stderr=log
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            with urllib.request.urlopen(base + "/healthz", timeout=1):
                return proc, base
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("the service did not start")


async def timed(session: aiohttp.ClientSession, url: str) -> tuple[int, str, float]:
    start = time.monotonic()
    async with session.get(url, allow_redirects=False) as r:
        body = await r.read()
    took = time.monotonic() - start
    try:
        code = json.loads(body)["error"]["code"]
    except (ValueError, KeyError, TypeError):
        code = ""
    return r.status, code, took


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repo", type=Path, default=REPO)
    ap.add_argument("--deadline", type=float, default=25.0)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    servers = {
        name: await asyncio.start_server(handler, "127.0.0.1", 0)
        for name, handler in (("dead", dead), ("trickle", trickle))
    }
    with tempfile.TemporaryDirectory(prefix="dead-source-") as tmp:
        proc, base = start_service(args.repo.resolve(), Path(tmp), args.deadline)
        timeout = aiohttp.ClientTimeout(total=args.deadline * 3)
        rows = []
        try:
            async with aiohttp.ClientSession(timeout=timeout) as session:
                for name, server in servers.items():
                    port = server.sockets[0].getsockname()[1]
                    source = f"http://127.0.0.1:{port}/{name}.jpg"
                    url = f"{base}/graph/passthrough.jpg?" + urlencode({"input": source})
                    rows.append((name, "first", *await timed(session, url)))
                    for i in range(args.repeats):
                        rows.append((name, f"repeat {i + 1}", *await timed(session, url)))
                    other = f"{base}/graph/resize.webp?" + urlencode(
                        {"input": source, "width": 100}
                    )
                    rows.append((name, "other graph", *await timed(session, other)))
        finally:
            proc.terminate()
            proc.wait(20)
            for server in servers.values():
                server.close()
    print(f"repo {args.repo}  deadline {args.deadline:g} s  load {os.getloadavg()[0]:.2f}")
    print(f"{'source':8} {'request':12} {'status':>6} {'code':18} {'seconds':>9}")
    for name, what, status, code, took in rows:
        print(f"{name:8} {what:12} {status:>6} {code:18} {took:9.3f}")


if __name__ == "__main__":
    asyncio.run(main())
