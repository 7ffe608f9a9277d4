"""The results lifetime's arithmetic: an index entry (and a cached redirect) never outlives
the object it points at, counted from the object's creation."""

from __future__ import annotations

import pytest

from imgserver.lifetime import DAY, Lifetime

NOW = 1_800_000_000.0


def test_forever_by_default() -> None:
    forever = Lifetime()
    assert forever.seconds == 0 and forever.longest_entry is None
    assert forever.left(0.0, NOW) is None
    assert not forever.expired(0.0, NOW)
    assert forever.entry_ttl(0.0, NOW) is None
    assert forever.max_age(3600, 0.0, NOW) == 3600


def test_an_index_ttl_alone_counts_from_now_as_before() -> None:
    ttl = Lifetime(index_ttl=600)
    assert ttl.longest_entry == 600
    assert ttl.entry_ttl(NOW - 10 * DAY, NOW) == 600  # objects live forever
    assert not ttl.expired(NOW - 10 * DAY, NOW)


@pytest.mark.parametrize(
    ("age", "ttl"),
    [
        (0.0, 2 * DAY),  # just made
        (0.4, 2 * DAY - 1),  # rounded down: never past the object
        (DAY, DAY),  # indexed again a day after the object was written
        (2 * DAY - 0.5, 0),  # less than a second left: not indexed
        (2 * DAY, 0),
        (3 * DAY, 0),
        (-5.0, 2 * DAY + 5),  # a clock ahead of ours: still counted from the object
    ],
)
def test_entry_ttl_counts_from_the_objects_creation(age: float, ttl: int) -> None:
    lifetime = Lifetime(days=2)
    assert lifetime.entry_ttl(NOW - age, NOW) == ttl
    assert lifetime.expired(NOW - age, NOW) == (age >= 2 * DAY)


def test_an_index_ttl_only_shortens_it() -> None:
    lifetime = Lifetime(days=2, index_ttl=3600)
    assert lifetime.longest_entry == 3600
    assert lifetime.entry_ttl(NOW, NOW) == 3600
    assert lifetime.entry_ttl(NOW - 2 * DAY + 100, NOW) == 100
    assert lifetime.entry_ttl(NOW - 2 * DAY, NOW) == 0


def test_a_redirect_is_not_cached_past_its_object() -> None:
    lifetime = Lifetime(days=1)
    assert lifetime.max_age(3600, NOW, NOW) == 3600
    assert lifetime.max_age(3600, NOW - DAY + 100.7, NOW) == 100
    assert lifetime.max_age(3600, NOW - DAY - 1, NOW) == 0
