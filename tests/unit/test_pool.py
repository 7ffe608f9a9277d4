"""The worker process pool: crashes and overruns cost one job, urgent work goes first."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import pytest

from imgserver.pool import JobDeadline, ProcessPool, WorkerCrashed

TARGETS = "tests.pool_targets"


@pytest.fixture
async def pool():
    p = ProcessPool(1, 1, deadline=2.0, module=TARGETS)
    await p.open()
    yield p
    await p.close()


async def test_runs_jobs_in_another_process(pool: ProcessPool) -> None:
    import os

    result = await pool.run({"op": "pid"})
    assert result["pid"] != os.getpid()
    assert result["pid"] in pool.pids


async def test_sources_reach_the_child_intact_small_or_large(pool: ProcessPool) -> None:
    """Large sources go through the slot's shared block (grown when one does not fit), small
    ones through the pipe; the child gets the same bytes either way, and a crash in between
    does not lose the block."""
    import hashlib
    import random

    rng = random.Random(6)
    sizes = [100, 1_000_000, 20_000_000, 300_000, 9_000_000]
    for i, size in enumerate(sizes):
        source = rng.randbytes(size)
        result = await pool.run({"op": "digest"}, source)
        assert result == {
            "sha256": hashlib.sha256(source).hexdigest(),
            "size": size,
            "view": size >= 64 * 1024,
        }
        if i == 2:
            with pytest.raises(WorkerCrashed):
                await pool.run({"op": "crash"}, source)
    bytes_view = memoryview(bytearray(b"x" * 100_000))
    result = await pool.run({"op": "digest"}, bytes_view)
    assert result["sha256"] == hashlib.sha256(b"x" * 100_000).hexdigest()


async def test_crash_fails_one_job_and_replaces_the_process(pool: ProcessPool) -> None:
    first = (await pool.run({"op": "pid"}))["pid"]
    with pytest.raises(WorkerCrashed, match="exit code 3"):
        await pool.run({"op": "crash"})
    second = (await pool.run({"op": "pid"}))["pid"]
    assert second != first
    assert pool.busy == 0


async def test_deadline_stops_a_runaway_job(pool: ProcessPool) -> None:
    first = (await pool.run({"op": "pid"}))["pid"]
    with pytest.raises(JobDeadline):
        await pool.run({"op": "sleep", "seconds": 30})
    assert (await pool.run({"op": "pid"}))["pid"] != first


async def test_urgent_jobs_go_before_background_ones(pool: ProcessPool) -> None:
    blocker = asyncio.create_task(pool.run({"op": "sleep", "seconds": 0.5}))
    await asyncio.sleep(0.1)
    background = [
        asyncio.create_task(pool.run({"op": "pid", "tag": f"b{i}"}, priority=1)) for i in range(3)
    ]
    await asyncio.sleep(0.05)
    urgent = asyncio.create_task(pool.run({"op": "pid", "tag": "u"}, priority=0))
    await blocker
    results = await asyncio.gather(urgent, *background)
    order = [r["tag"] for r in sorted(results, key=lambda r: r["at"])]
    assert order == ["u", "b0", "b1", "b2"]


async def test_a_cancelled_caller_gives_the_process_back(pool: ProcessPool) -> None:
    running = asyncio.create_task(pool.run({"op": "sleep", "seconds": 0.3}))
    waiting = asyncio.create_task(pool.run({"op": "pid"}))
    await asyncio.sleep(0.05)
    running.cancel()
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    # the cancelled job's process finishes its work, then serves the next job
    assert (await asyncio.wait_for(pool.run({"op": "pid"}), 5))["pid"]
    assert pool.busy == 0


async def test_libvips_threads_are_sized_per_process() -> None:
    p = ProcessPool(2, 3, deadline=5.0, module=TARGETS)
    await p.open()
    try:
        results = await asyncio.gather(*(p.run({"op": "threads"}) for _ in range(2)))
    finally:
        await p.close()
    assert results == [{"threads": 3, "env": "3"}] * 2


async def test_memory_limit_fails_the_allocation_not_the_pool() -> None:
    p = ProcessPool(1, 1, deadline=5.0, module=TARGETS, memory_limit=1_500_000_000)
    await p.open()
    try:
        assert await p.run({"op": "allocate", "bytes": 3_000_000_000}) == {"memory_error": True}
        assert await p.run({"op": "allocate", "bytes": 10_000_000}) == {"allocated": 10_000_000}
    finally:
        await p.close()


async def test_no_room_for_a_block_sends_the_source_through_the_pipe(
    pool: ProcessPool, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hashlib

    from imgserver import shared

    monkeypatch.setattr(shared, "room", lambda size, directory=shared.SHM_DIR: False)
    source = b"y" * 200_000
    result = await pool.run({"op": "digest"}, source)
    assert result == {
        "sha256": hashlib.sha256(source).hexdigest(),
        "size": len(source),
        "view": False,
    }


# -- background work at a lower CPU priority ----------------------------------------------------


def own_nice() -> int:
    return os.getpriority(os.PRIO_PROCESS, 0)


async def test_background_jobs_run_only_in_the_niced_processes() -> None:
    """Every thread of a niced process (libvips' too) runs at the pool's niceness; background
    jobs go there even when a process at normal priority is free; urgent jobs go to the
    process at normal priority first, and to a niced one when that is busy."""
    nice = min(19, own_nice() + 7)
    p = ProcessPool(2, 2, deadline=10.0, module=TARGETS, niced=1, nice=nice)
    await p.open()
    try:
        urgent = await p.run({"op": "nice"})
        background = await asyncio.gather(*(p.run({"op": "nice"}, priority=1) for _ in range(3)))
        assert urgent["nice"] == {own_nice()}
        assert {b["pid"] for b in background} == {background[0]["pid"]} != {urgent["pid"]}
        assert all(b["nice"] == {nice} for b in background)
        blocker = asyncio.create_task(p.run({"op": "sleep", "seconds": 1.0}))
        await asyncio.sleep(0.2)  # the process at normal priority is busy: a niced one it is
        assert (await p.run({"op": "nice"}))["pid"] == background[0]["pid"]
        await blocker
    finally:
        await p.close()


async def test_a_waiting_urgent_job_gets_the_niced_process_first() -> None:
    p = ProcessPool(2, 1, deadline=10.0, module=TARGETS, niced=1, nice=min(19, own_nice() + 1))
    await p.open()
    try:
        normal = asyncio.create_task(p.run({"op": "sleep", "seconds": 1.5}))
        niced = asyncio.create_task(p.run({"op": "sleep", "seconds": 0.5}, priority=1))
        await asyncio.sleep(0.2)
        waiting = [
            asyncio.create_task(p.run({"op": "pid", "tag": f"b{i}"}, priority=1)) for i in range(2)
        ]
        await asyncio.sleep(0.05)
        urgent = asyncio.create_task(p.run({"op": "pid", "tag": "u"}))
        results = await asyncio.gather(urgent, *waiting, normal, niced)
        order = [r["tag"] for r in sorted(results[:3], key=lambda r: r["at"])]
        assert order == ["u", "b0", "b1"]
        assert len({r["pid"] for r in results[:3]}) == 1  # all in the niced process
    finally:
        await p.close()


@pytest.mark.parametrize(
    ("nice", "roles", "expected"),
    [
        (10, {"urgent": 6, "background": 2}, 2),  # embedded: all but one
        (10, {"background": 6}, 3),  # a background worker role: all
        (10, {"urgent": 6}, 0),
        (0, {"background": 6}, 0),  # niceness off
    ],
)
def test_niced_processes_per_role(nice: int, roles: dict[str, int], expected: int) -> None:
    from imgserver.processing import niced
    from imgserver.settings import Settings

    assert niced(Settings(workers=3, background_nice=nice), roles) == expected


# -- shared memory: nothing left behind ---------------------------------------------------------


def owned() -> set[str]:
    """This process's blocks in /dev/shm."""
    from imgserver.shared import PREFIX, SHM_DIR

    return {n for n in os.listdir(SHM_DIR) if n.startswith(f"{PREFIX}{os.getpid()}-")}


async def test_a_killed_image_process_leaves_no_block_behind() -> None:
    """Image processes only attach to the pool's blocks: killing one mid-job leaves the
    blocks to the pool, which unlinks them when it closes."""
    pool = ProcessPool(1, 1, deadline=10.0, module=TARGETS)
    await pool.open()
    try:
        source = b"s" * 1_000_000  # through a block
        job = asyncio.create_task(pool.run({"op": "sleep", "seconds": 5}, source))
        await asyncio.sleep(0.5)
        (victim,) = pool.pids
        os.kill(victim, signal.SIGKILL)
        with pytest.raises(WorkerCrashed):
            await job
        assert owned() == {b.name for b in pool.blocks._free}  # given back, nothing else
        assert (await pool.run({"op": "digest"}, source))["size"] == len(source)
    finally:
        await pool.close()
    assert not owned()


async def test_the_pool_sweeps_at_start_and_every_so_often(tmp_path: Path) -> None:
    """Blocks nobody holds (their owner died) are removed when a pool opens, and then every
    ``sweep_every`` seconds while it runs."""
    from imgserver.shared import PREFIX, SHM_DIR

    def abandoned(tag: str) -> Path:
        path = Path(SHM_DIR, f"{PREFIX}999999-{tag}{os.getpid()}")
        path.write_bytes(b"a" * 1000)
        return path

    before = abandoned("before")
    p = ProcessPool(1, 1, deadline=5.0, module=TARGETS, sweep_every=0.2)
    await p.open()
    try:
        assert not before.exists()
        during = abandoned("during")
        deadline = time.monotonic() + 10
        while during.exists():
            assert time.monotonic() < deadline, "no periodic sweep"
            await asyncio.sleep(0.05)
    finally:
        await p.close()
        for path in (before, during):
            path.unlink(missing_ok=True)
