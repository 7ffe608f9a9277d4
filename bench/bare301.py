"""The hit path's floor: an aiohttp app that only answers 301, run like the service's frontend
(uvloop policy, ``web.run_app``, logging at WARNING).

    python bench/bare301.py PORT
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from imgserver.__main__ import use_uvloop

LOCATION = "http://127.0.0.1/results/" + "0" * 64


async def moved(request: web.Request) -> web.Response:
    return web.Response(
        status=301,
        headers={
            "X-Cache": "HIT",
            "Location": LOCATION,
            "Cache-Control": "public, max-age=3600",
        },
    )


def main() -> None:
    port = int(sys.argv[1])
    logging.basicConfig(level=logging.WARNING)
    app = web.Application()
    app.router.add_get("/graph/{spec}", moved)
    use_uvloop()
    web.run_app(app, host="127.0.0.1", port=port, print=lambda _: print("ready", flush=True))


if __name__ == "__main__":
    main()
