#!/usr/bin/env python3
"""The container's HEALTHCHECK: GET /healthz of the role running in it (standard library only).

A worker role answers on IMGSERVER_WORKER_METRICS_PORT (set it for workers, and only for them);
the web role on IMGSERVER_PORT (default 8080). Exit 0 when the answer is 200, else 1 with the
reason on stderr. The first argument, when given, is the port to ask instead.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request


def port(argv: list[str], environ: dict[str, str] | os._Environ[str]) -> str:
    if argv:
        return argv[0]
    return environ.get("IMGSERVER_WORKER_METRICS_PORT") or environ.get("IMGSERVER_PORT") or "8080"


def main(argv: list[str]) -> int:
    url = f"http://127.0.0.1:{port(argv, os.environ)}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=4) as response:
            if response.status == 200:
                return 0
            print(f"healthcheck: {url} answered {response.status}", file=sys.stderr)
    except (urllib.error.URLError, OSError) as exc:
        print(f"healthcheck: {url}: {exc}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
