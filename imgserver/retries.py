"""When a job that failed for a transient reason is tried again, and when it is given up.

- The delay before the next try is ``retry_backoff`` doubled each try, capped at
  ``retry_backoff_max``, then jittered down by up to half, so that jobs that failed together
  (a backend went down under all of them) do not all come back at once.
- A source that fails transiently (5xx/429, timeout) gets ``job_max_attempts`` tries: it is
  someone else's server, and a URL that keeps failing should be reported soon.
- A backend of ours that is down (``errors.Unavailable``: Redis, RabbitMQ, S3) is waited for: a
  background job retries for ``retry_budget`` seconds from its first failure, which rides out
  an outage of a few minutes.
- An urgent job (a GET miss) retries only while its requester may still be waiting: its tries
  start before its answer is due (``answer_due``: ``request_deadline`` after it was queued,
  less a margin for the answer to reach the frontend), whatever failed; and fetching its
  source ends by then too (``answer_by``), so a dead or slow source is answered 504
  ``source_timeout`` within the request deadline, never 503 "retry shortly".
- A job whose failure is decided, but whose task record could not be written (the store was
  down), tries the write again with the same backoff until it lands, or until the record would
  have expired anyway (``task_ttl`` after the decision).

Pure arithmetic: the caller passes the time and a random number in [0, 1).
"""

from __future__ import annotations

from .messages import Job
from .names import URGENT
from .settings import Settings

MAX_DOUBLINGS = 30  # 2**30 times any backoff is past any cap: no float overflow on long runs
ANSWER_MARGIN = 1.0  # seconds (at most; a tenth of a shorter deadline) for a failure to travel


def answer_margin(settings: Settings) -> float:
    """Seconds before the request deadline by which a waiting GET's job must have failed, so
    that its failure reaches the frontend (stored, announced) before the frontend gives up."""
    return min(ANSWER_MARGIN, settings.request_deadline / 10)


def answer_due(settings: Settings, job: Job) -> float:
    """When (Unix time) an urgent job must have failed for its waiting requester to get the
    failure, not a 503, before the request deadline."""
    return job.queued_at + settings.request_deadline - answer_margin(settings)


def answer_by(settings: Settings, role: str, job: Job, now: float) -> float | None:
    """When (Unix time) an urgent job's sources must have been fetched, so that a source too
    slow is answered 504 within the request deadline. None: the fetch timeouts alone bound it,
    because no one waits (a background job), or the requester has been answered already, or
    the job's first try starts with less than half the deadline left (it waited in the queue:
    the time that is left says nothing of the source, so the source gets its full timeouts
    and the result is there for the next request)."""
    if role != URGENT:
        return None
    due = answer_due(settings, job)
    left = due - now
    if left <= 0 or (job.attempt == 0 and left < settings.request_deadline / 2):
        return None
    return due


def backoff(settings: Settings, attempt: int, rand: float) -> float:
    """Seconds to wait after try ``attempt + 1`` (``attempt`` counts from 0)."""
    delay: float = settings.retry_backoff * 2.0 ** min(attempt, MAX_DOUBLINGS)
    return min(delay, settings.retry_backoff_max) * (1 - rand / 2)


def retry_delay(
    settings: Settings, role: str, job: Job, *, outage: bool, now: float, rand: float
) -> float | None:
    """Seconds until the next try of ``job``, which just failed for a transient reason
    (``outage``: a backend of ours is down; otherwise its source failed); None: give it up."""
    delay = backoff(settings, job.attempt, rand)
    if role == URGENT and now + delay >= answer_due(settings, job):
        return None  # its requester is answered with this failure, or was answered by now
    if not outage:
        return delay if job.attempt + 1 < settings.job_max_attempts else None
    since = now if job.failing_since is None else job.failing_since
    return delay if now + delay <= since + settings.retry_budget else None


def settle_delay(settings: Settings, job: Job, *, now: float, rand: float) -> float | None:
    """Seconds until the write of a decided failure (``job.failure``, decided when the job was
    queued again for it, ``job.queued_at``) is tried again; None: the record has expired."""
    if settings.task_ttl and now - job.queued_at > settings.task_ttl:
        return None
    return backoff(settings, job.attempt, rand)
