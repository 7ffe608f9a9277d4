"""metrics.py: the image processes' RSS read from /proc at scrape time, the process metrics."""

from __future__ import annotations

import os
import subprocess
import sys

from prometheus_client.parser import text_string_to_metric_families

from imgserver.metrics import Metrics, rss_bytes


def samples(metrics: Metrics) -> dict[str, float]:
    text = metrics.render().decode()
    return {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples}


def test_rss_of_a_live_and_a_gone_process() -> None:
    assert rss_bytes(os.getpid()) > 1_000_000
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert rss_bytes(child.pid) == 0  # reaped: no /proc entry


def test_pool_rss_is_the_sum_over_the_pools_processes_when_scraped() -> None:
    metrics = Metrics()
    assert samples(metrics)["imgserver_pool_rss_bytes"] == 0  # no pool watched
    pids: list[int] = []
    metrics.watch_pool(lambda: pids)
    assert samples(metrics)["imgserver_pool_rss_bytes"] == 0
    pids.extend([os.getpid(), os.getpid()])
    value = samples(metrics)["imgserver_pool_rss_bytes"]
    assert value >= 2 * 1_000_000
    assert samples(metrics)["process_resident_memory_bytes"] > 1_000_000
