"""A pool of image worker processes, each running one job at a time.

Children are started with ``spawn`` (a pool forked after libvips ran in the parent hangs).
A child that dies (decoder crash, out of memory) or overruns the job deadline is killed and
replaced; only the job it was running fails. Slots go to urgent jobs before background ones.

The pool runs any module's ``init(threads, memory_limit, **options)`` and
``execute(job, source)`` (``imgserver.runtime.execute``'s: a ``RenderJob`` answered by a
``RenderOutcome``); the job and its answer are pickled through the child's pipe. A job's
``source`` (up to the source limit: tens of MB) travels beside it, and not through the pipe: it
is in a shared-memory block (``shared.py``), where the fetcher wrote it or where ``run`` copies
bytes, and the child reads it there in place. (Pickling it through the pipe cost several
copies into freshly allocated memory on both sides: about 60 ms of CPU for a 40 MB PNG.)

Background work can run at a lower CPU priority: the last ``niced`` processes run at niceness
``nice`` (set by each process on itself before it starts any thread, so libvips' threads have
it too), and jobs of a priority above 0 run only there; other jobs go to a process at normal
priority first. A process cannot raise its priority back without privileges (CAP_SYS_NICE or
RLIMIT_NICE), so a process keeps its niceness: the classes are fixed when the pool is made.

The pool sweeps /dev/shm when it opens and every ``sweep_every`` seconds: blocks left there by
processes that died (``shared.sweep``) are unlinked.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import importlib
import itertools
import logging
import multiprocessing
import os
import signal
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from multiprocessing.shared_memory import SharedMemory
from typing import Any, Generic, TypeVar

from .lifecycle import Managed
from .shared import Blocks, SharedBytes, attach, buffer, sweep

J = TypeVar("J")  # a job
R = TypeVar("R")  # its answer
Source = bytes | bytearray | memoryview | SharedBytes

log = logging.getLogger(__name__)

READY = "ready"
START_TIMEOUT = 120.0
EXECUTE = "imgserver.runtime.execute"  # module with init(...) and execute(job, source)
# init(threads, memory, **init_options): ProcessPool(init_options=...) adds keyword arguments
SHARED_MIN = 64 * 1024  # smaller sources go through the pipe
# Blocks a child keeps mapped, least recently used dropped first. A block its parent unlinked
# (replaced by a larger one) lives on while mapped: this bounds that, and the address space.
ATTACHED = 8
SWEEP_EVERY = 60.0  # seconds between sweeps of /dev/shm for blocks of dead processes


class WorkerCrashed(Exception):
    """The worker process died while running the job."""


class JobDeadline(Exception):
    """The job ran past its deadline; its worker process was replaced."""


def _child_main(
    conn: Connection,
    threads: int,
    module: str,
    memory_limit: int,
    options: dict[str, Any],
    nice: int,
) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when children stop
    lower_priority(nice)  # before any thread starts: threads inherit their creator's
    execute = importlib.import_module(module)
    execute.init(threads, memory_limit, **options)
    conn.send(READY)
    attached: dict[str, SharedMemory] = {}  # the parent's blocks this child has open
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        job, source = message
        if isinstance(source, _Shared):
            block = attached.pop(source.name, None) or attach(source.name)
            attached[source.name] = block  # the most recently used last
            while len(attached) > ATTACHED:  # the least recently used: maybe unlinked since
                with contextlib.suppress(BufferError):  # a view still held: unmapped at exit
                    attached.pop(next(iter(attached))).close()
            view = buffer(block)[: source.size]
            try:
                result = execute.execute(job, view)
            finally:
                with contextlib.suppress(BufferError):  # still exported: freed when collected
                    view.release()
        else:
            result = execute.execute(job, source)
        conn.send(result)


def lower_priority(nice: int) -> None:
    """Run the calling thread, and the threads it starts from now on, at niceness ``nice``
    if that is a lower priority than its own (Linux keeps a niceness per thread)."""
    if nice > os.getpriority(os.PRIO_PROCESS, 0):
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, 0, nice)


class _Shared:
    """A source in a shared-memory block, as the child is told of it: the block's name."""

    def __init__(self, name: str, size: int) -> None:
        self.name = name
        self.size = size


class _Slot(Generic[J, R]):
    """One child process and its pipe. Its methods block: they run in the pool's threads."""

    def __init__(
        self,
        index: int,
        threads: int,
        module: str,
        memory_limit: int,
        options: dict[str, Any],
        nice: int = 0,
    ) -> None:
        self.index = index
        self.nice = nice  # the niceness its process runs at
        self._threads = threads
        self._module = module
        self._memory_limit = memory_limit
        self._options = options
        self._ctx = multiprocessing.get_context("spawn")
        self._proc: Any = None
        self._conn: Connection | None = None
        self.jobs = 0

    def spawn(self) -> None:
        parent, child = self._ctx.Pipe()
        proc = self._ctx.Process(
            target=_child_main,
            args=(
                child,
                self._threads,
                self._module,
                self._memory_limit,
                self._options,
                self.nice,
            ),
            daemon=True,
            name=f"imgserver-worker-{self.index}",
        )
        proc.start()
        child.close()
        if not parent.poll(START_TIMEOUT) or parent.recv() != READY:
            proc.kill()
            raise RuntimeError(f"worker process {self.index} did not start")
        self._proc, self._conn = proc, parent

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def call(self, job: J, source: Source | None, deadline: float) -> R:
        if self._conn is None or not self._proc.is_alive():
            self._replace()
        assert self._conn is not None
        self.jobs += 1
        sent: object = source
        if isinstance(source, SharedBytes):  # the child reads it from the block, by name
            sent = _Shared(source.name, source.size)
        try:
            self._conn.send((job, sent))
            if not self._conn.poll(deadline):
                self._replace()
                raise JobDeadline(f"the job ran longer than {deadline:g} s")
            result: R = self._conn.recv()
            return result
        except (EOFError, OSError, BrokenPipeError):
            code = None
            if self._proc is not None:
                self._proc.join(1.0)  # reap it, so the exit code is known
                code = self._proc.exitcode
            self._replace()
            raise WorkerCrashed(f"the worker process died (exit code {code})") from None

    def _replace(self) -> None:
        self.stop(graceful=False)
        self.spawn()

    def stop(self, graceful: bool = True) -> None:
        proc, conn = self._proc, self._conn
        self._proc = self._conn = None
        if conn is not None:
            if graceful:
                with contextlib.suppress(OSError):
                    conn.send(None)
            conn.close()
        if proc is not None:
            proc.join(2.0 if graceful else 0)
            if proc.is_alive():
                proc.kill()
                proc.join(5.0)


class ProcessPool(Managed, Generic[J, R]):
    """``async with`` it, then ``await pool.run(job, source, priority=...)``: lower priority
    numbers are served first. The last ``niced`` of the ``size`` processes run at niceness
    ``nice`` and are the only ones to run jobs of a priority above 0 (background work); with
    ``niced=0`` every process runs any job."""

    def __init__(
        self,
        size: int,
        threads_per_process: int,
        deadline: float,
        module: str = EXECUTE,
        memory_limit: int = 0,
        init_options: Mapping[str, Any] | None = None,
        *,
        niced: int = 0,
        nice: int = 0,
        sweep_every: float = SWEEP_EVERY,
    ) -> None:
        if not 0 <= niced <= size:
            raise ValueError(f"{niced} niced processes in a pool of {size}")
        self.size = size
        self.deadline = deadline
        self.sweep_every = sweep_every
        options = dict(init_options or {})
        self._slots: list[_Slot[J, R]] = [
            _Slot(
                i,
                threads_per_process,
                module,
                memory_limit,
                options,
                nice if i >= size - niced else 0,
            )
            for i in range(size)
        ]
        self._low = set(self._slots[size - niced :])  # the processes for background jobs
        self._threads = ThreadPoolExecutor(size, thread_name_prefix="imgserver-pool")
        self._free: list[_Slot[J, R]] = []
        # jobs waiting for a process, by (priority, arrival): no free process fits any of them
        self._waiters: list[tuple[int, int, asyncio.Future[_Slot[J, R]]]] = []
        self._seq = itertools.count()
        self._sweeper: asyncio.Task[None] | None = None
        # sources in flight: those being fetched and those of the running jobs
        self.blocks = Blocks(keep=2 * size + 2)

    @property
    def busy(self) -> int:
        return self.size - len(self._free)

    @property
    def pids(self) -> list[int]:
        return [pid for s in self._slots if (pid := s.pid) is not None]

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self._sweep)
        await asyncio.gather(*(loop.run_in_executor(self._threads, s.spawn) for s in self._slots))
        self._free = list(self._slots)
        if self.sweep_every > 0:
            self._sweeper = asyncio.create_task(self._sweep_every(), name="imgserver-shm-sweep")

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        loop = asyncio.get_running_loop()
        await asyncio.gather(*(loop.run_in_executor(None, s.stop) for s in self._slots))
        self.blocks.close()
        self._threads.shutdown(wait=False, cancel_futures=True)

    async def _sweep_every(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.sweep_every)
            await loop.run_in_executor(None, self._sweep)

    def _sweep(self) -> None:
        count, size = sweep(self.blocks.directory)
        if count:
            log.warning(
                "removed %d shared-memory block(s) (%.0f MiB) left by processes that died",
                count,
                size / 2**20,
            )

    async def run(self, job: J, source: Source | None = None, *, priority: int = 0) -> R:
        """Run ``job`` on ``source`` in a child. A ``SharedBytes`` source is the pool's from
        now on: it is released when the job ends (or is never started), whatever happens to
        the caller."""
        if isinstance(source, bytes | bytearray | memoryview) and len(source) >= SHARED_MIN:
            copied = self.blocks.copy(source)  # None: no room in /dev/shm, so the pipe it is
            if copied is not None:
                source = copied
        shared = source if isinstance(source, SharedBytes) else None
        try:
            slot = await self._acquire(priority)
        except BaseException:
            if shared is not None:
                shared.release()
            raise
        loop = asyncio.get_running_loop()
        fut = loop.run_in_executor(self._threads, slot.call, job, source, self.deadline)

        def done(_: object) -> None:
            self._release(slot)
            if shared is not None:
                shared.release()

        fut.add_done_callback(done)
        # The child keeps running if our caller is cancelled: the slot comes back when it ends.
        return await asyncio.shield(fut)

    def _fits(self, slot: _Slot[J, R], priority: int) -> bool:
        """Whether a job of ``priority`` may run in ``slot``'s process."""
        return priority <= 0 or not self._low or slot in self._low

    async def _acquire(self, priority: int) -> _Slot[J, R]:
        fitting = [s for s in reversed(self._free) if self._fits(s, priority)]
        if fitting:  # the most recently used process at normal priority, else a niced one
            slot = min(fitting, key=lambda s: s in self._low)
            self._free.remove(slot)
            return slot
        fut: asyncio.Future[_Slot[J, R]] = asyncio.get_running_loop().create_future()
        bisect.insort(self._waiters, (priority, next(self._seq), fut))
        try:
            return await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self._release(fut.result())
            raise

    def _release(self, slot: _Slot[J, R]) -> None:
        self._waiters = [w for w in self._waiters if not w[2].done()]  # drop cancelled ones
        for i, (priority, _, fut) in enumerate(self._waiters):
            if self._fits(slot, priority):
                del self._waiters[i]
                fut.set_result(slot)
                return
        self._free.append(slot)
