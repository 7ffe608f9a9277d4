"""Images: the record of one uploaded original and of what its compression task made of it.

An image's ``status`` mirrors its task's and, like a task's, only moves forward: once final
(completed, completed_with_errors or failed) the record no longer changes. The result
(``compressed_path``, ``compressed_size``) is copied onto the record when the task finishes, so
an image keeps it after its task record has expired (Redis keeps tasks ``task_ttl`` seconds).
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .names import ORIGINALS_PREFIX
from .tasks import FINAL, PENDING, STATUSES, iso

# tasks.new_id(): 12 hex digits of milliseconds, then 12 random ones. Fixed width, so ordering
# ids as strings orders images by creation time (to the millisecond, ties broken by the id).
IMAGE_ID = re.compile(r"^[0-9a-f]{24}$")


@dataclass
class Image:
    id: str
    task_id: str
    format: str  # the original's format, sniffed from its bytes
    size: int  # bytes of the original
    width: int | None = None  # as the original's header declares them; None: not known yet
    height: int | None = None
    status: str = PENDING  # the task's status, copied
    compressed_path: str | None = None  # storage path of the task's result
    compressed_size: int | None = None
    warnings: list[str] = field(default_factory=list)
    error: dict[str, Any] | None = None
    created_at: float = field(default_factory=time.time)
    updated_at: float = 0.0

    def __post_init__(self) -> None:
        self.updated_at = self.updated_at or self.created_at

    @property
    def original_path(self) -> str:
        return ORIGINALS_PREFIX + self.id

    @property
    def final(self) -> bool:
        return self.status in FINAL

    def to_record(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_record(cls, data: dict[str, Any]) -> Image:
        return cls(**{f.name: data[f.name] for f in dataclasses.fields(cls) if f.name in data})

    def to_json(self, url_for: Callable[[str], str]) -> dict[str, Any]:
        """The API's image object; ``url_for`` turns a storage path into a public URL."""
        return {
            "id": self.id,
            "original_url": url_for(self.original_path),
            "compressed_url": url_for(self.compressed_path) if self.compressed_path else None,
            "task_id": self.task_id,
            "format": self.format,
            "width": self.width,
            "height": self.height,
            "bytes": self.size,
            "compressed_bytes": self.compressed_size,
            "status": self.status,
            "warnings": self.warnings,
            "error": self.error,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
        }


def apply(image: Image, changes: dict[str, Any]) -> bool:
    """Apply changes unless the image is final or its status would go back; True if applied.

    ``changes`` is not modified; ``id`` and ``created_at`` cannot change.
    """
    status = changes.get("status", image.status)
    if status not in STATUSES:
        raise ValueError(f"unknown image status {status!r}")
    unknown = set(changes) - _MUTABLE
    if unknown:
        raise ValueError(f"unknown or read-only image field(s) {', '.join(sorted(unknown))}")
    if image.final or STATUSES.index(status) < STATUSES.index(image.status):
        return False
    for name, value in changes.items():
        setattr(image, name, value)
    image.updated_at = time.time()
    return True


_MUTABLE = frozenset(f.name for f in dataclasses.fields(Image)) - {"id", "created_at"}
