"""The Redis connection every Redis backend shares, and what they share: errors translated
into ``Unavailable`` (503: a Redis that is down or restarting never surfaces as a 500) and the
one optimistic read-change-write of a record (WATCH/MULTI).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Mapping
from typing import Any, ParamSpec, TypeVar

import redis.exceptions as rexc
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.client import Pipeline
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from ...errors import Unavailable
from ...records import Record, advance
from ...settings import Settings
from ..base import Managed

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")
Rec = TypeVar("Rec", bound=Record)

SOCKET_TIMEOUT = 0.5  # seconds: a Redis that is down fails a request within a second
CONNECT_TIMEOUT = 0.5
HEALTH_CHECK_INTERVAL = 15  # seconds idle after which a pooled connection is PINGed before use
MAX_CONNECTIONS = 256
POOL_TIMEOUT = 1.0  # seconds to wait for a free pooled connection before giving up

# Errors that mean "Redis cannot serve us now", as opposed to bugs (wrong type, bad command).
_ERRORS: tuple[type[BaseException], ...] = (
    rexc.ConnectionError,  # also BusyLoading (LOADING), authentication, pool exhausted
    rexc.TimeoutError,
    rexc.OutOfMemoryError,
    rexc.ReadOnlyError,
    rexc.ClusterDownError,  # also MASTERDOWN
    OSError,  # includes the builtin TimeoutError
)


def connect(settings: Settings) -> Redis:
    """A client for ``settings.redis_url``; connections are opened lazily, on first use.

    Short timeouts make a Redis that is down fail fast (503). A connection error is retried
    once at once, on a new connection, so a pooled connection left stale by a Redis restart
    does not fail a request; timeouts are not retried.
    """
    pool = BlockingConnectionPool.from_url(
        settings.redis_url,
        max_connections=MAX_CONNECTIONS,
        timeout=POOL_TIMEOUT,
        socket_timeout=SOCKET_TIMEOUT,
        socket_connect_timeout=CONNECT_TIMEOUT,
        health_check_interval=HEALTH_CHECK_INTERVAL,
        retry=Retry(NoBackoff(), 1, (rexc.ConnectionError,)),  # timeouts: not retried
        decode_responses=False,
        client_name="imgserver",
    )
    return Redis.from_pool(pool)


def is_unavailable(exc: BaseException) -> bool:
    if isinstance(exc, _ERRORS):
        return True
    return isinstance(exc, rexc.ResponseError) and str(exc).startswith("MISCONF")


@contextlib.contextmanager
def translated() -> Iterator[None]:
    """Turn Redis connection errors and timeouts into ``Unavailable``."""
    try:
        yield
    except rexc.RedisError as exc:
        if not is_unavailable(exc):
            raise
        kind = "timed out" if isinstance(exc, rexc.TimeoutError) else "unavailable"
        raise Unavailable(f"redis: {kind}") from exc
    except OSError as exc:
        kind = "timed out" if isinstance(exc, TimeoutError) else "connection failed"
        raise Unavailable(f"redis: {kind}") from exc


def translated_call(fn: Callable[P, Awaitable[R]]) -> Callable[P, Coroutine[Any, Any, R]]:
    @functools.wraps(fn)
    async def call(*args: P.args, **kwargs: P.kwargs) -> R:
        with translated():
            return await fn(*args, **kwargs)

    return call


def text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RedisConnection(Managed):
    """The client of ``settings.redis_url``, shared by every Redis backend of a process."""

    def __init__(self, settings: Settings) -> None:
        self.client = connect(settings)

    async def open(self) -> None:
        await self.ping()  # a wrong URL or a Redis that is down stops start-up, clearly

    async def close(self) -> None:
        await self.client.aclose()

    @translated_call
    async def ping(self) -> None:
        await self.client.ping()


class OnRedis(Managed):
    """A backend on the shared connection (opened and closed by ``RedisConnection``)."""

    def __init__(self, client: Redis) -> None:
        self.client = client

    @translated_call
    async def ping(self) -> None:
        await self.client.ping()


async def update_record(
    client: Redis,
    key: str,
    decode: Callable[[bytes | str], Rec],
    changes: Mapping[str, Any],
    save: Callable[[Pipeline, Rec], None],
) -> Rec | None:
    """Read the record at ``key``, ``records.advance`` it, write it back with ``save`` (queued on
    a MULTI): one optimistic transaction, so the transition rules run in Python and it is still
    atomic across processes. A record changed by someone else between our read and our write
    makes EXEC fail, and we read it again. The record after; None if there is none."""
    conflicts = 0
    async with client.pipeline(transaction=True) as pipe:
        while True:
            try:
                await pipe.watch(key)
                raw = await pipe.get(key)
                if raw is None:
                    return None
                record = decode(raw)
                if not advance(record, changes):
                    return record  # final, or it would go back: unchanged
                pipe.multi()
                save(pipe, record)
                await pipe.execute()
                return record
            except rexc.WatchError:  # changed since we read it: read it again
                conflicts += 1
                await asyncio.sleep(random.uniform(0, min(0.05, 0.001 * conflicts)))
