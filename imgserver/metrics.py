"""Prometheus metrics, one registry per app (no global state)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics import MetricWrapperBase

CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "imgserver_http_requests", "HTTP requests answered", ["route", "status"], registry=r
        )
        self.cache = Counter(
            "imgserver_cache_lookups",
            "Result lookups on /graph, by result",
            ["result"],
            registry=r,
        )
        self.published = Counter(
            "imgserver_jobs_published", "Jobs put on a queue", ["queue"], registry=r
        )
        self.hit_checks = Counter(
            "imgserver_hit_checks",
            "Hits whose object was looked for in storage (sampled, or a POST), by what was found",
            ["result"],
            registry=r,
        )
        self.failures_remembered = Counter(
            "imgserver_failures_remembered",
            "Failed sources put in the failure memory by workers, by error code",
            ["code"],
            registry=r,
        )
        self.failure_hits = Counter(
            "imgserver_failure_hits",
            "/graph/ requests answered from the failure memory (nothing fetched), by error code",
            ["code"],
            registry=r,
        )
        self.joined = Counter(
            "imgserver_singleflight_joins",
            "Requests that joined a job already running",
            registry=r,
        )
        self.takeovers = Counter(
            "imgserver_lease_takeovers",
            "Jobs published again because no one held their in-flight lease any more",
            registry=r,
        )
        self.jobs = Counter(
            "imgserver_jobs",
            "Jobs handled by workers, by outcome",
            ["role", "outcome"],
            registry=r,
        )
        self.job_seconds = Histogram(
            "imgserver_job_seconds",
            "Time from dequeue to stored result",
            ["role"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
            registry=r,
        )
        # labelled children by label values: labels() takes a lock and builds a key each call,
        # which showed in the hit path's profile
        self._children: dict[tuple[int, tuple[str, ...]], MetricWrapperBase] = {}
        self.pool_busy = Gauge("imgserver_pool_busy", "Worker processes running a job", registry=r)
        self.queue_depth = Gauge(
            "imgserver_queue_depth", "Jobs waiting in a queue", ["queue"], registry=r
        )
        self.backend_up = Gauge(
            "imgserver_backend_up",
            "Whether a backend answered its ping when /metrics was scraped (what /readyz asks)",
            ["backend"],
            registry=r,
        )
        self.miss_seconds = Histogram(
            "imgserver_miss_seconds",
            "Time a /graph miss waited for its result on the frontend, by how it ended",
            ["result"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 25, 60),
            registry=r,
        )
        self.pool_rss = Gauge(
            "imgserver_pool_rss_bytes",
            "Resident memory of this process's image processes, together",
            registry=r,
        )
        # process_resident_memory_bytes, process_cpu_seconds_total, ... of this process
        ProcessCollector(registry=r)

    def count(self, metric: Counter, *labels: str) -> None:
        """``metric.labels(*labels).inc()``, with the child looked up once."""
        key = (id(metric), labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        child.inc()  # type: ignore[attr-defined]

    def watch_pool(self, pids: Callable[[], Iterable[int]]) -> None:
        """Report the image processes' RSS (read from /proc when scraped)."""
        self.pool_rss.set_function(lambda: float(sum(map(rss_bytes, pids()))))

    def render(self) -> bytes:
        return bytes(generate_latest(self.registry))


PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss_bytes(pid: int) -> int:
    """A process's resident set size; 0 when it is gone (or there is no /proc)."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            return int(f.read().split()[1]) * PAGE
    except (OSError, IndexError, ValueError):
        return 0
