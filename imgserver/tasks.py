"""Tasks: the record of one background job (a prefetch or an upload), and its statuses.

Statuses move forward only: pending -> processing -> completed | completed_with_errors | failed.
A redelivered job may repeat processing, but a final status is never left.
"""

from __future__ import annotations

import dataclasses
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

PENDING = "pending"
PROCESSING = "processing"
COMPLETED = "completed"
COMPLETED_WITH_ERRORS = "completed_with_errors"
FAILED = "failed"
STATUSES = (PENDING, PROCESSING, COMPLETED, COMPLETED_WITH_ERRORS, FAILED)
FINAL = frozenset({COMPLETED, COMPLETED_WITH_ERRORS, FAILED})
TIMING_STEPS = ("queued", "started", "fetched", "processed", "stored")


def new_id() -> str:
    """A URL-safe random id, sortable by creation time (time prefix + randomness)."""
    return f"{time.time_ns() // 1_000_000:012x}{secrets.token_hex(6)}"


@dataclass
class Task:
    id: str
    graph: str
    input: str
    params: dict[str, Any]
    format: str
    key: str
    digest: str  # of the graph definition the key was made with
    status: str = PENDING
    image_id: str | None = None
    result_path: str | None = None
    error: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)
    created_at: float = field(default_factory=time.time)
    updated_at: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.updated_at = self.updated_at or self.created_at
        self.timings.setdefault("queued", self.created_at)

    @property
    def final(self) -> bool:
        return self.status in FINAL

    def to_record(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_record(cls, data: dict[str, Any]) -> Task:
        return cls(**{f.name: data[f.name] for f in dataclasses.fields(cls) if f.name in data})

    def to_json(self, url_for: Callable[[str], str]) -> dict[str, Any]:
        """The API's task object; ``url_for`` turns a storage path into a public URL."""
        return {
            "id": self.id,
            "image_id": self.image_id,
            "graph": self.graph,
            "input": self.input,
            "params": self.params,
            "format": self.format,
            "status": self.status,
            "status_url": f"/tasks/{self.id}/status",
            "result_url": url_for(self.result_path) if self.result_path else None,
            "error": self.error,
            "warnings": self.warnings,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
            "timings": {k: iso(v) for k, v in self.timings.items()},
        }


def apply(task: Task, changes: dict[str, Any]) -> bool:
    """Apply changes to a task unless it would leave a final status or go back; True if applied.

    ``changes`` is not modified.
    """
    status = changes.get("status", task.status)
    if status not in STATUSES:
        raise ValueError(f"unknown task status {status!r}")
    unknown = set(changes) - _FIELDS
    if unknown:
        raise ValueError(f"unknown task field(s) {', '.join(sorted(unknown))}")
    if task.final or STATUSES.index(status) < STATUSES.index(task.status):
        return False
    for name, value in changes.items():
        if name != "timings":
            setattr(task, name, value)
    task.timings.update(changes.get("timings") or {})
    task.updated_at = time.time()
    return True


_FIELDS = frozenset(f.name for f in dataclasses.fields(Task))


def iso(ts: float) -> str:
    """A Unix time as ISO 8601 UTC with milliseconds, as the API writes times."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1000):03d}Z"
