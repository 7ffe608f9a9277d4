"""The records the service keeps: a task (one background job: a prefetch or an upload's
compression) and an image record (one uploaded original, and what its task made of it).

Both have a status that moves forward only, pending -> processing -> completed |
completed_with_errors | failed, and never leaves a final one: :func:`advance` is the one
transition rule, used by every store. A redelivered job may repeat ``processing``; a change that
would go back, or touch a final record, is refused. An image record mirrors its task's status,
and keeps the result (``compressed_path``, ``compressed_size``) after the task record expires.

Records are stored as JSON (``encode``/``decode_task``/``decode_image``); fields a newer writer
added are ignored, missing ones take their defaults.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Annotated, Any, ClassVar, Literal

import msgspec

from .errors import Failure
from .names import ORIGINALS_PREFIX

PENDING = "pending"
PROCESSING = "processing"
COMPLETED = "completed"
COMPLETED_WITH_ERRORS = "completed_with_errors"
FAILED = "failed"
STATUSES = (PENDING, PROCESSING, COMPLETED, COMPLETED_WITH_ERRORS, FAILED)
FINAL = frozenset({COMPLETED, COMPLETED_WITH_ERRORS, FAILED})
SUCCEEDED = frozenset({COMPLETED, COMPLETED_WITH_ERRORS})
TIMING_STEPS = ("queued", "started", "fetched", "processed", "stored")

# new_id(): 12 hex digits of milliseconds, then 12 random ones. Fixed width, so ordering ids as
# strings orders records by creation time (to the millisecond, ties broken by the id).
RECORD_ID = re.compile(r"^[0-9a-f]{24}$")

# A graph parameter's value, once typed.
ParamValue = bool | int | float | str
Params = dict[str, ParamValue]
UrlFor = Callable[[str], str]  # a storage path -> its public URL


def new_id() -> str:
    """A URL-safe random id, sortable by creation time (time prefix + randomness)."""
    return f"{time.time_ns() // 1_000_000:012x}{secrets.token_hex(6)}"


def iso(ts: float) -> str:
    """A Unix time as ISO 8601 UTC with milliseconds, as the API writes times."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1000):03d}Z"


class Task(msgspec.Struct):
    id: str
    graph: str
    input: str
    params: Params
    format: str
    key: str
    digest: str  # of the graph definition the key was made with
    status: str = PENDING
    image_id: str | None = None
    result_path: str | None = None
    error: Failure | None = None
    warnings: list[str] = []
    created_at: float = msgspec.field(default_factory=time.time)
    updated_at: float = 0.0
    timings: dict[str, float] = {}

    READ_ONLY: ClassVar[frozenset[str]] = frozenset({"id", "created_at"})
    MERGED: ClassVar[frozenset[str]] = frozenset({"timings"})  # a change adds to it

    def __post_init__(self) -> None:
        self.updated_at = self.updated_at or self.created_at
        self.timings.setdefault("queued", self.created_at)

    @property
    def final(self) -> bool:
        return self.status in FINAL

    def to_json(self, url_for: UrlFor) -> dict[str, Any]:
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
            "error": self.error.to_api() if self.error else None,
            "warnings": self.warnings,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
            "timings": {k: iso(v) for k, v in self.timings.items()},
        }


class ImageRecord(msgspec.Struct):
    id: str
    task_id: str
    format: str  # the original's format, sniffed from its bytes
    size: int  # bytes of the original
    width: int | None = None  # as the original's header declares them; None: not known yet
    height: int | None = None
    status: str = PENDING  # the task's status, copied
    compressed_path: str | None = None  # storage path of the task's result
    compressed_size: int | None = None
    warnings: list[str] = []
    error: Failure | None = None
    created_at: float = msgspec.field(default_factory=time.time)
    updated_at: float = 0.0

    READ_ONLY: ClassVar[frozenset[str]] = frozenset({"id", "created_at"})
    MERGED: ClassVar[frozenset[str]] = frozenset()

    def __post_init__(self) -> None:
        self.updated_at = self.updated_at or self.created_at

    @property
    def final(self) -> bool:
        return self.status in FINAL

    @property
    def original_path(self) -> str:
        return ORIGINALS_PREFIX + self.id

    def to_json(self, url_for: UrlFor) -> dict[str, Any]:
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
            "error": self.error.to_api() if self.error else None,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
        }


Record = Task | ImageRecord


# The API's task and image objects (what ``to_json`` returns), as types: the OpenAPI description
# (``openapi.py``) takes their JSON Schema from these, and a test holds ``to_json`` to them.
Status = Literal["pending", "processing", "completed", "completed_with_errors", "failed"]
TimingStep = Literal["queued", "started", "fetched", "processed", "stored"]
Time = Annotated[str, msgspec.Meta(extra_json_schema={"format": "date-time"})]  # as iso() writes


class ErrorObject(msgspec.Struct, forbid_unknown_fields=False):
    """The ``error`` of an error body, and of a failed task or image: ``code``, ``message``,
    and details that depend on the code (e.g. ``param`` and ``params`` for invalid_param)."""

    code: str
    message: str


class TaskView(msgspec.Struct):
    """A task (``GET /tasks/{id}``): one background job, a prefetch or an upload's compression."""

    id: str
    image_id: str | None
    graph: str
    input: str
    params: dict[str, bool | int | float | str]
    format: str
    status: Status
    status_url: str
    result_url: str | None
    error: ErrorObject | None
    warnings: list[str]
    created_at: Time
    updated_at: Time
    timings: dict[TimingStep, Time]


class ImageView(msgspec.Struct):
    """An uploaded image (``GET /images/{id}``) and what its task made of it."""

    id: str
    original_url: str
    compressed_url: str | None
    task_id: str
    format: str
    width: int | None
    height: int | None
    bytes: int
    compressed_bytes: int | None
    status: Status
    warnings: list[str]
    error: ErrorObject | None
    created_at: Time
    updated_at: Time


def advance(record: Record, changes: Mapping[str, Any]) -> bool:
    """The one transition rule of both records: apply ``changes`` unless the record is final
    or its status would go back; True if applied (``updated_at`` is then now). ``changes`` is
    not modified. ValueError for an unknown status, a field that does not exist or may not
    change, or a value of the wrong type (each is checked against its field's type)."""
    kind = "task" if isinstance(record, Task) else "image"
    status = changes.get("status", record.status)
    if status not in STATUSES:
        raise ValueError(f"unknown {kind} status {status!r}")
    unknown = set(changes) - (set(record.__struct_fields__) - record.READ_ONLY)
    if unknown:
        raise ValueError(f"unknown or read-only {kind} field(s) {', '.join(sorted(unknown))}")
    if record.final or STATUSES.index(status) < STATUSES.index(record.status):
        return False
    types = _FIELD_TYPES[type(record)]
    try:
        typed = {name: msgspec.convert(value, types[name]) for name, value in changes.items()}
    except msgspec.ValidationError as exc:
        raise ValueError(f"a {kind} change of the wrong type: {exc}") from None
    for name, value in typed.items():
        if name in record.MERGED:
            getattr(record, name).update(value or {})
        else:
            setattr(record, name, value)
    record.updated_at = time.time()
    return True


# The type of each field of each record, for the changes advance() applies.
_FIELD_TYPES: Mapping[type, Mapping[str, Any]] = MappingProxyType(
    {
        cls: MappingProxyType({f.name: f.type for f in msgspec.structs.fields(cls)})
        for cls in (Task, ImageRecord)
    }
)


_TASKS = msgspec.json.Decoder(Task)
_IMAGES = msgspec.json.Decoder(ImageRecord)
_ENCODER = msgspec.json.Encoder()


def encode(record: Record) -> bytes:
    """A record as stored (JSON)."""
    return _ENCODER.encode(record)


def decode_task(data: bytes | str) -> Task:
    return _TASKS.decode(data)


def decode_image(data: bytes | str) -> ImageRecord:
    return _IMAGES.decode(data)
