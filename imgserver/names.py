"""Every queue, channel, key and storage prefix name, in one place."""

from __future__ import annotations

URGENT = "urgent"  # GET misses: a client is waiting
BACKGROUND = "background"  # prefetches and uploads
QUEUES = (URGENT, BACKGROUND)
PRIORITY = {URGENT: 0, BACKGROUND: 1}  # lower runs first when both wait for a worker process

EVENTS_CHANNEL = "imgserver:events"  # job done/failed and task changes

RESULTS_PREFIX = "results/"  # storage path of a result: results/{cache key}
ORIGINALS_PREFIX = "originals/"  # storage path of an uploaded original: originals/{image id}


def result_path(key: str) -> str:
    return RESULTS_PREFIX + key
