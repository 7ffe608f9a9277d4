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

A block outlives a process killed with SIGKILL (or by the OOM killer): nothing unlinks it, and
a long-running host would fill its tmpfs. So every block is named ``imgserver-<owner PID>-<random>``
and its owner holds a shared ``flock`` on it for as long as the block is its; the kernel
drops that lock when the owner dies, however it dies. ``sweep`` unlinks the blocks nobody holds
a lock on (the pool sweeps at start and every minute). The lock, not the PID, says whether the
owner lives: a PID can be reused, or belong to another PID namespace sharing the same /dev/shm
(containers of one pod); the PID in the name is for people reading ``ls /dev/shm``.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
from dataclasses import dataclass, field
from multiprocessing.shared_memory import SharedMemory

STEP = 8 * 1024 * 1024  # block sizes are multiples of this
SHM_DIR = "/dev/shm"
HEADROOM = 16 * 1024 * 1024  # left free in SHM_DIR for others
PREFIX = "imgserver-"  # block names: PREFIX + the owner's PID + "-" + random hex
ATTEMPTS = 3  # names tried for a new block before giving up (a sweep took the first ones)


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
        they are first written, so a free block needs the room too) or none could be made."""
        if not room(size, self.directory):
            return None
        fits = [b for b in self._free if b.size >= size]
        if fits:
            block = min(fits, key=lambda b: b.size)
            self._free.remove(block)
            return block
        made = create(max(STEP, -(-size // STEP) * STEP))
        if made is not None:
            self._made += 1
        return made

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


def create(size: int) -> SharedMemory | None:
    """A new block of ``size`` bytes, named for this process and locked by it; None when none
    could be held (a sweep removing each new name before it was locked: in practice never)."""
    for _ in range(ATTEMPTS):
        name = f"{PREFIX}{os.getpid()}-{secrets.token_hex(8)}"
        block = SharedMemory(name, create=True, size=size)
        if _hold(block):
            return block
        _unlink(block)
    return None


def attach(name: str) -> SharedMemory:
    """Open the block of the process that started this one (an image process of the pool).

    Both share one resource tracker (``spawn`` hands the tracker's pipe down): registering
    the name again changes nothing, and the owner's ``unlink`` unregisters it. Unregistering
    here would make the tracker forget the owner's block, so that a killed owner's tracker
    left it behind instead of unlinking it."""
    return SharedMemory(name)


def sweep(directory: str = SHM_DIR) -> tuple[int, int]:
    """Unlink the blocks in ``directory`` whose owner died (nobody holds a lock on them):
    how many, and their bytes. Blocks of a live process, of whatever PID namespace, stay;
    so do those this process cannot open (another user's)."""
    count = size = 0
    try:
        names = os.listdir(directory)
    except OSError:
        return 0, 0
    for name in names:
        if name.startswith(PREFIX):
            freed = _remove_abandoned(os.path.join(directory, name))
            if freed is not None:
                count, size = count + 1, size + freed
    return count, size


def _hold(block: SharedMemory) -> bool:
    """Lock a new block as its owner's; False if a sweep took it between its creation and now
    (it holds the lock, or has unlinked the name already)."""
    fd: int = block._fd  # type: ignore[attr-defined]
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError:  # no locks on this filesystem: no sweep can remove it either
        return True
    return os.fstat(fd).st_nlink > 0


def _remove_abandoned(path: str) -> int | None:
    """Unlink the block at ``path`` if no process holds a lock on it: its size, else None."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:  # gone meanwhile, or not ours to open
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # its owner holds it (or no locks here: then leave it)
            return None
        size = os.fstat(fd).st_size
        try:
            os.unlink(path)
        except FileNotFoundError:
            return None
        return size
    finally:
        os.close(fd)  # and with it the lock


def _unlink(block: SharedMemory) -> None:
    with contextlib.suppress(BufferError):  # a view still open here: unmapped at exit
        block.close()
    with contextlib.suppress(FileNotFoundError):
        block.unlink()
