"""What an operator sees, on the distributed mode as real processes (a frontend and an urgent
worker on real Redis, RabbitMQ and moto's S3), configured as deploy/compose.yaml configures it:
RabbitMQ's user, vhost and job-queue policy imported from deploy/rabbitmq/definitions.json,
quorum queues, JSON logs.

- a miss's request id: in the response, the frontend's access log and the worker's log;
- every metric the dashboard and the alert rules use is served, and a real Prometheus
  (Debian's) scraping both processes evaluates every one of their queries.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aio_pika
import pytest
from multidict import CIMultiDict
from prometheus_client.parser import text_string_to_metric_families

from imgserver.backends.amqp import AmqpBroker
from imgserver.errors import Failure, Unavailable
from imgserver.messages import Job
from imgserver.names import AMQP_DEAD_QUEUE, AMQP_QUEUE, AMQP_RETRY_QUEUE, URGENT
from imgserver.settings import Settings

from ..conftest import Origin
from ..servers import REPO, RabbitServer, Service, WorkerProcess, free_port
from .test_deploy import all_queries, dashboard_queries, family, referenced, tool
from .test_distributed import Stack, fetch, graph_url, photo, wait_ready
from .test_distributed import stack as stack  # the fixture

DEFINITIONS = REPO / "deploy" / "rabbitmq" / "definitions.json"
VHOST = "imgserver"
POLICY = "imgserver-jobs"


def compose_amqp_url(rabbit: RabbitServer) -> str:
    """The compose file's AMQP URL, pointed at the test node."""
    return f"amqp://imgserver:imgserver@127.0.0.1:{rabbit.port}/{VHOST}"


@pytest.fixture
def compose_rabbit(rabbit_server: RabbitServer) -> Iterator[str]:
    """The test node with deploy/rabbitmq/definitions.json imported, as the compose stack's
    RabbitMQ loads it at boot; the vhost is emptied afterwards."""
    imported = rabbit_server.ctl("import_definitions", str(DEFINITIONS))
    assert imported.returncode == 0, imported.stdout + imported.stderr
    yield compose_amqp_url(rabbit_server)
    rabbit_server.ctl("delete_vhost", VHOST)


def queues(rabbit: RabbitServer) -> dict[str, tuple[str, str]]:
    out = rabbit.ctl("list_queues", "-q", "-p", VHOST, "name", "type", "policy").stdout
    rows = [line.split("\t") for line in out.splitlines()[1:] if line.strip()]  # (a header)
    return {row[0]: (row[1], row[2] if len(row) > 2 else "") for row in rows}


def job(key: str) -> Job:
    return Job(key, "passthrough", "d", "jpeg", "http://example.com/a.jpg", {})


async def test_quorum_queues_with_the_compose_definitions(
    compose_rabbit: str, rabbit_server: RabbitServer
) -> None:
    """The app declares quorum queues (a policy cannot); the compose file's user may do all the
    service does with them; the policy applies to the two job queues; a retry comes back."""
    broker = AmqpBroker(Settings(amqp_url=compose_rabbit, amqp_queue_type="quorum"))
    await broker.open()
    try:
        declared = queues(rabbit_server)
        for name in (*AMQP_QUEUE.values(), *AMQP_RETRY_QUEUE.values(), AMQP_DEAD_QUEUE):
            assert declared[name][0] == "quorum", (name, declared)
        for name, (_, policy) in declared.items():
            assert policy == (POLICY if name in AMQP_QUEUE.values() else ""), (name, policy)
        await broker.publish(URGENT, job("now"))
        await broker.publish(URGENT, job("later"), delay=0.2)  # through the retry queue
        await broker.dead_letter(URGENT, job("dead"), Failure("internal", "boom", {}))
        got = []
        async with asyncio.timeout(15):
            async for delivery in broker.consume(URGENT, prefetch=4):
                got.append(delivery.job.key)
                await delivery.ack()
                if len(got) == 2:
                    break
        assert got == ["now", "later"]
        assert await broker.depth(URGENT) == 0
    finally:
        await broker.close()
    # a broker configured for classic queues is told why it cannot use these
    classic = AmqpBroker(Settings(amqp_url=compose_rabbit), connect_timeout=2)
    with pytest.raises(Unavailable, match="cannot declare the queues"):
        await classic.open()
    await classic.close()


async def test_the_policy_dead_letters_a_job_redelivered_too_often(
    compose_rabbit: str, rabbit_server: RabbitServer
) -> None:
    """A job that keeps coming back (a worker that crashes on it) ends in the dead queue after
    the policy's delivery-limit instead of crash-looping the workers for ever."""
    broker = AmqpBroker(Settings(amqp_url=compose_rabbit, amqp_queue_type="quorum"))
    await broker.open()
    try:
        await broker.publish(URGENT, job("poison"))
        limit = json.loads(DEFINITIONS.read_text())["policies"][0]["definition"]
        connection = await aio_pika.connect(compose_rabbit)
        async with connection:
            channel = await connection.channel()
            queue = await channel.declare_queue(
                AMQP_QUEUE[URGENT], passive=True
            )  # as a crashing worker would: take it, give it back
            for _ in range(limit["delivery-limit"] + 1):
                message = await queue.get(timeout=5)
                await message.reject(requeue=True)
            assert await queue.get(fail=False) is None
            dead = await channel.declare_queue(AMQP_DEAD_QUEUE, passive=True)
            for _ in range(100):  # dead-lettering is asynchronous
                message = await dead.get(fail=False)
                if message is not None:
                    break
                await asyncio.sleep(0.1)
            assert message is not None
            await message.ack()
    finally:
        await broker.close()


@pytest.fixture
def compose_stack(stack: Stack, compose_rabbit: str) -> Stack:
    stack.env |= {
        "IMGSERVER_AMQP_URL": compose_rabbit,
        "IMGSERVER_AMQP_QUEUE_TYPE": "quorum",
        "IMGSERVER_LOG_FORMAT": "json",
        "IMGSERVER_LOG_LEVEL": "INFO",
        "IMGSERVER_ACCESS_LOG": "1",
    }
    return stack


def json_lines(log: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.splitlines() if line.startswith("{")]


async def request_ids_go_to_the_worker_and_back(
    web: Service, worker: WorkerProcess, origin: Origin
) -> None:
    """Two misses: one with an id of the client's, one with a malformed id (replaced by ours);
    each id is in the response, the frontend's access log line and the worker's job line."""
    ours = f"e2e-{uuid.uuid4()}"
    url = graph_url(web, "passthrough.jpg", origin.add(f"/o-{uuid.uuid4().hex}.jpg", photo()))
    status, headers, _ = await fetch(url, headers={"X-Request-Id": ours})
    assert status in (200, 301), status
    assert CIMultiDict(headers)["X-Request-Id"] == ours
    # a miss without an id: the frontend makes one, and it is the one the worker logs
    url = graph_url(web, "passthrough.jpg", origin.add(f"/o-{uuid.uuid4().hex}.jpg", photo()))
    status, headers, _ = await fetch(url, headers={"X-Request-Id": "bad id"})
    assert status in (200, 301), status
    made = CIMultiDict(headers)["X-Request-Id"]
    assert made != "bad id" and len(made) == 32

    for rid in (ours, made):
        deadline = time.monotonic() + 10
        while True:  # both lines are written after the answer went out
            jobs = [r for r in json_lines(worker.log()) if r.get("request_id") == rid]
            access = [
                r
                for r in json_lines(web.log())
                if r.get("request_id") == rid and r["logger"] == "aiohttp.access"
            ]
            if (jobs and access) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
        assert [r["outcome"] for r in jobs] == ["ok"], worker.log()[-3000:]
        assert jobs[0]["role"] == "urgent" and jobs[0]["logger"] == "imgserver.worker"
        assert len(access) == 1, web.log()[-3000:]
        assert access[0]["status"] in (200, 301)
        assert access[0]["path"].startswith("/graph/passthrough.jpg?")


# -- metrics, and Prometheus evaluating the queries --------------------------------------------


def families(url: str) -> dict[str, set[str]]:
    with urllib.request.urlopen(url, timeout=5) as r:
        text = r.read().decode()
    return {f.name: {s.name for s in f.samples} for f in text_string_to_metric_families(text)}


class Prometheus:
    """Debian's prometheus, scraping the given targets every second, in a temporary dir."""

    def __init__(self, tmp: Path, targets: list[str]) -> None:
        self.port = free_port()
        config = tmp / "prometheus.yml"
        config.write_text(
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
            "scrape_configs:\n"
            "  - job_name: imgserver\n"
            f"    static_configs: [{{targets: {json.dumps(targets)}}}]\n"
        )
        self.log = (tmp / "prometheus.log").open("wb")
        self.proc = subprocess.Popen(
            [
                tool("prometheus"),
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "HOME": str(tmp)},
        )

    def query(self, expr: str) -> dict[str, Any]:
        url = f"http://127.0.0.1:{self.port}/api/v1/query?" + urllib.parse.urlencode(
            {"query": expr}
        )
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as exc:  # 400: the query does not parse
            return json.loads(exc.read())

    def wait_scraped(self, scrapes: int, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                result = self.query("min(count_over_time(up[1m]))")
                values = result["data"]["result"]
                if values and float(values[0]["value"][1]) >= scrapes:
                    return
            except (OSError, KeyError):
                pass
            time.sleep(0.3)
        raise AssertionError("prometheus did not scrape the targets")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(15)
        self.log.close()


def as_instant(expr: str) -> str:
    """A dashboard query as Grafana would send it, with its variables filled in."""
    return expr.replace("$__rate_interval", "1m").replace("$job", ".*")


async def test_what_an_operator_sees_of_misses_and_hits(
    compose_stack: Stack, origin: Origin, tmp_path: Path
) -> None:
    """The request ids of misses in the logs; then every metric the dashboard and the alerts
    use is served, and Prometheus evaluates every query over the two processes' metrics (one
    stack for both: starting one is most of the time here)."""
    web = compose_stack.frontend()
    worker = compose_stack.worker("urgent")
    await wait_ready(web)
    await request_ids_go_to_the_worker_and_back(web, worker, origin)
    prometheus = Prometheus(tmp_path, [f"127.0.0.1:{web.port}", f"127.0.0.1:{worker.metrics_port}"])
    try:
        await asyncio.to_thread(prometheus.wait_scraped, 2)
        for _ in range(2):  # a miss (a job), then a hit
            src = origin.add(f"/o-{uuid.uuid4().hex}.jpg", photo())
            status, _, _ = await fetch(graph_url(web, "passthrough.jpg", src))
            assert status in (200, 301)
            status, _, _ = await fetch(graph_url(web, "passthrough.jpg", src))
            assert status in (200, 301)
        served_web = families(web.url("/metrics"))
        served_worker = families(f"http://127.0.0.1:{worker.metrics_port}/metrics")
        served = served_web | served_worker
        for query in all_queries():
            names, _ = referenced(query)
            for name in names - {"up"}:
                assert family(name) in served, (name, query)
        # each role serves samples of what the dashboard shows for it
        assert "imgserver_miss_seconds_bucket" in served_web["imgserver_miss_seconds"]
        assert "imgserver_jobs_total" in served_worker["imgserver_jobs"]
        assert "imgserver_pool_rss_bytes" in served_worker["imgserver_pool_rss_bytes"]
        assert "process_resident_memory_bytes" in served_worker["process_resident_memory_bytes"]

        started = time.monotonic()
        await asyncio.to_thread(prometheus.wait_scraped, 5)
        empty = []
        for query in all_queries():
            expr = as_instant(query)
            result = prometheus.query(expr)
            assert result["status"] == "success", (expr, result)
            if not result["data"]["result"]:
                empty.append(expr)
        # every dashboard panel has data once a miss and a hit went through (alerts, firing
        # on nothing here, are empty)
        panels_empty = [q for q in map(as_instant, dashboard_queries()) if q in empty]
        allowed = ("source_", "hit_checks", "lease_takeovers", "500|503")  # nothing of those
        assert all(any(a in q for a in allowed) for q in panels_empty), panels_empty
        assert time.monotonic() - started < 60
    finally:
        prometheus.stop()
