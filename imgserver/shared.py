"""Shared-memory blocks for sources: the fetcher writes a source into one, and the worker
process that runs the job reads it in place, by the block's name.

A source of tens of MB used to be read into fresh memory, joined into ``bytes``, then copied
into the worker process: on these machines the page faults of each fresh allocation cost more
than the copies (a 40 MB source: about 90 ms of CPU to fetch, 25 ms into a block in use
already). Blocks are kept and reused, so their pages are faulted in once.

A process owns its ``Blocks`` (the one running the pool: the embedded server, or a worker
role); the worker processes only attach to them. ``SharedBytes`` is one source in a block:
whoever holds it must ``release()`` it once no process reads it any more.

Blocks live in /dev/shm. Writing past the end of a full tmpfs kills the writer with SIGBUS
(Docker gives a container 64 MB there unless ``--shm-size`` says more), so a block is only
used when the filesystem has room for it; otherwise sources stay plain ``bytes`` and go
through the pipe, slower but safe.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from multiprocessing import resource_tracker
from multiprocessing.shared_memory import SharedMemory

STEP = 8 * 1024 * 1024  # block sizes are multiples of this
SHM_DIR = "/dev/shm"
HEADROOM = 16 * 1024 * 1024  # left free in SHM_DIR for others


def room(size: int, directory: str = SHM_DIR) -> bool:
    """Whether ``directory`` (the shared-memory filesystem) has room for ``size`` more bytes."""
    try:
        st = os.statvfs(directory)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize >= size + HEADROOM


@dataclass(eq=False)
class SharedBytes:
    """``size`` bytes at the start of ``block``, until released."""

    block: SharedMemory
    size: int
    owner: Blocks
    released: bool = field(default=False)

    @property
    def name(self) -> str:
        return self.block.name

    def view(self) -> memoryview:
        """The bytes (a view: release it before the source is released)."""
        return buffer(self.block)[: self.size]

    def __len__(self) -> int:
        return self.size

    def release(self) -> None:
        """Give the block back for another source (idempotent)."""
        if not self.released:
            self.released = True
            self.owner.give(self.block)


class Blocks:
    """Free blocks kept for reuse, at most ``keep`` of them; more are unlinked when given back."""

    def __init__(self, keep: int, directory: str = SHM_DIR) -> None:
        self.keep = keep
        self.directory = directory  # where SharedMemory puts blocks (for the room check)
        self._free: list[SharedMemory] = []
        self._made = 0

    def take(self, size: int) -> SharedMemory | None:
        """A block of at least ``size`` bytes: the smallest free one that fits, else a new one;
        None when /dev/shm has no room for that many bytes (pages of a block are allocated as
        they are first written, so a free block needs the room too)."""
        if not room(size, self.directory):
            return None
        fits = [b for b in self._free if b.size >= size]
        if fits:
            block = min(fits, key=lambda b: b.size)
            self._free.remove(block)
            return block
        self._made += 1
        return SharedMemory(create=True, size=max(STEP, -(-size // STEP) * STEP))

    def give(self, block: SharedMemory) -> None:
        self._free.append(block)
        while len(self._free) > self.keep:  # keep the largest ones: they fit any source
            smallest = min(self._free, key=lambda b: b.size)
            self._free.remove(smallest)
            _unlink(smallest)

    def copy(self, data: bytes | bytearray | memoryview) -> SharedBytes | None:
        """``data`` copied into a block; None when there is no room for one."""
        block = self.take(len(data))
        if block is None:
            return None
        buffer(block)[: len(data)] = data
        return SharedBytes(block, len(data), self)

    def close(self) -> None:
        """Unlink the free blocks (a block still held is unlinked when given back)."""
        self.keep = 0
        while self._free:
            _unlink(self._free.pop())

    @property
    def made(self) -> int:
        """How many blocks were created so far (for tests and metrics)."""
        return self._made


class Writer:
    """Fills a block with bytes as they arrive, moving to a larger block when one is full; in
    plain memory instead when there are no ``blocks`` or /dev/shm has no room (then ``done``
    gives ``bytes``)."""

    def __init__(self, blocks: Blocks | None, expected: int | None) -> None:
        self.blocks = blocks
        self.block = blocks.take(expected or STEP) if blocks is not None else None
        self.chunks: list[bytes] | None = None if self.block is not None else []
        self.size = 0

    def write(self, chunk: bytes) -> None:
        end = self.size + len(chunk)
        if self.block is not None and end > self.block.size:
            assert self.blocks is not None  # a block comes from blocks
            bigger = self.blocks.take(max(end, 2 * self.block.size))
            if bigger is None:  # no room: go on in plain memory
                self.chunks = [bytes(buffer(self.block)[: self.size])]
            else:
                buffer(bigger)[: self.size] = buffer(self.block)[: self.size]
            self.blocks.give(self.block)
            self.block = bigger
        if self.chunks is not None:
            self.chunks.append(chunk)
        else:
            assert self.block is not None
            buffer(self.block)[self.size : end] = chunk
        self.size = end

    def done(self) -> SharedBytes | bytes:
        if self.chunks is not None:
            return b"".join(self.chunks)
        assert self.block is not None and self.blocks is not None
        block, self.block = self.block, None
        return SharedBytes(block, self.size, self.blocks)

    def abandon(self) -> None:
        if self.block is not None and self.blocks is not None:
            self.blocks.give(self.block)
            self.block = None


def buffer(block: SharedMemory) -> memoryview:
    """The block's memory (``buf`` is None only once the block is closed)."""
    assert block.buf is not None, "the block is closed"
    return block.buf


def attach(name: str) -> SharedMemory:
    """Open another process's block. Its owner unlinks it: this process must not at exit."""
    block = SharedMemory(name)
    resource_tracker.unregister(block._name, "shared_memory")  # type: ignore[attr-defined]
    return block


def _unlink(block: SharedMemory) -> None:
    with contextlib.suppress(BufferError):  # a view still open here: unmapped at exit
        block.close()
    with contextlib.suppress(FileNotFoundError):
        block.unlink()
