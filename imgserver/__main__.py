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
    sub.add_parser("schema", help="print graphs/schema.json (generated from the op registry)")
    spec = sub.add_parser(
        "openapi", help="print the OpenAPI description (GET /openapi.json) of these settings"
    )
    spec.add_argument(
        "--docs",
        action="store_true",
        help="instead, rewrite docs/api.md's endpoint index (from the default settings)",
    )
    sign = sub.add_parser("sign", help="print the signed form of a /graph/ or /cache URL")
    sign.add_argument("url", help="e.g. 'http://host/graph/passthrough.jpg?input=...&width=300'")
    sign.add_argument("--key", help="the API key to sign with (default: the first enabled one)")
    args = parser.parse_args(argv)
    if args.command == "sign":
        return sign_url(args.url, args.key)
    if args.command == "openapi":
        return write_openapi(docs=args.docs)
    if args.command == "schema":
        from .graphschema import schema_text

        sys.stdout.write(schema_text())
        return 0

    import logging

    from aiohttp import web
    from aiohttp.log import access_logger

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
    use_uvloop()
    try:
        web.run_app(
            app,
            host=settings.host,
            port=settings.port,
            print=lambda _: print(ready, flush=True),
            access_log=access_logger if settings.access_log else None,
        )
    except ImgServerError as exc:  # a backend could not be opened
        print(f"imgserver: {exc.message}", file=sys.stderr)
        return 3
    return 0


def use_uvloop() -> None:
    """Run the event loop on uvloop (libuv): faster sockets for the hit path."""
    import asyncio

    import uvloop

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def write_openapi(*, docs: bool) -> int:
    """Print /openapi.json as these settings serve it; with ``docs``, rewrite docs/api.md's
    endpoint index from the default settings' document (what a test compares it with)."""
    import json

    from .app import create_app
    from .catalogue import GraphError
    from .openapi import docs_section, replace_docs_section
    from .settings import REPO_ROOT, Settings, SettingsError
    from .web.state import OPENAPI

    try:
        app = create_app(Settings() if docs else Settings.from_env())
    except (SettingsError, GraphError) as exc:
        print(f"imgserver: {exc}", file=sys.stderr)
        return 2
    spec = json.loads(app[OPENAPI].body)
    if not docs:
        sys.stdout.write(json.dumps(spec, indent=2) + "\n")
        return 0
    path = REPO_ROOT / "docs" / "api.md"
    path.write_text(replace_docs_section(path.read_text(), docs_section(spec)))
    print(f"rewrote the endpoint index in {path}")
    return 0


def sign_url(url: str, key_name: str | None) -> int:
    """Print ``url`` signed with an API key from IMGSERVER_KEYS / IMGSERVER_KEYS_FILE."""
    from yarl import URL

    from .apikeys import KeyRing
    from .settings import Settings, SettingsError

    try:
        ring = KeyRing.from_settings(Settings.from_env())
    except SettingsError as exc:
        print(f"imgserver: {exc}", file=sys.stderr)
        return 2
    usable = [k for k in ring.keys.values() if not k.disabled]
    key = ring.keys.get(key_name) if key_name else (usable[0] if usable else None)
    if key is None or key.disabled:
        print("imgserver: no such enabled API key (set IMGSERVER_KEYS)", file=sys.stderr)
        return 2
    parsed = URL(url, encoded=True)  # sign the query exactly as it will be sent
    parts = parsed.raw_path.split("/")
    if parts == ["", "cache"]:
        spec = "cache"
    elif len(parts) == 3 and parts[1] == "graph" and parts[2]:
        spec = parts[2]
    else:
        print(
            "imgserver: expected an unsigned URL like /graph/NAME.EXT?input=... or "
            "/cache?input=...",
            file=sys.stderr,
        )
        return 2
    signed = ring.signed_path(key.name, spec, parsed.raw_query_string)
    origin = f"{parsed.scheme}://{parsed.raw_authority}" if parsed.is_absolute() else ""
    print(origin + signed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
