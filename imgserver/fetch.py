"""Source download: timeouts, a redirect limit, address checks on every hop, a byte cap."""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from yarl import URL

from . import __version__
from .errors import (
    ImgServerError,
    SourceNotAllowed,
    SourceNotFound,
    SourceTimeout,
    SourceTooLarge,
    SourceUnreachable,
)
from .lifecycle import Managed
from .security import host_allowed, ipv4_literal, is_public
from .settings import Settings
from .shared import Blocks, SharedBytes, Writer

REDIRECTS = {301, 302, 303, 307, 308}
GONE = {404, 410}  # the source says it does not exist: 404 source_not_found


class GuardedResolver(AbstractResolver):
    """Resolves through ``inner`` and keeps only public addresses (all, if private is allowed)."""

    def __init__(self, inner: AbstractResolver, allow_private: bool) -> None:
        self._inner = inner
        self._allow_private = allow_private

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        if self._allow_private:
            return results
        public = [r for r in results if is_public(r["host"])]
        if not public:
            raise SourceNotAllowed(
                f"the source host {host} resolves to a non-public address", host=host
            )
        return public

    async def close(self) -> None:
        await self._inner.close()


class NonPublicPeer(OSError):
    """A connection was about to be opened to a non-public address."""


def public_socket(addr_info: tuple[Any, ...]) -> socket.socket:
    """The connector's socket factory: it sees the very address about to be connected to, so
    a resolver that let a private address through (DNS rebinding) is caught before any byte
    of the request is sent."""
    family, kind, proto, _, sockaddr = addr_info
    if not is_public(sockaddr[0]):
        raise NonPublicPeer(errno.EACCES, f"refusing to connect to {sockaddr[0]}")
    return socket.socket(family=family, type=kind, proto=proto)


T = TypeVar("T")
Reader = Callable[[aiohttp.ClientResponse, int], Awaitable[T]]


def _over(size: int, cap: int) -> None:
    if size > cap:
        raise SourceTooLarge(f"the source is over the limit of {cap} bytes", limit=cap)


def _read_into(blocks: Blocks | None) -> Reader[SharedBytes | bytes]:
    """A reader that writes the body into a shared-memory block of ``blocks`` (one that is
    reused, so its pages are in memory already; ``bytes`` without blocks, or when /dev/shm has
    no room), refused once it passes ``cap``."""

    async def read(resp: aiohttp.ClientResponse, cap: int) -> SharedBytes | bytes:
        plain = "Content-Encoding" not in resp.headers  # else the length is not the body's
        expected = resp.content_length if plain and resp.content_length else None
        writer = Writer(blocks, expected)
        try:
            async for chunk in resp.content.iter_any():
                _over(writer.size + len(chunk), cap)
                writer.write(chunk)
        except BaseException:
            writer.abandon()
            raise
        return writer.done()

    return read


class Fetcher(Managed):
    """Downloads sources over one pooled aiohttp session (one per process); ``async with`` it."""

    def __init__(self, settings: Settings, resolver: AbstractResolver | None = None) -> None:
        self._settings = settings
        self._resolver = resolver
        self._session: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        s = self._settings
        resolver = GuardedResolver(self._resolver or DefaultResolver(), s.allow_private_sources)
        connector = aiohttp.TCPConnector(
            resolver=resolver,
            limit=64,
            limit_per_host=16,
            ttl_dns_cache=30,
            socket_factory=None if s.allow_private_sources else public_socket,
        )
        timeout = aiohttp.ClientTimeout(
            total=None, connect=s.fetch_connect_timeout, sock_read=s.fetch_read_timeout
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=timeout,
            headers={"User-Agent": f"imgserver/{__version__}", "Accept": "image/*"},
            auto_decompress=True,
            trust_env=False,
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def fetch(self, url: str, budget: float | None = None) -> bytes:
        """The source's bytes, or the API error that says why not; within ``budget`` seconds
        if given (and shorter than ``IMGSERVER_FETCH_TOTAL_TIMEOUT``)."""
        data = await self._fetch(url, _read_into(None), budget)
        assert isinstance(data, bytes)  # no blocks: plain memory
        return data

    async def fetch_shared(
        self, url: str, blocks: Blocks, budget: float | None = None
    ) -> SharedBytes | bytes:
        """The source in a shared-memory block of ``blocks`` (the caller releases it), or as
        ``bytes`` when /dev/shm has no room; within ``budget`` seconds, as ``fetch``."""
        read = _read_into(blocks)
        done: list[SharedBytes | bytes] = []

        async def keep(resp: aiohttp.ClientResponse, cap: int) -> SharedBytes | bytes:
            done.append(await read(resp, cap))
            return done[0]

        try:
            return await self._fetch(url, keep, budget)
        except BaseException:  # e.g. cancelled while the response closed: give the block back
            for source in done:
                if isinstance(source, SharedBytes):
                    source.release()
            raise

    async def _fetch(self, url: str, read: Reader[T], budget: float | None = None) -> T:
        if self._session is None:
            raise RuntimeError("the Fetcher is not open")
        total = self._settings.fetch_total_timeout
        if budget is not None:
            total = max(0.0, min(total, budget))
        try:
            async with asyncio.timeout(total):
                return await self._follow(self._session, URL(url), read)
        except ImgServerError:
            raise
        except TimeoutError:
            raise SourceTimeout(f"the source did not answer in time: {url}") from None
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.__cause__, ImgServerError):
                raise exc.__cause__ from None
            if isinstance(exc.os_error, NonPublicPeer):
                raise SourceNotAllowed(
                    f"the source {exc.host} connected to a non-public address", host=exc.host
                ) from None
            raise SourceUnreachable(
                f"cannot connect to the source: {exc.strerror or exc}"
            ) from None
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            raise SourceUnreachable(f"the source could not be fetched: {exc}") from None

    async def _follow(self, session: aiohttp.ClientSession, url: URL, read: Reader[T]) -> T:
        cap = self._settings.max_source_bytes
        for _ in range(self._settings.fetch_max_redirects + 1):
            self._check_url(url)
            async with session.get(url, allow_redirects=False) as resp:
                self._check_peer(resp, url)
                if resp.status in REDIRECTS and "Location" in resp.headers:
                    url = url.join(URL(resp.headers["Location"]))
                    continue
                if resp.status in GONE:
                    raise SourceNotFound(
                        f"the source answered {resp.status}", upstream_status=resp.status
                    )
                if not 200 <= resp.status < 300:
                    raise SourceUnreachable(
                        f"the source answered {resp.status}", upstream_status=resp.status
                    )
                if resp.content_length is not None and resp.content_length > cap:
                    raise SourceTooLarge(
                        f"the source is {resp.content_length} bytes; the limit is {cap}",
                        limit=cap,
                    )
                return await read(resp, cap)
        raise SourceUnreachable(
            f"more than {self._settings.fetch_max_redirects} redirects", url=str(url)
        )

    def _check_url(self, url: URL) -> None:
        if url.scheme not in ("http", "https") or not url.host:
            raise SourceNotAllowed(f"only http and https sources are fetched, not {url.scheme!r}")
        if not host_allowed(url.host, self._settings.source_patterns):
            raise SourceNotAllowed(
                f"the source host {url.host} is not on the allow-list", host=url.host
            )
        if self._settings.allow_private_sources:
            return
        host = url.host.strip("[]")
        try:
            literal: Any = ipaddress.ip_address(host)
        except ValueError:
            literal = ipv4_literal(host)  # 127.1, 0x7f000001, 2130706433, 0177.0.0.1, ...
            if literal is None:
                return  # a name: the resolver checks what it resolves to
        if not is_public(literal):
            raise SourceNotAllowed(f"the source address {literal} is not public", host=url.host)

    def _check_peer(self, resp: aiohttp.ClientResponse, url: URL) -> None:
        """Check the address actually connected to (defeats DNS rebinding)."""
        if self._settings.allow_private_sources or resp.connection is None:
            return
        transport = resp.connection.transport
        peer = transport.get_extra_info("peername") if transport else None
        if peer and not is_public(peer[0]):
            raise SourceNotAllowed(f"the source {url.host} connected to a non-public address")
