"""The one middleware: every failure becomes the API's JSON error body with its status, and
every answer is counted (one middleware, not two: each layer showed in the hit path's profile)."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from .. import logs
from ..errors import (
    ImgServerError,
    Internal,
    MethodNotAllowed,
    NotFound,
    SourceTooLarge,
    transient,
)
from .state import IDS, METRICS

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn every failure into the API's JSON error body with its status; count the answer.
    Every answer carries the request's id (``X-Request-Id``, logs.py), and so does every log
    line written meanwhile (a stream its handler prepares takes the id from ``logs.current``)."""
    request_id = logs.accepted(request.headers.get(logs.HEADER), request.app[IDS])
    token = logs.current.set(request_id)
    try:
        response = await handler(request)
    except ImgServerError as exc:
        if exc.detail:  # words of a library or a backend: for the log, not for the client
            log.warning("%s %s: %s: %s", request.method, request.path, exc.message, exc.detail)
        response = error_response(exc)
    except web.HTTPMethodNotAllowed as exc:  # RFC 9110: a 405 lists the methods allowed
        allow = {"Allow": exc.headers["Allow"]}
        message = f"{request.method} is not allowed here"
        response = error_response(MethodNotAllowed(message, headers=allow))
    except web.HTTPNotFound:
        response = error_response(NotFound(f"no resource at {request.path}"))
    except web.HTTPRequestEntityTooLarge:
        response = error_response(SourceTooLarge("the request body is too large"))
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = "invalid_input" if exc.status < 500 else "internal"
        body = {"error": {"code": code, "message": exc.reason}}
        headers = {"Cache-Control": "no-store"} if transient(exc.status) else None
        response = web.json_response(body, status=exc.status, headers=headers)
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path_qs)
        response = error_response(Internal())
    finally:
        logs.current.reset(token)
    if not response.prepared:
        response.headers[logs.HEADER] = request_id
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else "unmatched"
    metrics = request.app[METRICS]
    metrics.count(metrics.requests, route, str(response.status))
    return response


def error_response(exc: ImgServerError) -> web.Response:
    """The JSON error; a transient one (5xx, 429) says ``Cache-Control: no-store``."""
    body = json.dumps({"error": exc.to_dict()}, default=str)
    headers = exc.headers
    if transient(exc.status) and "Cache-Control" not in headers:
        headers = {**headers, "Cache-Control": "no-store"}
    return web.Response(
        status=exc.status, text=body, content_type="application/json", headers=headers
    )
