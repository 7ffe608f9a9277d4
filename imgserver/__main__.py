"""``python -m imgserver serve``: run the service (embedded backends unless configured).

Imports stay inside main(): worker processes are spawned, and spawn re-imports this module.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="imgserver", description=__doc__)
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("serve", help="run the HTTP service")
    sub.add_parser("check", help="validate settings and graphs, then exit")
    args = parser.parse_args(argv)

    import logging

    from aiohttp import web

    from .app import create_app
    from .catalogue import GraphError
    from .errors import ImgServerError
    from .settings import Settings, SettingsError

    try:
        settings = Settings.from_env()
        app = create_app(settings)
    except (SettingsError, GraphError) as exc:
        print(f"imgserver: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if args.command == "check":
        print("settings and graphs are valid")
        return 0
    ready = f"imgserver: serving on http://{settings.host}:{settings.port}"
    try:
        web.run_app(
            app, host=settings.host, port=settings.port, print=lambda _: print(ready, flush=True)
        )
    except ImgServerError as exc:  # a backend could not be opened
        print(f"imgserver: {exc.message}", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
