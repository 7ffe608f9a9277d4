"""Every queue, channel, key and storage prefix name, in one place."""

from __future__ import annotations

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

RESULTS_PREFIX = "results/"  # storage path of a result: results/{cache key}
ORIGINALS_PREFIX = "originals/"  # storage path of an uploaded original: originals/{image id}


def result_path(key: str) -> str:
    return RESULTS_PREFIX + key
