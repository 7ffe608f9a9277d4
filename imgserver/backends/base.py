"""The backend interfaces. Each has an embedded implementation (``local_storage.py``,
``sqlite.py``, ``memory.py``) and a real one (``s3.py``, ``redis/``, ``amqp.py``); everything
above them is the same in both modes, and one contract test suite per interface runs against
both.

Every backend is an async context manager: entering it opens it (connects, creates, checks),
leaving it closes it; ``open_backends`` (``__init__.py``) enters them all on one
``AsyncExitStack``. Every backend answers ``ping()`` (``/readyz`` asks each one). Real
implementations translate their client's connection errors into ``errors.Unavailable`` at this
boundary, so a backend that is down answers 503 ``unavailable``, never 500.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from types import TracebackType
from typing import Any, NamedTuple, Protocol, Self

from ..errors import Failure
from ..lifecycle import Managed as Managed
from ..messages import Entry, Event, Job
from ..records import ImageRecord, Task


class Lifecycle(Protocol):
    """Opened by ``async with``, closed when the block ends; ``ping`` says it answers."""

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def ping(self) -> None:
        """Return if the backend answers; raise (Unavailable) if it does not."""
        ...


@dataclass(frozen=True)
class StoredObject:
    data: bytes
    content_type: str


class ObjectHead(NamedTuple):
    """What storage says of an object without reading it."""

    content_type: str
    size: int
    modified: float  # when it was last written (Unix time; S3: whole seconds, rounded down)


class Storage(Lifecycle, Protocol):
    """Blob storage for results and uploaded originals. With a results lifetime
    (``settings.lifetime``), results (``names.RESULTS_PREFIX``) expire that long after they were
    written: S3 by the bucket's lifecycle rule, local files by a sweep."""

    async def put(self, path: str, data: bytes, content_type: str) -> None: ...

    async def get(self, path: str) -> StoredObject | None: ...

    async def head(self, path: str) -> ObjectHead | None:
        """Type, size and modification time of a stored object, or None."""
        ...

    async def delete(self, path: str) -> None: ...

    def url(self, path: str, base: str) -> str:
        """The public URL of a stored object; ``base`` is the service's own origin."""
        ...


class CacheIndex(Lifecycle, Protocol):
    """Which results exist: cache key -> Entry. With a results lifetime (``settings.lifetime``)
    an entry expires with its result, counted from ``Entry.created_at`` (``lifetime.py``)."""

    async def get(self, key: str) -> Entry | None:
        """The entry, or None (also when its result has expired)."""
        ...

    async def set(self, key: str, entry: Entry) -> None:
        """Index ``entry`` until its result expires (an expired one is not indexed)."""
        ...

    async def delete(self, key: str) -> None: ...

    async def keys_for_input(self, source: str) -> list[str]: ...

    # The failure memory (``IMGSERVER_FAILURE_TTL``): a failed source is answered at once, by
    # every frontend, until its memory expires. A failure is kept under a scope
    # (``names.source_scope``: every request of a source; ``names.result_scope``: one cache
    # key) and filed under the input it concerns, so ``forget_failures`` drops them all.

    async def remember_failure(self, scope: str, failure: Failure, ttl: float, source: str) -> None:
        """Keep ``failure`` under ``scope`` for ``ttl`` seconds (replacing one kept there)."""
        ...

    async def failure(self, scopes: Sequence[str]) -> Failure | None:
        """A failure still kept under one of ``scopes`` (the first of them that has one)."""
        ...

    async def forget_failures(self, source: str) -> int:
        """Drop every failure filed under ``source``; how many were kept."""
        ...


class TaskStore(Lifecycle, Protocol):
    async def create(self, task: Task, lease: float | None = None) -> None:
        """Store a new task. With ``lease``, the record is provisional: it is gone (``get`` and
        ``update`` find nothing, ``unfinished`` leaves it out) after ``lease`` seconds, unless
        an ``update`` (an empty one confirms it) is applied to it first."""
        ...

    async def get(self, task_id: str) -> Task | None: ...

    async def update(self, task_id: str, changes: Mapping[str, Any]) -> Task | None:
        """Apply ``changes`` (see records.advance); the task after, or None if there is none."""
        ...

    async def unfinished(self) -> list[Task]: ...


class ImageStore(Lifecycle, Protocol):
    """Uploaded images' records, listed newest first (by id: ids sort by creation time)."""

    async def create(self, image: ImageRecord) -> None: ...

    async def get(self, image_id: str) -> ImageRecord | None: ...

    async def list_page(self, limit: int, before: str | None = None) -> list[ImageRecord]:
        """Up to ``limit`` images, newest first, only those whose id sorts below ``before``."""
        ...

    async def update(self, image_id: str, changes: Mapping[str, Any]) -> ImageRecord | None:
        """Apply ``changes`` (see records.advance); the image after, or None if there is none."""
        ...

    async def delete(self, image_id: str) -> None: ...


class Delivery(Protocol):
    job: Job
    redelivered: bool  # delivered before and not acknowledged (e.g. its worker died)

    async def ack(self) -> None: ...

    async def reject(self, requeue: bool) -> None: ...


class Broker(Lifecycle, Protocol):
    """Job queues by role name (names.URGENT, names.BACKGROUND). Delivery is at least once:
    a job not acknowledged (its worker died) is delivered again."""

    async def publish(self, queue: str, job: Job, delay: float = 0.0) -> None:
        """Queue ``job`` (persistently, confirmed by the broker); after ``delay`` seconds if set."""
        ...

    async def dead_letter(self, queue: str, job: Job, error: Failure) -> None:
        """Park a job that used up its attempts (with the last error) for operators."""
        ...

    def consume(self, queue: str, prefetch: int) -> AsyncIterator[Delivery]:
        """Deliveries from ``queue``; at most ``prefetch`` unacknowledged at a time."""
        ...

    async def depth(self, queue: str) -> int: ...


class InFlight(Lifecycle, Protocol):
    """In-flight leases, shared by every frontend and worker: who answers for the job of which
    key right now (the coordinator's docstring tells who holds one when, and who takes over).

    A lease is held by a token (any non-empty string, unique to its holder) and lapses ``ttl``
    seconds after it was last taken or renewed; only its holder renews or releases it."""

    async def claim(self, key: str, token: str, ttl: float, succeeding: str = "") -> bool:
        """Take the lease on ``key`` for ``token``, for ``ttl`` s from now, if no one holds it
        (or its lease lapsed), if ``token`` already holds it (then this renews it), or if
        ``succeeding`` holds it (a hand-over). True if ``token`` holds it now."""
        ...

    async def renew(self, key: str, token: str, ttl: float) -> bool:
        """Extend ``token``'s lease on ``key`` to ``ttl`` s from now; False, and nothing is
        changed, if ``token`` does not hold it (it lapsed, was released or taken over)."""
        ...

    async def holder(self, key: str) -> str | None:
        """The token holding the lease on ``key``, or None."""
        ...

    async def release(self, key: str, token: str) -> None:
        """End ``token``'s lease on ``key``; a lease another token holds is left alone."""
        ...


class EventBus(Lifecycle, Protocol):
    """Broadcast of job outcomes, task and image changes and purges to every frontend."""

    async def publish(self, event: Event) -> None: ...

    def subscribe(self) -> AbstractAsyncContextManager[AsyncIterator[Event]]: ...


class Quotas(Lifecycle, Protocol):
    """Processing quotas of API keys: how many results each key has had computed. Atomic
    across processes; counts never reset by themselves."""

    async def spend(self, name: str, limit: int) -> bool:
        """Count one computation for key ``name``; False (nothing counted) if over ``limit``."""
        ...

    async def used(self, name: str) -> int: ...


@dataclass(frozen=True)
class Backends:
    storage: Storage
    index: CacheIndex
    tasks: TaskStore
    images: ImageStore
    broker: Broker
    events: EventBus
    inflight: InFlight
    quotas: Quotas
    embedded: bool  # the broker is in-process: this process must run the workers too

    def components(self) -> dict[str, Lifecycle]:
        """Every backend, by the name ``/readyz`` reports it under."""
        return {
            "storage": self.storage,
            "index": self.index,
            "tasks": self.tasks,
            "images": self.images,
            "broker": self.broker,
            "events": self.events,
            "inflight": self.inflight,
            "quotas": self.quotas,
        }
