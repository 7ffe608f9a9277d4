"""What a worker role leaves on its host: no shared memory after a kill -9, and background image
processes that yield the CPU to urgent ones. Real processes: the distributed ``Stack`` (Redis,
RabbitMQ, moto S3) and the embedded service."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import Callable

from imgserver.shared import PREFIX, SHM_DIR

from ..conftest import Origin, Service
from ..procinfo import children, niceness, worker_pids
from .test_distributed import Stack, fetch, graph_url, photo, stack, unique

__all__ = ["stack"]  # the fixture, from test_distributed

BACKGROUND_NICE = 10  # IMGSERVER_BACKGROUND_NICE's default


def blocks_of(pid: int) -> set[str]:
    """The shared-memory blocks in /dev/shm made by process ``pid``."""
    return {n for n in os.listdir(SHM_DIR) if n.startswith(f"{PREFIX}{pid}-")}


async def until(check: Callable[[], bool], wait: float, what: str) -> None:
    deadline = time.monotonic() + wait
    while not check():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.1)


async def prefetch_done(web: Service, url: str, wait: float = 60) -> None:
    status, _, body = await fetch(url, "POST")
    assert status == 202, body
    task = json.loads(body)["task"]
    deadline = time.monotonic() + wait
    while True:
        _, _, body = await fetch(web.url(task["status_url"]))
        if json.loads(body)["status"] == "completed":
            return
        assert time.monotonic() < deadline, body
        await asyncio.sleep(0.1)


async def test_kill_9_of_a_worker_leaves_no_shared_memory(stack: Stack, origin: Origin) -> None:
    """A worker role killed mid-job, with its image processes and its resource tracker (as
    the OOM killer of a cgroup or ``systemctl kill -s KILL`` would: nothing of it is left to
    clean up), leaves its blocks in /dev/shm; the next worker's start-up sweep removes them,
    and only them: a live neighbour's blocks stay."""
    web = stack.frontend()
    neighbour = stack.worker("background")
    doomed = stack.worker("urgent")
    assert neighbour.proc is not None and doomed.proc is not None
    big = photo(1600, 1000)  # well over 64 KiB: through a block
    await prefetch_done(web, graph_url(web, "passthrough.jpg", origin.add(unique(), big)))
    theirs = blocks_of(neighbour.proc.pid)
    assert theirs, "the neighbour kept no block"

    status, _, _ = await fetch(graph_url(web, "passthrough.jpg", origin.add(unique(), big)))
    assert status == 301
    path = unique()
    src = origin.add(path, big, body_delay=2.0)
    request = asyncio.create_task(fetch(graph_url(web, "passthrough.jpg", src, width=64)))
    await until(lambda: origin.hits(path) > 0, 30, "the job never started")
    await asyncio.sleep(0.3)  # writing the source into a block
    pid = doomed.proc.pid
    mine = blocks_of(pid)
    assert mine, "the worker made no block"
    for victim in (pid, *children(pid)):
        os.kill(victim, signal.SIGKILL)
    doomed.proc.wait(10)
    print(f"left by the killed worker: {len(mine)} block(s)")

    stack.worker("urgent")  # its pool sweeps /dev/shm as it starts
    await until(lambda: not blocks_of(pid), 30, f"blocks of the dead worker stay: {mine}")
    assert theirs <= blocks_of(neighbour.proc.pid)  # the live neighbour's: untouched
    status, _, _ = await request  # the job, redelivered, is made by the new worker
    assert status == 301


def nice_of_image_processes(pid: int) -> list[set[int]]:
    """The niceness of every thread of each image process of the service or worker ``pid``."""
    return sorted((niceness(p) for p in worker_pids(pid)), key=min)


async def test_background_image_processes_run_niced(stack: Stack, origin: Origin) -> None:
    """A background worker role's image processes, every thread of them (libvips' too, after
    a job), run at IMGSERVER_BACKGROUND_NICE; an urgent role's at the niceness it started at."""
    base = os.getpriority(os.PRIO_PROCESS, 0)
    web = stack.frontend()
    background = stack.worker("background", IMGSERVER_WORKERS="2")
    urgent = stack.worker("urgent", IMGSERVER_WORKERS="2")
    assert background.proc is not None and urgent.proc is not None
    src = origin.add(unique(), photo(800, 500))
    await prefetch_done(web, graph_url(web, "gaussianblur.jpg", src, width=300))
    assert (await fetch(graph_url(web, "gaussianblur.jpg", src, width=200)))[0] == 301
    niced = max(base, BACKGROUND_NICE)
    assert nice_of_image_processes(background.proc.pid) == [{niced}, {niced}]
    assert nice_of_image_processes(urgent.proc.pid) == [{base}, {base}]


async def test_embedded_background_jobs_run_in_a_niced_process(
    start_service, origin: Origin
) -> None:
    """The embedded service runs both roles on one pool: of its N image processes, the N - 1
    that background jobs may use run niced, one stays at normal priority for urgent work."""
    base = os.getpriority(os.PRIO_PROCESS, 0)
    svc = start_service(IMGSERVER_WORKERS="2")
    src = origin.add(unique(), photo(800, 500))
    await prefetch_done(svc, graph_url(svc, "gaussianblur.jpg", src, width=300))
    assert nice_of_image_processes(svc.proc.pid) == [{base}, {max(base, BACKGROUND_NICE)}]
    off = start_service(IMGSERVER_WORKERS="2", IMGSERVER_BACKGROUND_NICE="0")
    assert nice_of_image_processes(off.proc.pid) == [{base}, {base}]
