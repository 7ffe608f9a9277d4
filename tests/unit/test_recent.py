"""The frontend's LRU of recent index entries."""

from __future__ import annotations

import time

from imgserver.messages import Entry
from imgserver.recent import RecentEntries


def entry(n: int) -> Entry:
    return Entry(f"results/{n}", "image/jpeg", n, 1, 1)


def test_bounded_least_recently_used() -> None:
    r = RecentEntries(size=2, ttl=60)
    r.put("a", entry(1))
    r.put("b", entry(2))
    assert r.get("a") == entry(1)  # a is now the most recent
    r.put("c", entry(3))
    assert (r.get("a"), r.get("b"), r.get("c")) == (entry(1), None, entry(3))
    assert len(r) == 2


def test_entries_expire_and_can_be_dropped(monkeypatch) -> None:
    r = RecentEntries(size=10, ttl=5)
    now = time.monotonic()
    monkeypatch.setattr(time, "monotonic", lambda: now)
    r.put("a", entry(1))
    r.put("b", entry(2))
    r.drop(["b", "missing"])
    assert r.get("b") is None and r.get("a") == entry(1)
    monkeypatch.setattr(time, "monotonic", lambda: now + 6)
    assert r.get("a") is None and len(r) == 0


def test_size_zero_keeps_nothing() -> None:
    r = RecentEntries(size=0, ttl=5)
    r.put("a", entry(1))
    assert r.get("a") is None


def test_without_a_time_limit_items_stay_until_pushed_out() -> None:
    from imgserver.recent import Recent

    r: Recent[tuple[str, str], int] = Recent(size=2)
    r.put(("a", ""), 1)
    r.put(("b", ""), 2)
    assert r.get(("a", "")) == 1  # a is now the most recent
    r.put(("c", ""), 3)
    assert r.get(("b", "")) is None
    assert (r.get(("a", "")), r.get(("c", ""))) == (1, 3)


def test_an_entry_is_not_kept_past_its_results_lifetime(monkeypatch) -> None:
    from imgserver.lifetime import DAY, Lifetime

    r = RecentEntries(size=10, ttl=60, lifetime=Lifetime(days=1))
    clock = time.monotonic()
    monkeypatch.setattr(time, "monotonic", lambda: clock)
    made = time.time()
    r.put("young", Entry("results/y", "image/jpeg", 1, 1, 1, created_at=made))
    r.put("ending", Entry("results/e", "image/jpeg", 1, 1, 1, created_at=made - DAY + 5))
    r.put("over", Entry("results/o", "image/jpeg", 1, 1, 1, created_at=made - DAY - 5))
    assert r.get("over") is None
    assert r.get("ending") is not None and r.get("young") is not None
    monkeypatch.setattr(time, "monotonic", lambda: clock + 10)  # its result expired meanwhile
    assert r.get("ending") is None and r.get("young") is not None
