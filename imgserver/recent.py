"""Small in-process LRUs for the hit path: of cache-index entries in front of the index, and of
parsed requests in front of parsing.

Results are content-addressed and immutable, so an entry can only go stale by a purge (which
every frontend hears as an event and drops), by its result's lifetime running out (an entry is
not kept past it), or by its object vanishing from storage outside the service (hit checks find
that, and every frontend hears it as a purge); the time limit bounds how long that can go
unnoticed.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Hashable, Iterable
from typing import Generic, TypeVar

from .lifetime import Lifetime
from .messages import Entry

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Recent(Generic[K, V]):
    """At most ``size`` items (0: none), each trusted for ``ttl`` seconds."""

    def __init__(self, size: int, ttl: float = math.inf) -> None:
        self.size = size
        self.ttl = ttl
        self._items: OrderedDict[K, tuple[V, float]] = OrderedDict()

    def get(self, key: K) -> V | None:
        item = self._items.get(key)
        if item is None:
            return None
        if item[1] < time.monotonic():
            del self._items[key]
            return None
        self._items.move_to_end(key)
        return item[0]

    def put(self, key: K, entry: V, ttl: float | None = None) -> None:
        """Keep ``entry`` for ``ttl`` seconds (at most the cache's own ttl)."""
        if self.size <= 0:
            return
        ttl = self.ttl if ttl is None else min(ttl, self.ttl)
        self._items[key] = (entry, time.monotonic() + ttl)
        self._items.move_to_end(key)
        while len(self._items) > self.size:
            self._items.popitem(last=False)

    def drop(self, keys: Iterable[K]) -> None:
        for key in keys:
            self._items.pop(key, None)

    def __len__(self) -> int:
        return len(self._items)


class RecentEntries(Recent[str, Entry]):
    """Cache-index entries by cache key, none kept past its result's lifetime."""

    def __init__(self, size: int, ttl: float, lifetime: Lifetime | None = None) -> None:
        super().__init__(size, ttl)
        self.lifetime = lifetime or Lifetime()

    def put(self, key: str, entry: Entry, ttl: float | None = None) -> None:
        left = self.lifetime.left(entry.created_at)
        if left is not None:
            if left <= 0:
                return
            ttl = left if ttl is None else min(ttl, left)
        super().put(key, entry, ttl)
