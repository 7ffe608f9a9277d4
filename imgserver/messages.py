"""Every message that crosses a boundary, typed, with the one encoding each boundary uses.

- The broker's job message (frontend -> worker role): :class:`Job`, msgpack
  (:func:`encode_job` / :func:`decode_job`, which refuses bytes that are not a job).
- The event bus (any process -> every frontend): :data:`Event`, one of :class:`JobDone`,
  :class:`JobFailed`, :class:`TaskChanged`, :class:`ImageChanged`, :class:`Purged`; JSON with a
  ``type`` tag (:func:`encode_event` / :func:`decode_event`). The in-process bus passes the
  objects themselves.
- The worker process (worker role -> image process and back): :class:`RenderJob`, answered by
  :class:`Rendered` or :class:`RenderFailed` (the pool pickles them through its pipe; the
  source's bytes travel beside the job, in shared memory when they are large).
- The cache index's entry, :class:`Entry`, carried by :class:`JobDone` and stored as JSON.
"""

from __future__ import annotations

import time

import msgspec

from .errors import Failure
from .graphdef import Definition
from .records import ImageRecord, Params, Task


class Entry(msgspec.Struct, frozen=True):
    """A stored result, as the cache index records it."""

    path: str  # storage path
    content_type: str
    size: int
    width: int
    height: int
    input: str = ""
    created_at: float = 0.0
    quality: int | None = None  # the quality a lossy format was encoded at (X-Quality)
    quality_note: str = ""  # quality=auto: "target-not-reached" when it is (X-Quality)


class Job(msgspec.Struct, frozen=True):
    """Everything a worker needs: the source is fetched by the worker, never sent along."""

    key: str
    graph: str
    digest: str
    format: str
    input: str
    params: Params
    task_id: str | None = None
    nocache: bool = False
    queued_at: float = msgspec.field(default_factory=time.time)
    attempt: int = 0
    inner: Job | None = None  # a chained input: the job whose result is this one's source
    # when it first failed for a transient reason: its retry budget runs from then
    failing_since: float | None = None
    # decided: the job failed with this; only its task record is left to write (worker._fail)
    failure: Failure | None = None
    lease: str = ""  # the token of its publisher's in-flight lease on the key; '': none
    request_id: str = ""  # the X-Request-Id of the request that queued it (logs.py); '': none


# -- the event bus ------------------------------------------------------------------------------


class JobDone(msgspec.Struct, frozen=True, tag="job_done"):
    """A job's result is stored; ``cached``: it existed already (nothing was computed)."""

    key: str
    entry: Entry
    cached: bool = False


class JobFailed(msgspec.Struct, frozen=True, tag="job_failed"):
    key: str
    error: Failure


class TaskChanged(msgspec.Struct, frozen=True, tag="task"):
    task: Task


class ImageChanged(msgspec.Struct, frozen=True, tag="image"):
    image: ImageRecord


class Purged(msgspec.Struct, frozen=True, tag="purge"):
    """These results were dropped: no frontend may keep serving them from memory."""

    keys: list[str]


JobOutcome = JobDone | JobFailed
Event = JobDone | JobFailed | TaskChanged | ImageChanged | Purged


# -- the worker process -------------------------------------------------------------------------


class Limits(msgspec.Struct, frozen=True):
    """The limits a worker process enforces while running a job (from settings)."""

    max_source_pixels: int
    max_output_pixels: int
    max_frames: int


class RenderJob(msgspec.Struct, frozen=True):
    """One graph to run on one source (whose bytes travel beside the job)."""

    graph: str
    definition: Definition
    params: Params
    format: str  # an output format name, or formats.AUTO
    source_format: str  # sniffed from the source's bytes
    limits: Limits
    assets: dict[str, bytes] = {}  # other images the graph reads (a watermark), by URL


class Rendered(msgspec.Struct, tag="rendered"):
    data: bytes
    format: str
    width: int
    height: int
    frames: int = 1
    warnings: list[str] = []
    quality: int | None = None  # the quality a lossy format was encoded at
    quality_note: str = ""  # quality=auto: "target-not-reached" when it is


class RenderFailed(msgspec.Struct, frozen=True, tag="render_failed"):
    error: Failure


RenderOutcome = Rendered | RenderFailed


# -- encodings ----------------------------------------------------------------------------------

_MSGPACK = msgspec.msgpack.Encoder()
_JSON = msgspec.json.Encoder()
_JOBS = msgspec.msgpack.Decoder(Job)
_EVENTS = msgspec.json.Decoder(Event)
_ENTRIES = msgspec.json.Decoder(Entry)
_FAILURES = msgspec.json.Decoder(Failure)

DecodeError = msgspec.DecodeError  # what the decoders raise for bytes that are not the message


def encode_job(job: Job) -> bytes:
    return _MSGPACK.encode(job)


def decode_job(data: bytes) -> Job:
    """The job in ``data``; DecodeError when it is not one (untrusted bytes from the broker)."""
    return _JOBS.decode(data)


def encode_event(event: Event) -> bytes:
    return _JSON.encode(event)


def decode_event(data: bytes | str) -> Event:
    """The event in ``data``; DecodeError when it is not one."""
    return _EVENTS.decode(data)


def encode_entry(entry: Entry) -> bytes:
    return _JSON.encode(entry)


def decode_entry(data: bytes | str) -> Entry:
    return _ENTRIES.decode(data)


def encode_failure(failure: Failure) -> bytes:
    return _JSON.encode(failure)


def decode_failure(data: bytes | str) -> Failure:
    return _FAILURES.decode(data)
