"""The retry arithmetic (retries.py): backoff, the budgets, and that the defaults ride out a
60 s outage of a backend while an urgent job never retries past its requester's deadline."""

from __future__ import annotations

import msgspec
import pytest

from imgserver.errors import Failure
from imgserver.messages import Job
from imgserver.names import BACKGROUND, URGENT
from imgserver.retries import answer_by, backoff, retry_delay, settle_delay
from imgserver.settings import Settings

DEFAULTS = Settings()
TRY = 0.5  # seconds a failing try itself takes (a Redis call timing out)


def job(**kw: object) -> Job:
    return Job("k" * 64, "resize", "d" * 16, "jpeg", "https://a/b.jpg", {}, "t1", **kw)  # type: ignore[arg-type]


def test_backoff_doubles_up_to_the_cap_and_jitters_down_by_at_most_half() -> None:
    s = Settings(retry_backoff=0.5, retry_backoff_max=15.0)
    assert [backoff(s, n, 0.0) for n in range(7)] == [0.5, 1, 2, 4, 8, 15, 15]
    assert [backoff(s, n, 0.999999) for n in (0, 5)] == pytest.approx([0.25, 7.5], rel=1e-5)
    assert backoff(s, 10**6, 0.0) == 15.0  # no overflow after days of tries


def test_a_source_failure_gets_job_max_attempts_tries() -> None:
    s = Settings(job_max_attempts=4)
    delays = [
        retry_delay(s, BACKGROUND, job(attempt=n), outage=False, now=0, rand=0) for n in range(4)
    ]
    assert delays == [0.5, 1.0, 2.0, None]


def test_a_background_job_retries_a_backend_outage_for_the_budget_from_its_first_failure() -> None:
    s = Settings(retry_budget=300.0)
    first = retry_delay(s, BACKGROUND, job(queued_at=0.0), outage=True, now=5000.0, rand=0)
    assert first == 0.5  # queued long ago, first failure now: the budget starts now
    late = job(attempt=30, failing_since=1000.0, queued_at=0.0)
    assert retry_delay(s, BACKGROUND, late, outage=True, now=1280.0, rand=0) == 15.0
    assert retry_delay(s, BACKGROUND, late, outage=True, now=1290.0, rand=0) is None


def ride(s: Settings, role: str, outage: float, start: float = 0.0) -> tuple[float, int, bool]:
    """A job failing (each try takes TRY s) while a backend is down for ``outage`` s from
    ``start``: (when its last try started, tries, whether it got through), with the
    longest (rand 0) delays."""
    j, now = job(queued_at=start), start
    while True:
        if now >= start + outage:
            return now, j.attempt + 1, True
        now += TRY
        delay = retry_delay(s, role, j, outage=True, now=now, rand=0.0)
        if delay is None:
            return now - TRY, j.attempt + 1, False
        since = now if j.failing_since is None else j.failing_since
        j = msgspec.structs.replace(j, attempt=j.attempt + 1, failing_since=since)
        now += delay


def test_the_defaults_ride_out_a_60_s_outage_and_give_up_within_the_budget() -> None:
    last, tries, through = ride(DEFAULTS, BACKGROUND, 60.0)
    assert through and tries > DEFAULTS.job_max_attempts
    assert last - 60.0 <= DEFAULTS.retry_backoff_max + TRY  # back soon after the outage
    last, tries, through = ride(DEFAULTS, BACKGROUND, 3600.0)
    assert not through
    assert DEFAULTS.retry_budget - DEFAULTS.retry_backoff_max - TRY <= last
    assert last <= DEFAULTS.retry_budget + TRY


def test_an_urgent_job_retries_only_within_the_request_deadline() -> None:
    s = Settings(request_deadline=25.0, job_max_attempts=1)
    last, tries, through = ride(s, URGENT, 3600.0, start=100.0)
    assert not through and tries > 1  # an outage is retried, whatever job_max_attempts says
    assert last <= 100.0 + s.request_deadline
    assert ride(s, URGENT, 10.0, start=100.0)[2]  # a shorter outage is ridden out
    # a source failure too: never past the deadline, even with tries left
    old = job(queued_at=0.0)
    assert retry_delay(s, URGENT, old, outage=False, now=24.9, rand=0) is None


def test_settle_delay_backs_off_until_the_record_would_have_expired() -> None:
    s = Settings(task_ttl=3600, retry_backoff=0.5, retry_backoff_max=15.0)
    failing = job(failure=Failure("unavailable", "redis: timed out"), queued_at=1000.0)
    assert settle_delay(s, failing, now=1001.0, rand=0) == 0.5
    later = msgspec.structs.replace(failing, attempt=40)
    assert settle_delay(s, later, now=4500.0, rand=0) == 15.0
    assert settle_delay(s, later, now=4601.0, rand=0) is None
    forever = Settings(task_ttl=0)
    assert settle_delay(forever, later, now=10**9, rand=0) == forever.retry_backoff_max


# -- a waiting GET's source is fetched within the time its client has left


def test_an_urgent_fetch_is_due_before_the_request_deadline() -> None:
    s = Settings(request_deadline=25.0)
    queued = job(queued_at=1000.0)
    due = answer_by(s, URGENT, queued, now=1000.5)
    assert due == 1000.0 + 25.0 - 1.0  # a second (at most) for the failure to reach the frontend
    short = Settings(request_deadline=3.0)
    assert answer_by(short, URGENT, job(queued_at=0.0), now=0.0) == pytest.approx(2.7)
    assert answer_by(s, BACKGROUND, queued, now=1000.5) is None  # no one waits


def test_a_late_first_try_keeps_the_full_fetch_timeouts() -> None:
    """A job that waited in the queue for most of the deadline: what is left says nothing of
    its source, so it is not cut (the client gets 503 timeout; the result comes later)."""
    s = Settings(request_deadline=25.0)
    assert answer_by(s, URGENT, job(queued_at=0.0), now=11.0) is not None
    assert answer_by(s, URGENT, job(queued_at=0.0), now=13.0) is None
    # a retry (its source failed already) is cut to what is left, however little
    assert answer_by(s, URGENT, job(queued_at=0.0, attempt=1), now=20.0) == 24.0
    assert answer_by(s, URGENT, job(queued_at=0.0, attempt=1), now=24.5) is None  # answered


def test_an_urgent_retry_starts_before_the_answer_is_due() -> None:
    s = Settings(request_deadline=25.0, retry_backoff=0.5, retry_backoff_max=15.0)
    late = job(queued_at=0.0, attempt=1)
    assert retry_delay(s, URGENT, late, outage=False, now=22.0, rand=0) == 1.0
    assert retry_delay(s, URGENT, late, outage=False, now=23.0, rand=0) is None
