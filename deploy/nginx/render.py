#!/usr/bin/env python3
"""Render deploy/nginx/imgserver.conf for your frontends (standard library only).

    python3 deploy/nginx/render.py --upstream 127.0.0.1:8080 --upstream 127.0.0.1:8081 \\
        --listen 80 --server-name images.example.com \\
        --cache-dir /var/cache/nginx/imgserver > /etc/nginx/conf.d/imgserver.conf

Without --cache-dir the /graph/ cache is left out. The upload cap comes from
--max-source-bytes, else IMGSERVER_MAX_SOURCE_BYTES, else the service's default (50 MB).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path

TEMPLATE = Path(__file__).resolve().parent / "imgserver.conf"
DEFAULT_MAX_SOURCE_BYTES = 50_000_000  # imgserver's IMGSERVER_MAX_SOURCE_BYTES default
MULTIPART_OVERHEAD = 64 * 1024  # what the service allows on top (imgserver/uploads.py)
CACHE_MARK = re.compile(r"\s*# \[cache\]\s*$")
PLACEHOLDER = re.compile(r"@([A-Z_]+)@")
SAFE = re.compile(r"^[A-Za-z0-9_.:\[\]/*~-]+$")  # values that cannot break out of a directive


def render(
    upstreams: Sequence[str],
    *,
    listen: str = "80",
    server_name: str = "_",
    max_source_bytes: int = DEFAULT_MAX_SOURCE_BYTES,
    cache_dir: str | None = None,
    cache_max_size: str = "10g",
    template: str | None = None,
) -> str:
    """The config text; raises ValueError on a value that does not belong in nginx's syntax."""
    if not upstreams:
        raise ValueError("give at least one --upstream host:port")
    values = {
        "UPSTREAM_SERVERS": "\n".join(f"    server {_safe(u)};" for u in upstreams),
        "LISTEN": _safe(listen),
        "SERVER_NAME": " ".join(_safe(n) for n in server_name.split()),
        "MAX_SOURCE_BYTES": str(max_source_bytes),
        "MAX_BODY_SIZE": str(max_source_bytes + MULTIPART_OVERHEAD),
        "CACHE_DIR": _safe(cache_dir or "-"),
        "CACHE_MAX_SIZE": _safe(cache_max_size),
    }
    lines = []
    for line in (template if template is not None else TEMPLATE.read_text()).splitlines():
        if CACHE_MARK.search(line):
            if cache_dir is None:
                continue
            line = CACHE_MARK.sub("", line)
        lines.append(PLACEHOLDER.sub(lambda m: values[m.group(1)], line))
    return "\n".join(lines) + "\n"


def _safe(value: str) -> str:
    if not SAFE.match(value):
        raise ValueError(f"{value!r} cannot go into the nginx config as it is")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--upstream",
        action="append",
        default=[],
        metavar="HOST:PORT",
        help="a frontend; repeat the option for several",
    )
    parser.add_argument("--listen", default="80", help="nginx's listen address (80)")
    parser.add_argument("--server-name", default="_", help="server_name (_: any)")
    parser.add_argument(
        "--max-source-bytes",
        type=int,
        default=int(os.environ.get("IMGSERVER_MAX_SOURCE_BYTES", DEFAULT_MAX_SOURCE_BYTES)),
        help="the service's IMGSERVER_MAX_SOURCE_BYTES",
    )
    parser.add_argument("--cache-dir", help="turn the /graph/ cache on, kept in this directory")
    parser.add_argument("--cache-max-size", default="10g", help="the cache's size limit (10g)")
    parser.add_argument("-o", "--output", help="write here instead of standard output")
    args = parser.parse_args(argv)
    try:
        text = render(
            args.upstream or ["127.0.0.1:8080"],
            listen=args.listen,
            server_name=args.server_name,
            max_source_bytes=args.max_source_bytes,
            cache_dir=args.cache_dir,
            cache_max_size=args.cache_max_size,
        )
    except ValueError as exc:
        print(f"render.py: {exc}", file=sys.stderr)
        return 2
    if args.output:
        Path(args.output).write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
