"""Logging: plain text (the default) or one JSON object per line (``IMGSERVER_LOG_FORMAT=json``),
and the request id that follows a miss from the frontend to the worker and back.

The id lives in a context variable: the frontend's middleware sets it for the request's task
(``X-Request-Id`` from the client when it is well-formed, else a new one), the coordinator copies
it into the job it publishes (``Job.request_id``), and the worker sets it again while it handles
that job. Every log line written meanwhile carries it (``request_id`` in JSON, ``[id]`` in text).
A request that joins a job another request started logs its own id; the job's lines carry the
id of the request that queued it.
"""

from __future__ import annotations

import contextvars
import itertools
import json
import logging
import re
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager

from aiohttp.abc import AbstractAccessLogger
from aiohttp.web import BaseRequest, StreamResponse

from .settings import Settings

HEADER = "X-Request-Id"
# What a client may send: printable, no spaces or quotes, at most 128 characters (a UUID, a
# trace id, a load balancer's id all fit). Anything else is replaced by an id of our own.
VALID = re.compile(r"^[A-Za-z0-9._:/+=@-]{1,128}$")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s%(request_tag)s: %(message)s"

# The id of the request (or job) the running task serves; "" outside one. A context variable,
# so concurrent requests on one event loop each see their own.
current: contextvars.ContextVar[str] = contextvars.ContextVar("imgserver_request_id", default="")


class RequestIds:
    """Ids for requests that bring none: 32 hex digits, a random half per process and a count
    (a request id needs to be unique, not unguessable; this costs a third of a random one)."""

    def __init__(self) -> None:
        self._prefix = secrets.token_hex(8)
        self._count = itertools.count()

    def __call__(self) -> str:
        return f"{self._prefix}{next(self._count) & 0xFFFFFFFFFFFFFFFF:016x}"


def accepted(value: str | None, ids: RequestIds) -> str:
    """The client's id when it is well-formed, else a new one."""
    return value if value is not None and VALID.match(value) else ids()


@contextmanager
def serving(request_id: str) -> Iterator[None]:
    """Log lines written inside carry ``request_id``."""
    token = current.set(request_id)
    try:
        yield
    finally:
        current.reset(token)


class _RequestIdFilter(logging.Filter):
    """Puts the current request id on every record (unless the caller gave one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        rid = getattr(record, "request_id", None)
        if rid is None:
            rid = record.request_id = current.get()
        record.request_tag = f" [{rid}]" if rid else ""
        return True


_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "request_tag",
}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, request_id when
    there is one, the exception's traceback when there is one, and any ``extra`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, value in vars(record).items():
            if name not in _STANDARD and not name.startswith("_") and value not in ("", None):
                line[name] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def configure(settings: Settings) -> None:
    """Set up the root logger for a process (the service or a worker role)."""
    handler = logging.StreamHandler()
    handler.addFilter(_RequestIdFilter())
    if settings.log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(settings.log_level.upper())


class AccessLogger(AbstractAccessLogger):
    """The access log's line per request (``IMGSERVER_ACCESS_LOG=1``): client address, method,
    path, status, bytes, seconds and user agent, as fields (JSON) or in the message (text), with
    the response's request id."""

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        agent = request.headers.get("User-Agent", "")
        self.logger.info(
            '%s "%s %s" %d %d %.3fs "%s"',
            request.remote,
            request.method,
            request.path_qs,
            response.status,
            response.body_length,
            time,
            agent,
            extra={
                "request_id": response.headers.get(HEADER, ""),
                "remote": request.remote,
                "method": request.method,
                "path": request.path_qs,
                "status": response.status,
                "bytes": response.body_length,
                "seconds": round(time, 6),
                "agent": agent,
            },
        )
