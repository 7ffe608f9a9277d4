"""Jobs for the process-pool tests, run inside spawned worker processes."""

from __future__ import annotations

import os
import time
from typing import Any


def init(threads: int, memory_limit: int = 0) -> None:
    from imgserver.runtime import execute

    execute.init(threads, memory_limit)


def execute(job: dict[str, Any], source: Any = None) -> dict[str, Any]:
    op = job["op"]
    if op == "crash":
        os._exit(3)
    if op == "sleep":
        time.sleep(job["seconds"])
    if op == "allocate":
        try:
            block = bytearray(job["bytes"])
        except MemoryError:
            return {"memory_error": True}
        return {"allocated": len(block)}
    if op == "digest":  # what the child received as the job's source
        import hashlib

        return {
            "sha256": hashlib.sha256(source).hexdigest(),
            "size": len(source),
            "view": isinstance(source, memoryview),
        }
    if op == "nice":  # the niceness of every thread, libvips' included, after some libvips work
        import pyvips

        pyvips.Image.black(500, 500).gaussblur(3).avg()
        tasks = os.listdir("/proc/self/task")
        return {"pid": os.getpid(), "nice": {_nice(f"/proc/self/task/{t}/stat") for t in tasks}}
    if op == "threads":
        import pyvips

        return {"threads": pyvips.concurrency_get(), "env": os.environ.get("VIPS_CONCURRENCY")}
    return {"pid": os.getpid(), "tag": job.get("tag"), "at": time.monotonic()}


def _nice(stat_path: str) -> int:
    """The niceness field of a /proc stat file (the 19th, counted after the command name)."""
    with open(stat_path) as f:
        return int(f.read().rsplit(")", 1)[1].split()[16])
