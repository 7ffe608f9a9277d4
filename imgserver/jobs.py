"""A job: the unit of work a frontend hands to the workers, and what it produced (Entry)."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any

import msgpack

from .errors import ImgServerError
from .request import ImageRequest


@dataclass(frozen=True)
class Job:
    """Everything a worker needs: the source is fetched by the worker, never sent along."""

    key: str
    graph: str
    digest: str
    format: str
    input: str
    params: dict[str, Any]
    task_id: str | None = None
    nocache: bool = False
    queued_at: float = field(default_factory=time.time)
    attempt: int = 0

    @classmethod
    def for_request(cls, req: ImageRequest, task_id: str | None = None) -> Job:
        return cls(
            req.key,
            req.graph.name,
            req.graph.digest,
            req.format,
            req.input,
            dict(req.params),
            task_id,
            req.nocache,
        )

    def to_bytes(self) -> bytes:
        packed: bytes = msgpack.packb(dataclasses.asdict(self), use_bin_type=True)
        return packed

    @classmethod
    def from_bytes(cls, data: bytes) -> Job:
        fields = msgpack.unpackb(data, raw=False)
        return cls(**{f.name: fields[f.name] for f in dataclasses.fields(cls) if f.name in fields})


@dataclass(frozen=True)
class Entry:
    """A stored result, as the cache index records it."""

    path: str  # storage path
    content_type: str
    size: int
    width: int
    height: int
    input: str = ""
    created_at: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Entry:
        return cls(**{f.name: data[f.name] for f in dataclasses.fields(cls) if f.name in data})


def job_event(
    key: str,
    entry: Entry | None = None,
    error: ImgServerError | None = None,
    cached: bool = False,
) -> dict:
    """A job's outcome; ``cached``: the result already existed (nothing was computed)."""
    if error is not None:
        return {"type": "job", "key": key, "ok": False, "error": error.to_dict()}
    assert entry is not None
    return {"type": "job", "key": key, "ok": True, "entry": entry.to_dict(), "cached": cached}
