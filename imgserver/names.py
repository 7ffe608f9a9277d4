"""Every queue, channel, key and storage prefix name, in one place."""

from __future__ import annotations

import hashlib

URGENT = "urgent"  # GET misses: a client is waiting
BACKGROUND = "background"  # prefetches and uploads
QUEUES = (URGENT, BACKGROUND)
PRIORITY = {URGENT: 0, BACKGROUND: 1}  # lower runs first when both wait for a worker process

EVENTS_CHANNEL = "imgserver:events"  # job done/failed and task changes

# RabbitMQ: a durable queue per role, a delay queue per role that dead-letters back into it
# (retries with backoff), and one dead-letter queue for jobs that used up their attempts.
AMQP_QUEUE = {URGENT: "imgserver.urgent", BACKGROUND: "imgserver.background"}
AMQP_RETRY_QUEUE = {URGENT: "imgserver.urgent.retry", BACKGROUND: "imgserver.background.retry"}
AMQP_DEAD_QUEUE = "imgserver.dead"

# Redis keys.
REDIS_RESULT = "imgserver:result:{key}"  # cache index entry (JSON)
REDIS_INPUT = "imgserver:input:{digest}"  # set of result keys made from one input
REDIS_TASK = "imgserver:task:{id}"  # task record (JSON)
REDIS_UNFINISHED = "imgserver:tasks:unfinished"  # sorted set of task ids not yet final
REDIS_INFLIGHT = "imgserver:inflight:{key}"  # in-flight lease: its holder's token, with expiry
REDIS_IMAGE = "imgserver:image:{id}"  # image record (JSON), no expiry
REDIS_IMAGES = "imgserver:images"  # sorted set of image ids (all scores 0: ordered by id)
REDIS_QUOTA = "imgserver:quota:{name}"  # results computed for an API key
REDIS_FAILURE = "imgserver:failure:{scope}"  # a remembered failure (JSON), with its expiry
REDIS_FAILURES = "imgserver:failures:{digest}"  # set of failure scopes remembered for one input

RESULTS_PREFIX = "results/"  # storage path of a result: results/{cache key}
ORIGINALS_PREFIX = "originals/"  # storage path of an uploaded original: originals/{image id}


def result_path(key: str) -> str:
    return RESULTS_PREFIX + key


def source_digest(source: str) -> str:
    """SHA-256 (hex) of a canonical input: how stores and surrogate keys name a source."""
    return hashlib.sha256(source.encode()).hexdigest()


# A remembered failure is kept under a scope (``CacheIndex.remember_failure``): the source's
# own (fetching or checking it failed: every request of that source gets the error), or one
# request's (its graph failed on that source: only that cache key gets it).


def source_scope(source: str) -> str:
    return "source:" + source_digest(source)


def result_scope(key: str) -> str:
    return "result:" + key


# Surrogate keys (``Surrogate-Key`` / ``Cache-Tag`` on /graph/ answers): a CDN in front purges
# by them. ``src-`` names the source a result was made from (the input at the end of a chain),
# ``graph-`` the graph.
SURROGATE_SOURCE = "src-{digest16}"
SURROGATE_GRAPH = "graph-{name}"


def source_surrogate(source: str) -> str:
    return SURROGATE_SOURCE.format(digest16=source_digest(source)[:16])


def graph_surrogate(graph: str) -> str:
    return SURROGATE_GRAPH.format(name=graph)
