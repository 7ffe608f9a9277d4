"""Shared-memory blocks outlive a killed owner only until the next sweep: the owner's lock on
each block is what tells a live owner from a dead one."""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from multiprocessing import resource_tracker
from multiprocessing.shared_memory import SharedMemory
from pathlib import Path

import pytest

from imgserver import shared
from imgserver.shared import PREFIX, SHM_DIR, Blocks, sweep

# A process that owns a block (a source copied into it) until it is killed.
OWNER = """
import sys, time
from imgserver.shared import Blocks
held = Blocks(keep=1).copy(b"x" * 100_000)
print(held.name, flush=True)
time.sleep(60)
"""


def owned(pid: int) -> set[str]:
    """Names of the blocks in /dev/shm made by process ``pid``."""
    return {n for n in os.listdir(SHM_DIR) if n.startswith(f"{PREFIX}{pid}-")}


class Owner:
    """A separate Python process holding one block, in its own process group."""

    def __init__(self) -> None:
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
        self.proc = subprocess.Popen(
            [sys.executable, "-c", OWNER],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
            start_new_session=True,
        )
        assert self.proc.stdout is not None
        self.block = self.proc.stdout.readline().strip()
        assert self.block, "the owner did not start"

    def kill(self) -> None:
        """SIGKILL to the owner and its resource tracker, as the OOM killer of a cgroup or
        ``systemctl kill -s KILL`` would: nothing of it is left to clean up."""
        os.killpg(self.proc.pid, signal.SIGKILL)

    def reap(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.kill()
        self.proc.wait(10)


@pytest.fixture
def owners() -> Iterator[list[Owner]]:
    started: list[Owner] = []
    yield started
    for owner in started:
        owner.reap()
        Path(SHM_DIR, owner.block).unlink(missing_ok=True)


def exists(name: str) -> bool:
    return Path(SHM_DIR, name).exists()


def test_a_block_is_named_for_its_owner_and_survives_sweeps_while_held() -> None:
    blocks = Blocks(keep=1)
    held = blocks.copy(b"y" * 1000)
    assert held is not None
    assert held.name.startswith(f"{PREFIX}{os.getpid()}-")
    sweep()
    assert exists(held.name) and bytes(held.view()) == b"y" * 1000
    held.release()  # back in the free list: still this process's, still locked
    sweep()
    assert exists(held.name)
    blocks.close()
    assert not owned(os.getpid())


def test_sweep_removes_the_blocks_of_a_killed_process_and_only_those(owners) -> None:
    killed, neighbour = Owner(), Owner()
    owners += [killed, neighbour]
    assert exists(killed.block) and exists(neighbour.block)
    killed.kill()  # not reaped yet: a zombie holds no lock either
    deadline = time.monotonic() + 10
    while exists(killed.block):  # the kernel drops the lock as the process exits
        assert time.monotonic() < deadline, "the killed process's block was not swept"
        sweep()
        time.sleep(0.05)
    assert exists(neighbour.block)  # a live process's block stays


def test_the_lock_decides_not_the_pid_in_the_name() -> None:
    """A block named for a live PID (here: this very process, as after PID reuse) that
    nobody holds is abandoned; a block held by a live process is kept whatever its name."""
    stray = Path(SHM_DIR, f"{PREFIX}{os.getpid()}-0000reused")
    stray.write_bytes(b"z" * 10)
    foreign = SharedMemory(f"{PREFIX}1-0000elsewhere", create=True, size=4096)
    try:
        fcntl.flock(foreign._fd, fcntl.LOCK_SH)  # held, as by a process of another namespace
        assert sweep()[0] >= 1
        assert not stray.exists()
        assert exists(foreign.name)
    finally:
        stray.unlink(missing_ok=True)
        foreign.close()
        foreign.unlink()


def test_a_new_block_a_sweep_took_first_is_not_used() -> None:
    """Between a block's creation and its owner's lock a sweep may take it: the owner sees
    the sweep's lock, or the name gone, and does not use that block."""
    block = SharedMemory(f"{PREFIX}{os.getpid()}-0000raced", create=True, size=4096)
    path = Path(SHM_DIR, block.name)
    try:
        fd = os.open(path, os.O_RDONLY)
        fcntl.flock(fd, fcntl.LOCK_EX)  # a sweep holds it
        assert not shared._hold(block)
        path.unlink()  # and removes it
        os.close(fd)
        assert not shared._hold(block)
    finally:
        block.close()
        resource_tracker.unregister(block._name, "shared_memory")  # unlinked already
