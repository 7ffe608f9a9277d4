"""``python -m imgserver serve``: run the service (embedded backends unless configured).

Imports stay inside main(): worker processes are spawned, and spawn re-imports this module.
"""

from __future__ import annotations

import argparse
import errno
import sys

DESCRIPTION = """\
imgserver: a cache-fronted, on-demand image transformation service.

`python -m imgserver COMMAND --help` describes each. Settings are IMGSERVER_* environment
variables (README.md, "Settings")."""

PREFETCH = """\
Warm a running server's cache: for each source URL, POST the graph URL
(/graph/GRAPH?input=SOURCE&PARAM=VALUE...) and follow the background task it queues until it
reaches a final state, N sources at a time (--concurrency).

Sources come from FILEs, or from standard input when there is none or a FILE is '-'. A file is
either one URL per line (blank lines and lines starting with '#' are skipped) or a sitemap.xml
(it starts with '<'): every <image:loc>, and each page <loc> whose path ends like an image file
(.jpg .jpeg .png .webp .gif .avif .tif .tiff .svg). A URL listed twice is prefetched once.

Resuming: a source whose result is cached already answers 301 to the POST and is counted as
'cached (skipped)' without any work, so running the same command again after an interruption
does only what is left. A 429 (overloaded) or 503 (unavailable) is retried up to 4 times, after
its Retry-After.

Progress goes to standard error: a bar with the rate and the time left on a terminal, else a line
every --interval seconds. Each failure is one line on standard error ('failed: SOURCE: CODE:
MESSAGE'). At the end, a table of outcomes by status goes to standard output."""

PREFETCH_EPILOG = """\
examples:
  python -m imgserver prefetch -g passthrough.webp -p width=400 urls.txt
  python -m imgserver prefetch -g passthrough.jpg -p width=1200 -p height=800 -j 8 sitemap.xml
  grep -h '^https://' *.txt | python -m imgserver prefetch -g passthrough.avif -p width=300 -
  python -m imgserver prefetch --server https://img.example.com --key web -g thumb.jpg urls.txt

exit status:
  0  every source is cached (it was, or its task completed)
  1  at least one source failed (see the 'failed:' lines and the table)
  2  bad usage: unreadable input, no sources, a bad parameter, no such API key"""

PURGE = """\
Drop every cached result made from each SOURCE (DELETE /cache?input=SOURCE, signed with an admin
API key), so the next request makes them again. Sources are the arguments, or one per line on
standard input when there are none. Prints one line per source: how many results were dropped."""

PURGE_EPILOG = """\
examples:
  IMGSERVER_KEYS=ops:SECRET:admin python -m imgserver purge https://example.com/a.jpg
  python -m imgserver purge --server https://img.example.com --key ops < sources.txt

exit status:
  0  every source was purged
  1  at least one purge failed (a line on standard error says why)
  2  bad usage: no sources, no enabled admin API key"""

SIGN = """\
Print URL signed with an API key: /graph/NAME.EXT?query becomes
/graph/KEY/SIGNATURE/NAME.EXT?query (HMAC-SHA256 of 'NAME.EXT?query' as sent; imgflo's md5 for a
legacy key), and /cache?input=... becomes /cache/KEY/SIGNATURE?input=... (admin keys only). The
query is signed exactly as written: send it byte for byte."""

SIGN_EPILOG = """\
examples:
  IMGSERVER_KEYS=web:SECRET python -m imgserver sign \\
      'http://localhost:8080/graph/passthrough.jpg?input=https%3A%2F%2Fexample.com%2Fa.jpg&width=300'

exit status:
  0  the signed URL is printed
  2  not a /graph/ or /cache URL, or no such enabled API key"""


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="python -m imgserver",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = top.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("serve", help="run the HTTP service")
    sub.add_parser("check", help="validate settings and graphs, then exit")
    sub.add_parser("schema", help="print graphs/schema.json (generated from the op registry)")
    stack = sub.add_parser("stack", help="run the distributed mode on this machine (make stack)")
    stack.add_argument("roles", nargs="*", help="Procfile roles to run (default: all)")

    pre = manual(
        sub, "prefetch", "warm the cache for a list of source URLs", PREFETCH, PREFETCH_EPILOG
    )
    pre.add_argument(
        "sources", nargs="*", metavar="FILE", help="URL list or sitemap.xml ('-': stdin)"
    )
    pre.add_argument("-g", "--graph", required=True, help="graph and format, e.g. passthrough.webp")
    pre.add_argument(
        "-p",
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a graph parameter (repeat for more), e.g. -p width=400",
    )
    add_server(pre)
    pre.add_argument(
        "-k", "--key", help="sign the URLs with this API key (secret from IMGSERVER_KEYS)"
    )
    pre.add_argument(
        "-j",
        "--concurrency",
        type=int,
        default=4,
        metavar="N",
        help="sources in flight at once (default: %(default)s)",
    )
    pre.add_argument(
        "--no-wait",
        action="store_true",
        help="count a queued task as done instead of following it to its final state",
    )
    pre.add_argument(
        "--timeout",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="give up on a source after this long (default: %(default)g)",
    )
    pre.add_argument(
        "--progress",
        choices=["auto", "bar", "lines", "none"],
        default="auto",
        help="bar: always the bar; lines: a line every --interval seconds; auto (default): "
        "the bar on a terminal, else lines",
    )
    pre.add_argument(
        "--interval",
        type=float,
        metavar="SECONDS",
        default=10.0,
        help="seconds between progress lines (default: %(default)g)",
    )

    pur = manual(
        sub, "purge", "drop every cached result made from some sources", PURGE, PURGE_EPILOG
    )
    pur.add_argument("sources", nargs="*", metavar="SOURCE", help="a source URL")
    add_server(pur)
    pur.add_argument("-k", "--key", help="the admin API key (default: the first enabled one)")

    sign = manual(
        sub, "sign", "print the signed form of a /graph/ or /cache URL", SIGN, SIGN_EPILOG
    )
    sign.add_argument("url", help="e.g. 'http://host/graph/passthrough.jpg?input=...&width=300'")
    sign.add_argument(
        "-k", "--key", help="the API key to sign with (default: the first enabled one)"
    )
    spec = sub.add_parser(
        "openapi", help="print the OpenAPI description (GET /openapi.json) of these settings"
    )
    spec.add_argument(
        "--docs",
        action="store_true",
        help="instead, rewrite docs/api.md's endpoint index (from the default settings)",
    )
    return top


def manual(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    summary: str,
    description: str,
    epilog: str,
) -> argparse.ArgumentParser:
    """A command whose --help reads like a manual page: its description, options, then the
    examples and exit statuses (``epilog``), laid out as written."""
    return sub.add_parser(
        name,
        help=summary,
        description=description,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def add_server(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "-s",
        "--server",
        default=default_server(),
        help="the server's base URL (default: $IMGSERVER_URL, else http://127.0.0.1:"
        "$IMGSERVER_PORT, else port 8080; now %(default)s)",
    )


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command in ("prefetch", "purge", "sign"):
        from . import cli

        command = {"prefetch": cli.prefetch, "purge": cli.purge}.get(args.command)
        try:
            return command(args) if command else cli.sign_url(args.url, args.key)
        except cli.CliError as exc:
            print(f"imgserver {args.command}: {exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print(f"imgserver {args.command}: interrupted", file=sys.stderr)
            return 130
    if args.command == "stack":
        from .stack import main as stack_main

        return stack_main(args.roles)
    if args.command == "openapi":
        return write_openapi(docs=args.docs)
    if args.command == "schema":
        from .graphschema import schema_text

        sys.stdout.write(schema_text())
        return 0

    from aiohttp import web
    from aiohttp.log import access_logger

    from . import logs
    from .app import create_app
    from .catalogue import GraphError
    from .errors import ImgServerError
    from .localservices import port_in_use, port_taken_message
    from .settings import Settings, SettingsError

    try:
        settings = Settings.from_env()
        if args.command != "check" and port_in_use(settings.port, settings.host):
            print(
                f"imgserver: {port_taken_message(settings.port, 'IMGSERVER_PORT')}", file=sys.stderr
            )
            return 1
        app = create_app(settings)
    except (SettingsError, GraphError) as exc:
        print(f"imgserver: {exc}", file=sys.stderr)
        return 2
    logs.configure(settings)
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
            access_log_class=logs.AccessLogger,
        )
    except ImgServerError as exc:  # a backend could not be opened
        print(f"imgserver: {exc.message}", file=sys.stderr)
        return 3
    except OSError as exc:  # taken since the check above
        if exc.errno != errno.EADDRINUSE:
            raise
        print(f"imgserver: {port_taken_message(settings.port, 'IMGSERVER_PORT')}", file=sys.stderr)
        return 1
    return 0


def default_server() -> str:
    import os

    port = os.environ.get("IMGSERVER_PORT") or "8080"
    return os.environ.get("IMGSERVER_URL") or f"http://127.0.0.1:{port}"


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


if __name__ == "__main__":
    sys.exit(main())
