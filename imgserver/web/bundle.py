"""The web client's files from ``web/static/`` (plain HTML, ES modules, CSS), ready to serve
(``client.py`` serves them at ``/`` and ``/static/``).

There is no build step. The files are read once, when the app is built, gzip-compressed once and
served from memory. Asset URLs carry a digest of all the files (``/static/{digest}/app.js``; the
page names them through ``{{version}}``, and modules import each other by relative URL, so they
inherit it): assets are cached for a year as immutable, while the page itself is revalidated on
every load (``no-cache`` + ``ETag``). A new release is therefore picked up at the next page load,
and a page never mixes old and new modules. An asset asked for under another digest (a page from
before a restart) is served as it is now, but not cached.
"""

from __future__ import annotations

import gzip
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

STATIC_DIR = Path(__file__).resolve().parent / "static"
PAGE = "index.html"
VERSION_MARK = b"{{version}}"
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",  # what ES modules must be served as
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".webmanifest": "application/manifest+json",
    ".json": "application/json",
}
COMPRESSIBLE = frozenset({".html", ".js", ".css", ".svg", ".webmanifest", ".json"})
ASSET_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*(\.[a-z0-9]+)+$")
IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"
# The page loads only its own files; images may come from a CDN or an S3 bucket.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src * data: blob:; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
# The API reference (/docs): its own files only; Swagger UI's icons are data: URLs.
DOCS_HEADERS = {
    **PAGE_HEADERS,
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; object-src 'none'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
}


@dataclass(frozen=True)
class Asset:
    body: bytes
    gzipped: bytes | None  # None when compressing does not pay
    content_type: str
    etag: str


@dataclass(frozen=True)
class Bundle:
    """The client's files, ready to serve: the page and the assets by name."""

    version: str
    page: Asset
    assets: Mapping[str, Asset]

    @classmethod
    def load(cls, directory: Path = STATIC_DIR, *more: Path) -> Bundle:
        """The files of ``directory`` (its ``index.html`` is the page) and of ``more``."""
        files = {
            p.name: p.read_bytes()
            for d in (directory, *more)
            for p in sorted(d.iterdir())
            if p.is_file() and p.suffix in CONTENT_TYPES and ASSET_NAME.match(p.name)
        }
        if PAGE not in files:
            raise RuntimeError(f"the page {PAGE} is missing from {directory}")
        digest = hashlib.sha256()
        for name, body in files.items():
            digest.update(f"{name}\0{len(body)}\0".encode())
            digest.update(body)
        version = digest.hexdigest()[:16]
        page = make_asset(PAGE, files.pop(PAGE).replace(VERSION_MARK, version.encode()))
        assets = {name: make_asset(name, body) for name, body in files.items()}
        return cls(version, page, MappingProxyType(assets))


def make_asset(name: str, body: bytes) -> Asset:
    """``body`` ready to serve as a file called ``name`` (its type from the suffix)."""
    suffix = Path(name).suffix
    gzipped = gzip.compress(body, 9, mtime=0) if suffix in COMPRESSIBLE else None
    if gzipped is not None and len(gzipped) >= len(body):
        gzipped = None
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    return Asset(body, gzipped, CONTENT_TYPES[suffix], etag)
