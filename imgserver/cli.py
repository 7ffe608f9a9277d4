"""Batch work against a running server: ``prefetch`` (warm the cache for a list of sources),
``purge`` (``DELETE /cache``) and ``sign`` (print a signed URL). See ``python -m imgserver
prefetch --help``."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlencode

import aiohttp
from yarl import URL

FINAL = ("completed", "completed_with_errors", "failed")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".avif", ".tif", ".tiff", ".svg")
RETRIES = 4  # a 429 overloaded or 503 unavailable is tried again this many times
RETRY_AFTER_MAX = 10.0
POLL = 0.5  # seconds between looks at a queued task


class CliError(Exception):
    """A setup error: printed as one line, exit status 2."""


# ---- signing -----------------------------------------------------------------------------


Signer = Callable[[str, str], str]  # (spec: "NAME.EXT" or "cache", raw query) -> path


def signer(key_name: str | None, admin: bool = False) -> Signer:
    """Paths signed with the API key ``key_name`` (its secret from IMGSERVER_KEYS or
    IMGSERVER_KEYS_FILE); ``None``: the first enabled key (with ``admin``, admin key)."""
    from .apikeys import KeyRing
    from .settings import Settings, SettingsError

    try:
        ring = KeyRing.from_settings(Settings.from_env())
    except SettingsError as exc:
        raise CliError(str(exc)) from None
    usable = [k for k in ring.keys.values() if not k.disabled and (k.admin or not admin)]
    key = ring.keys.get(key_name) if key_name else (usable[0] if usable else None)
    kind = "admin API key" if admin else "API key"
    if key is None or key.disabled or (admin and not key.admin):
        named = f" {key_name!r}" if key_name else ""
        raise CliError(f"no such enabled {kind}{named} (set IMGSERVER_KEYS or IMGSERVER_KEYS_FILE)")
    return lambda spec, query: ring.signed_path(key.name, spec, query)


def unsigned_path(spec: str, query: str) -> str:
    return f"/cache?{query}" if spec == "cache" else f"/graph/{spec}?{query}"


def sign_url(url: str, key_name: str | None) -> int:
    """``sign``: print ``url`` signed."""
    parsed = URL(url, encoded=True)  # sign the query exactly as it will be sent
    parts = parsed.raw_path.split("/")
    if parts == ["", "cache"]:
        spec = "cache"
    elif len(parts) == 3 and parts[1] == "graph" and parts[2]:
        spec = parts[2]
    else:
        raise CliError(
            "expected an unsigned URL like /graph/NAME.EXT?input=... or /cache?input=..."
        )
    signed = signer(key_name, admin=spec == "cache")(spec, parsed.raw_query_string)
    origin = f"{parsed.scheme}://{parsed.raw_authority}" if parsed.is_absolute() else ""
    print(origin + signed)
    return 0


# ---- sources -----------------------------------------------------------------------------


def read_sources(names: list[str], stdin: IO[str]) -> list[str]:
    """Source URLs from files (``-``: stdin), in order, each once. A file is a sitemap when it
    starts with ``<``; otherwise one URL per line (blank lines and ``#`` comments skipped)."""
    seen: dict[str, None] = {}
    for name in names or ["-"]:
        try:
            text = stdin.read() if name == "-" else Path(name).read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise CliError(f"cannot read {name}: {exc}") from None
        urls = sitemap_urls(text, name) if text.lstrip().startswith("<") else lines(text)
        seen.update(dict.fromkeys(urls))
    return list(seen)


def lines(text: str) -> Iterator[str]:
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            yield line


def sitemap_urls(text: str, name: str) -> list[str]:
    """A sitemap's images: every ``<image:loc>``, and each page ``<loc>`` whose path ends like
    an image file (pages themselves are not images)."""
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise CliError(f"{name} is not a readable sitemap: {exc}") from None
    if local(root.tag) == "sitemapindex":
        raise CliError(f"{name} is a sitemap index: give the sitemaps it lists instead")
    if local(root.tag) != "urlset":
        raise CliError(f"{name} is not a sitemap (its root is <{local(root.tag)}>, not <urlset>)")
    urls = []
    for url in root:
        for child in url.iter():
            text_ = (child.text or "").strip()
            if not text_ or local(child.tag) != "loc":
                continue
            is_image = child.tag.startswith("{http://www.google.com/schemas/sitemap-image/")
            path = text_.split("?")[0].split("#")[0].lower()
            if is_image or path.endswith(IMAGE_SUFFIXES):
                urls.append(text_)
    return urls


def local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


# ---- prefetch ----------------------------------------------------------------------------


@dataclass
class Outcome:
    source: str
    status: str  # "cached", "completed", "completed_with_errors", "failed", "queued"
    code: str = ""  # the error code of a failure
    message: str = ""

    @property
    def label(self) -> str:
        if self.status == "cached":
            return "cached (skipped)"
        return f"{self.status}: {self.code}" if self.code else self.status

    @property
    def ok(self) -> bool:
        return self.status != "failed"


@dataclass
class Prefetch:
    server: str
    graph: str
    params: list[tuple[str, str]]
    sign: Signer | None
    concurrency: int
    wait: bool
    timeout: float
    outcomes: list[Outcome] = field(default_factory=list)

    def url(self, source: str) -> URL:
        """The graph URL, sent exactly as built (and signed)."""
        query = urlencode([("input", source), *self.params])
        path = self.sign(self.graph, query) if self.sign else unsigned_path(self.graph, query)
        return URL(self.server + path, encoded=True)

    async def run(self, sources: list[str], report: Callable[[Outcome], None]) -> None:
        queue: asyncio.Queue[str] = asyncio.Queue()
        for s in sources:
            queue.put_nowait(s)
        connector = aiohttp.TCPConnector(limit=self.concurrency * 2)
        async with aiohttp.ClientSession(connector=connector) as session:

            async def worker() -> None:
                while not queue.empty():
                    source = queue.get_nowait()
                    outcome = await self.one(session, source)
                    self.outcomes.append(outcome)
                    report(outcome)

            await asyncio.gather(*(worker() for _ in range(self.concurrency)))

    async def one(self, session: aiohttp.ClientSession, source: str) -> Outcome:
        """POST the graph URL: 301 means the result is cached already (nothing to do); 202
        queued a background task, followed (unless not waiting) until its final state."""
        try:
            async with asyncio.timeout(self.timeout):
                return await self._one(session, source)
        except TimeoutError:
            return Outcome(source, "failed", "timeout", f"no final state in {self.timeout:g} s")
        except aiohttp.ClientError as exc:
            return Outcome(source, "failed", "unreachable", str(exc) or type(exc).__name__)

    async def _one(self, session: aiohttp.ClientSession, source: str) -> Outcome:
        url = self.url(source)
        for attempt in range(RETRIES + 1):
            async with session.post(url, allow_redirects=False) as r:
                body = await json_or_none(r)
                if r.status == 301:
                    return Outcome(source, "cached")
                if r.status == 202 and isinstance(body, dict):
                    task = body.get("task", {})
                    if not self.wait:
                        return Outcome(source, "queued")
                    return await self.follow(session, source, str(task.get("id", "")))
                retry_after = r.headers.get("Retry-After", "")
                if r.status in (429, 503) and attempt < RETRIES:
                    delay = float(retry_after) if retry_after.isdigit() else 2.0**attempt
                    await asyncio.sleep(min(delay, RETRY_AFTER_MAX))
                    continue
                code, message = error_of(body, r.status)
                return Outcome(source, "failed", code, message)
        raise AssertionError("unreachable")

    async def follow(self, session: aiohttp.ClientSession, source: str, task: str) -> Outcome:
        while True:
            async with session.get(f"{self.server}/tasks/{task}") as r:
                body = await json_or_none(r)
                if r.status != 200 or not isinstance(body, dict):
                    code, message = error_of(body, r.status)
                    return Outcome(source, "failed", code, message)
            status = str(body.get("status"))
            if status in FINAL:
                if status == "failed":
                    code, message = error_of({"error": body.get("error")}, 0)
                    return Outcome(source, status, code, message)
                return Outcome(source, status)
            await asyncio.sleep(POLL)


async def json_or_none(r: aiohttp.ClientResponse) -> Any:
    with contextlib.suppress(ValueError, aiohttp.ContentTypeError):
        return await r.json(content_type=None)
    return None


def error_of(body: Any, status: int) -> tuple[str, str]:
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return str(error.get("code", f"http_{status}")), str(error.get("message", ""))
    return f"http_{status}", ""


def summary(outcomes: Iterable[Outcome]) -> list[tuple[str, int]]:
    """(outcome label, count), most frequent first."""
    return collections.Counter(o.label for o in outcomes).most_common()


def parse_params(items: list[str]) -> list[tuple[str, str]]:
    params = []
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise CliError(f"a parameter is NAME=VALUE, not {item!r}")
        params.append((name, value))
    return params


def prefetch(args: Any) -> int:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.table import Table

    sources = read_sources(args.sources, sys.stdin)
    if not sources:
        raise CliError("no source URLs given (in the files, or on stdin)")
    if args.concurrency < 1:
        raise CliError(f"--concurrency must be 1 or more, not {args.concurrency}")
    job = Prefetch(
        server=args.server.rstrip("/"),
        graph=args.graph,
        params=parse_params(args.param),
        sign=signer(args.key) if args.key else None,
        concurrency=args.concurrency,
        wait=not args.no_wait,
        timeout=args.timeout,
    )
    err = Console(stderr=True, highlight=False)
    mode = args.progress
    if mode == "auto":
        mode = "bar" if err.is_terminal else "lines"
    failures = Console(stderr=True, highlight=False, soft_wrap=True)

    def failed(o: Outcome) -> None:
        if not o.ok:
            failures.print(f"failed: {o.source}: {o.code}: {o.message}", markup=False)

    started = time.monotonic()
    if mode == "bar":
        bar_console = Console(stderr=True, force_terminal=True) if args.progress == "bar" else err
        columns = (
            TextColumn("prefetch"),
            BarColumn(),
            MofNCompleteColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=bar_console, refresh_per_second=4) as progress:
            task = progress.add_task("prefetch", total=len(sources), rate="0.0/s")
            failures = progress.console

            def report(o: Outcome) -> None:
                failed(o)
                done = len(job.outcomes)
                rate = done / max(time.monotonic() - started, 1e-9)
                progress.update(task, advance=1, rate=f"{rate:.1f}/s")

            asyncio.run(job.run(sources, report))
    else:
        last = [0.0]

        def report(o: Outcome) -> None:
            failed(o)
            now = time.monotonic()
            done = len(job.outcomes)
            if mode == "lines" and (now - last[0] >= args.interval or done == len(sources)):
                last[0] = now
                rate = done / max(now - started, 1e-9)
                eta = (len(sources) - done) / rate if rate else 0.0
                err.print(
                    f"prefetch: {done}/{len(sources)} ({100 * done / len(sources):.0f}%) "
                    f"{rate:.1f}/s ETA {eta:.0f} s",
                    markup=False,
                )

        asyncio.run(job.run(sources, report))

    table = Table(title=f"prefetch: {len(sources)} sources in {time.monotonic() - started:.1f} s")
    table.add_column("outcome")
    table.add_column("count", justify="right")
    for label, count in summary(job.outcomes):
        table.add_row(label, str(count))
    Console(highlight=False).print(table)
    return 0 if all(o.ok for o in job.outcomes) else 1


async def purge_sources(server: str, sources: list[str], sign: Signer) -> list[str]:
    """DELETE /cache?input=SOURCE for each source: one line each; the failures' lines."""
    failed = []
    async with aiohttp.ClientSession() as session:
        for source in sources:
            path = sign("cache", urlencode({"input": source}))
            try:
                async with session.delete(URL(server + path, encoded=True)) as r:
                    body = await json_or_none(r)
                    if r.status == 200 and isinstance(body, dict):
                        print(f"purged {body.get('deleted', 0)} results of {source}")
                        continue
                    code, message = error_of(body, r.status)
            except aiohttp.ClientError as exc:
                code, message = "unreachable", str(exc)
            failed.append(source)
            print(f"failed: {source}: {code}: {message}", file=sys.stderr)
    return failed


def purge(args: Any) -> int:
    sources = list(dict.fromkeys(args.sources)) or read_sources([], sys.stdin)
    if not sources:
        raise CliError("no source URLs given (as arguments, or on stdin)")
    sign = signer(args.key, admin=True)
    failed = asyncio.run(purge_sources(args.server.rstrip("/"), sources, sign))
    return 1 if failed else 0
