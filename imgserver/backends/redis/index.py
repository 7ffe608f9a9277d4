"""The Redis cache index: each entry is JSON under ``REDIS_RESULT``, plus a set of keys per
input (``REDIS_INPUT``, named by the input's SHA-256) written in the same MULTI, for
``keys_for_input``. Members whose entry expired are pruned when read.

Remembered failures are JSON under ``REDIS_FAILURE`` (expiring with their memory), each filed in
the set ``REDIS_FAILURES`` of its input, so that a purge forgets them all.

An entry expires with its result (``Lifetime.entry_ttl``: counted from ``Entry.created_at``,
at most ``index_ttl``); the set of its input lives as long as the longest an entry written now
can, so it outlives every member. An entry written before a results lifetime was configured
has no expiry: ``get`` does not return it once its result has expired.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import redis.exceptions as rexc
from redis.asyncio import Redis

from ... import names
from ...errors import Failure
from ...messages import Entry, decode_entry, decode_failure, encode_entry, encode_failure
from ...settings import Settings
from .client import OnRedis, text, translated_call

input_digest = names.source_digest


class RedisIndex(OnRedis):
    """Cache key -> Entry, with a set of keys per input."""

    def __init__(self, client: Redis, settings: Settings) -> None:
        super().__init__(client)
        self.lifetime = settings.lifetime

    @staticmethod
    def _key(key: str) -> str:
        return names.REDIS_RESULT.format(key=key)

    @staticmethod
    def _input_key(source: str) -> str:
        return names.REDIS_INPUT.format(digest=input_digest(source))

    @translated_call
    async def get(self, key: str) -> Entry | None:
        raw = await self.client.get(self._key(key))
        entry = decode_entry(raw) if raw is not None else None
        if entry is None or self.lifetime.expired(entry.created_at):
            return None
        return entry

    @translated_call
    async def set(self, key: str, entry: Entry) -> None:
        ttl = self.lifetime.entry_ttl(entry.created_at)
        if ttl == 0:  # its result has expired: never index it
            await self.delete(key)
            return
        members = self._input_key(entry.input)
        longest = self.lifetime.longest_entry
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.set(self._key(key), encode_entry(entry), ex=ttl)
            pipe.sadd(members, key)
            if longest:  # the set outlives every entry written so far
                pipe.expire(members, longest)
            await pipe.execute()

    @translated_call
    async def delete(self, key: str) -> None:
        raw = await self.client.get(self._key(key))
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.delete(self._key(key))
            if raw is not None:
                pipe.srem(self._input_key(decode_entry(raw).input), key)
            await pipe.execute()

    @translated_call
    async def keys_for_input(self, source: str) -> list[str]:
        members = self._input_key(source)
        keys = sorted(text(k) for k in await self.client.smembers(members))
        if not keys:
            return []
        async with self.client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.exists(self._key(key))
            exists = await pipe.execute()
        stale = [k for k, e in zip(keys, exists, strict=True) if not e]
        if stale:  # their entries expired (index_ttl)
            await self._prune(members, stale)
        return [k for k, e in zip(keys, exists, strict=True) if e]

    @translated_call
    async def remember_failure(self, scope: str, failure: Failure, ttl: float, source: str) -> None:
        ms = max(1, round(ttl * 1000))
        filed = names.REDIS_FAILURES.format(digest=input_digest(source))
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.set(names.REDIS_FAILURE.format(scope=scope), encode_failure(failure), px=ms)
            pipe.sadd(filed, scope)
            pipe.pexpire(filed, ms)  # as long as its newest member
            await pipe.execute()

    @translated_call
    async def failure(self, scopes: Sequence[str]) -> Failure | None:
        if not scopes:
            return None
        kept = await self.client.mget([names.REDIS_FAILURE.format(scope=s) for s in scopes])
        first = next((k for k in kept if k is not None), None)
        return decode_failure(first) if first is not None else None

    @translated_call
    async def forget_failures(self, source: str) -> int:
        filed = names.REDIS_FAILURES.format(digest=input_digest(source))
        scopes = {text(s) for s in await self.client.smembers(filed)}
        scopes.add(names.source_scope(source))
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.delete(*(names.REDIS_FAILURE.format(scope=s) for s in sorted(scopes)))
            pipe.delete(filed)
            deleted, _ = await pipe.execute()
        return int(deleted)

    async def _prune(self, members: str, stale: list[str]) -> None:
        """Forget keys whose entries are gone, unless one is set again meanwhile."""
        entries = [self._key(k) for k in stale]
        with contextlib.suppress(rexc.WatchError):  # one was set again: prune another time
            async with self.client.pipeline(transaction=True) as pipe:
                await pipe.watch(*entries)
                if await pipe.exists(*entries):
                    return
                pipe.multi()
                pipe.srem(members, *stale)
                await pipe.execute()
