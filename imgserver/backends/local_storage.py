"""The embedded storage: objects as files in a local directory, sharded by the first two
characters of their name, written atomically (a reader sees the whole file or none).

With a results lifetime, results expire as S3's lifecycle rule makes them: ``sweep`` (run by the
app at start-up, then periodically) deletes the result files last written longer ago than the
lifetime. The index never points at them by then (``lifetime.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import time
from pathlib import Path

from ..formats import mime_of, sniff_result
from ..lifetime import Lifetime
from ..names import RESULTS_PREFIX
from .base import Managed, ObjectHead, StoredObject


class LocalStorage(Managed):
    """Objects as files under ``root``; served by the app at ``/{path}`` (``web/storage.py``)."""

    def __init__(self, root: Path, lifetime: Lifetime | None = None) -> None:
        self.root = root
        self.lifetime = lifetime or Lifetime()

    def file(self, path: str) -> Path:
        """The file of a storage path, sharded: results/ab/abcdef..."""
        prefix, _, name = path.rpartition("/")
        if not name or name.startswith(".") or ".." in path or "\\" in path:
            raise ValueError(f"bad storage path {path!r}")
        return self.root / prefix / name[:2] / name

    async def put(self, path: str, data: bytes, content_type: str) -> None:
        await asyncio.to_thread(self._write, self.file(path), data)

    @staticmethod
    def _write(target: Path, data: bytes) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, target)  # readers see the whole file or none
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    async def get(self, path: str) -> StoredObject | None:
        try:
            data = await asyncio.to_thread(self.file(path).read_bytes)
        except (FileNotFoundError, ValueError):
            return None
        return StoredObject(data, content_type_of(data))

    async def head(self, path: str) -> ObjectHead | None:
        return await asyncio.to_thread(self._head, path)

    def _head(self, path: str) -> ObjectHead | None:
        try:
            target = self.file(path)
            with target.open("rb") as f:
                head = f.read(64)
                stat = os.fstat(f.fileno())
            return ObjectHead(content_type_of(head), stat.st_size, stat.st_mtime)
        except (FileNotFoundError, ValueError):
            return None

    async def delete(self, path: str) -> None:
        with contextlib.suppress(FileNotFoundError, ValueError):
            await asyncio.to_thread(self.file(path).unlink)

    def url(self, path: str, base: str) -> str:
        return f"{base.rstrip('/')}/{path}"

    async def open(self) -> None:
        await self.ping()  # a directory that cannot be written to stops start-up, clearly

    async def sweep(self, now: float | None = None) -> int:
        """Delete the result files last written longer ago than the results lifetime (none
        without one); how many."""
        if not self.lifetime.days:
            return 0
        before = (time.time() if now is None else now) - self.lifetime.seconds
        return await asyncio.to_thread(self._sweep, self.root / RESULTS_PREFIX, before)

    @staticmethod
    def _sweep(results: Path, before: float) -> int:
        swept = 0
        shards = [p for p in results.iterdir() if p.is_dir()] if results.is_dir() else []
        for shard in shards:
            with os.scandir(shard) as items:
                for item in items:
                    with contextlib.suppress(FileNotFoundError):  # deleted meanwhile
                        if item.is_file(follow_symlinks=False) and item.stat().st_mtime < before:
                            os.unlink(item.path)
                            swept += 1
        return swept

    async def ping(self) -> None:
        await asyncio.to_thread(self._ping)

    def _ping(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if not os.access(self.root, os.W_OK):
            raise OSError(f"{self.root} is not writable")


def content_type_of(head: bytes) -> str:
    fmt = sniff_result(head)
    return mime_of(fmt) if fmt else "application/octet-stream"
