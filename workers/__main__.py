"""``python -m workers urgent|background``: one worker role, consuming only its own queue.

Each process runs a pool of ``IMGSERVER_WORKERS`` image processes (libvips threads sized by
``IMGSERVER_VIPS_CONCURRENCY``). Scale a role by running more of these processes, on as many
machines as you like; they share RabbitMQ, Redis and S3. SIGTERM stops taking jobs, lets the
running ones finish (up to 30 s) and exits; whatever did not finish is delivered again.

Imports stay inside functions: image processes are spawned, and spawn re-imports this module.
"""

from __future__ import annotations

import argparse
import sys

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
    import logging

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
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    from imgserver.__main__ import use_uvloop
    from imgserver.errors import ImgServerError

    use_uvloop()
    try:
        return asyncio.run(run(args.role, args.concurrency or 2 * settings.workers, settings))
    except ImgServerError as exc:  # a backend could not be opened
        print(f"workers: {exc.message}", file=sys.stderr)
        return 3


async def run(role: str, concurrency: int, settings: object) -> int:
    import asyncio
    import contextlib
    import logging
    import signal

    from aiohttp import web

    from imgserver.backends import open_backends
    from imgserver.catalogue import Catalogue
    from imgserver.fetch import Fetcher
    from imgserver.metrics import CONTENT_TYPE, Metrics
    from imgserver.pool import ProcessPool
    from imgserver.runtime.execute import init_options
    from imgserver.settings import Settings
    from imgserver.worker import Worker

    assert isinstance(settings, Settings)
    log = logging.getLogger("workers")
    catalogue = Catalogue.load(settings.graphs_dir, max_dimension=settings.max_dimension)
    metrics = Metrics()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    backends = await open_backends(settings)
    pool = ProcessPool(
        settings.workers,
        settings.threads_per_worker,
        settings.job_deadline,
        memory_limit=settings.worker_memory_limit,
        init_options=init_options(settings),
    )
    fetcher = Fetcher(settings)
    runner: web.AppRunner | None = None
    try:
        await pool.start()
        await fetcher.start()
        if settings.worker_metrics_port:
            app = web.Application()

            async def render(_: web.Request) -> web.Response:
                return web.Response(body=metrics.render(), headers={"Content-Type": CONTENT_TYPE})

            app.router.add_get("/metrics", render)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            await web.TCPSite(runner, settings.host, settings.worker_metrics_port).start()
        worker = Worker(
            role,
            backends=backends,
            pool=pool,
            fetcher=fetcher,
            catalogue=catalogue,
            settings=settings,
            metrics=metrics,
            concurrency=concurrency,
        )
        consuming = asyncio.create_task(worker.run(), name=f"worker-{role}")
        log.info("%s worker: %d processes, %d jobs at once", role, pool.size, concurrency)
        print(f"workers: {role} ready", flush=True)
        done, _ = await asyncio.wait(
            {consuming, asyncio.create_task(stop.wait())}, return_when=asyncio.FIRST_COMPLETED
        )
        if consuming in done:  # the consumer died: report why
            consuming.result()
        log.info("%s worker: stopping, letting running jobs finish", role)
        await worker.drain(GRACE)
        consuming.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await consuming
    finally:
        if runner is not None:
            await runner.cleanup()
        await fetcher.close()
        await pool.close()
        await backends.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
