"""``python -m workers urgent|background``: one worker role, consuming only its own queue.

Each process runs a pool of ``IMGSERVER_WORKERS`` image processes (libvips threads sized by
``IMGSERVER_VIPS_CONCURRENCY``). Scale a role by running more of these processes, on as many
machines as you like; they share RabbitMQ, Redis and S3. SIGTERM stops taking jobs, lets the
running ones finish (up to 30 s) and exits; whatever did not finish is delivered again.

Imports stay inside functions: image processes are spawned, and spawn re-imports this module.
"""

from __future__ import annotations

import argparse
import errno
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from imgserver.settings import Settings

GRACE = 30.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workers", description=__doc__)
    parser.add_argument("role", choices=["urgent", "background"])
    parser.add_argument(
        "--concurrency",
        type=int,
        default=0,
        help="jobs in flight at once (default: 2 x worker processes)",
    )
    args = parser.parse_args(argv)

    import asyncio

    from imgserver import logs
    from imgserver.catalogue import GraphError
    from imgserver.settings import Settings, SettingsError

    try:
        settings = Settings.from_env()
        if settings.embedded:
            raise SettingsError(
                "IMGSERVER_AMQP_URL is not set: in the embedded mode the workers run inside "
                "`python -m imgserver serve`"
            )
    except (SettingsError, GraphError) as exc:
        print(f"workers: {exc}", file=sys.stderr)
        return 2
    from imgserver.localservices import port_in_use, port_taken_message

    metrics_port = settings.worker_metrics_port
    taken = port_taken_message(metrics_port, "IMGSERVER_WORKER_METRICS_PORT")
    if metrics_port and port_in_use(metrics_port, settings.host):
        print(f"workers: {taken}", file=sys.stderr)
        return 1
    logs.configure(settings)
    from imgserver.__main__ import use_uvloop
    from imgserver.errors import ImgServerError

    use_uvloop()
    try:
        return asyncio.run(run(args.role, args.concurrency or 2 * settings.workers, settings))
    except ImgServerError as exc:  # a backend could not be opened
        print(f"workers: {exc.message}", file=sys.stderr)
        return 3
    except OSError as exc:  # the metrics port, taken since the check above
        if exc.errno != errno.EADDRINUSE:
            raise
        print(f"workers: {taken}", file=sys.stderr)
        return 1


async def run(role: str, concurrency: int, settings: Settings) -> int:
    import asyncio
    import contextlib
    import logging
    import signal

    from aiohttp import web

    from imgserver.backends.factory import open_backends
    from imgserver.catalogue import Catalogue
    from imgserver.metrics import Metrics
    from imgserver.processing import running_workers
    from imgserver.web import operations
    from imgserver.web.state import BACKENDS, METRICS

    log = logging.getLogger("workers")
    catalogue = Catalogue.load(
        settings.graphs_dir,
        max_dimension=settings.max_dimension,
        auto_target=settings.auto_quality_target,
    )
    metrics = Metrics()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    async with contextlib.AsyncExitStack() as stack:
        backends = await stack.enter_async_context(open_backends(settings))
        crew = await stack.enter_async_context(
            running_workers(settings, backends, catalogue, metrics, {role: concurrency})
        )
        if settings.worker_metrics_port:  # /metrics, /healthz and /readyz of this role
            app = web.Application()
            app[BACKENDS], app[METRICS] = backends, metrics
            app.router.add_routes(operations.probes)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            stack.push_async_callback(runner.cleanup)
            await web.TCPSite(runner, settings.host, settings.worker_metrics_port).start()
        log.info("%s worker: %d processes, %d jobs at once", role, crew.pool.size, concurrency)
        print(f"workers: {role} ready", flush=True)
        stopping = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait({*crew.runners, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        for runner_task in crew.runners:
            if runner_task in done:  # the consumer died: report why
                runner_task.result()
        log.info("%s worker: stopping, letting running jobs finish", role)
        await crew.drain(GRACE)
    return 0


if __name__ == "__main__":
    sys.exit(main())
