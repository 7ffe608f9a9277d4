"""How long results live, and the one arithmetic every part derives from it.

A result is an object in storage and an entry in the cache index. With a results lifetime
(``IMGSERVER_RESULTS_LIFETIME``, whole days because S3's lifecycle rules count in days) the
object expires ``days`` after it was written (S3: a lifecycle rule, put by ``backends/s3.py``;
local files: a sweep, ``backends/local_storage.py``), and its index entry is made to expire no
later: an entry's time to live is counted from the object's creation time (``Entry.created_at``:
taken before the object was written, or an existing object's modification time), never from
when the entry was written. So an entry written again long after its object (re-indexed from
storage by a worker) cannot outlive it. S3 expires an object at the first midnight (UTC) after
``days`` have passed, so it outlives its entry by up to a day.

``index_ttl`` (``IMGSERVER_INDEX_TTL``, seconds) may only shorten an entry's life: entries then
expire earlier, and a worker finds the object in storage again instead of recomputing it.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

DAY = 86400  # seconds


@dataclass(frozen=True)
class Lifetime:
    """``days`` a result lives (0: forever) and ``index_ttl`` seconds an index entry lives at
    most (0: as long as its result)."""

    days: int = 0
    index_ttl: int = 0

    @property
    def seconds(self) -> int:
        """The results lifetime in seconds; 0: forever."""
        return self.days * DAY

    @property
    def longest_entry(self) -> int | None:
        """Seconds an index entry written now may live at most; None: forever."""
        limits = [s for s in (self.index_ttl, self.seconds) if s > 0]
        return min(limits) if limits else None

    def left(self, created_at: float, now: float | None = None) -> float | None:
        """Seconds a result created at ``created_at`` has left (negative once expired);
        None: it lives forever."""
        if not self.days:
            return None
        return created_at + self.seconds - (time.time() if now is None else now)

    def expired(self, created_at: float, now: float | None = None) -> bool:
        left = self.left(created_at, now)
        return left is not None and left <= 0

    def entry_ttl(self, created_at: float, now: float | None = None) -> int | None:
        """Whole seconds an index entry of a result created at ``created_at`` may live from
        ``now``: never past its result's expiry (rounded down), nor over ``index_ttl``.
        None: forever; 0: the result has expired, do not index it."""
        ttl = self.index_ttl or None
        left = self.left(created_at, now)
        if left is not None:
            whole = max(0, math.floor(left))
            ttl = whole if ttl is None else min(ttl, whole)
        return ttl

    def max_age(self, limit: int, created_at: float, now: float | None = None) -> int:
        """A ``Cache-Control`` max-age for a redirect to the result: ``limit``, but not past the
        result's expiry (a cached redirect must not outlive its object)."""
        left = self.left(created_at, now)
        return limit if left is None else max(0, min(limit, math.floor(left)))
