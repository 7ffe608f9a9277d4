"""Fixtures shared by the backend contract suites (tests/contract/test_contract_*.py).

Each suite parametrizes its backend fixture over ``local`` (the embedded implementation) and
``redis`` (a real redis-server, emptied before each test). Import the fixtures it uses.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from imgserver.backends.base import ImageStore
from imgserver.backends.redis.client import connect
from imgserver.backends.redis.records import RedisImageStore
from imgserver.backends.sqlite import SqliteDB, SqliteImageStore
from imgserver.settings import Settings

from .servers import RedisServer

BACKENDS = ["local", "redis"]


class RedisEnv:
    """Clients of the test Redis, each its own connection pool (like separate processes)."""

    def __init__(self, server: RedisServer) -> None:
        self.server = server
        self.clients: list[Redis] = []

    def settings(self, **overrides: Any) -> Settings:
        return Settings(**{"redis_url": self.server.url, **overrides})

    def client(self, settings: Settings | None = None) -> Redis:
        client = connect(settings or self.settings())
        self.clients.append(client)
        return client

    async def close(self) -> None:
        for client in self.clients:
            await client.aclose()


@pytest.fixture
async def redis_env(redis_server: RedisServer) -> AsyncIterator[RedisEnv]:
    redis_server.flushall()
    env = RedisEnv(redis_server)
    yield env
    await env.close()


@pytest.fixture
async def local_db(tmp_path: Path) -> AsyncIterator[SqliteDB]:
    async with SqliteDB(tmp_path / "state.sqlite3") as db:
        yield db


@contextmanager
def redis_stopped(server: RedisServer) -> Iterator[None]:
    """Stop the (session-wide) test Redis for the block, and always start it again."""
    server.stop()
    try:
        yield
    finally:
        server.start()


@contextmanager
def within(seconds: float) -> Iterator[None]:
    """Fail if the block takes longer than ``seconds``."""
    start = time.monotonic()
    yield
    took = time.monotonic() - start
    assert took < seconds, f"took {took:.2f} s, more than {seconds} s"


@pytest.fixture(params=BACKENDS)
def image_stores(request: pytest.FixtureRequest) -> list[ImageStore]:
    """One image store for the embedded mode; two on separate Redis clients for Redis (as two
    processes would have)."""
    if request.param == "local":
        return [SqliteImageStore(request.getfixturevalue("local_db"))]
    env: RedisEnv = request.getfixturevalue("redis_env")
    return [RedisImageStore(env.client()) for _ in range(2)]
