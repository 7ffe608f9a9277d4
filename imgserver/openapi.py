"""The OpenAPI 3.1 description of the API (``GET /openapi.json``, rendered at ``GET /docs``).

It is generated once, when the app is built, from what the app really serves:

- the paths and methods: the app's router. Every route must have an entry in ``_ROUTES`` (a
  route without one stops start-up, so a new endpoint cannot go undescribed); HEAD is listed
  where clients use it (``/graph/`` URLs and stored objects: a CDN's revalidation) although
  aiohttp answers it wherever GET is;
- the graphs: the catalogue. Each graph has its own paths, so a client generator makes one typed
  method per graph: ``/graph/{name}.{format}`` and ``/graph/{name}`` (format negotiated from
  ``Accept``), and the signed forms ``/graph/{key}/{signature}/{name}[.{format}]``, each with
  GET, HEAD and POST (operation ids ``get_{name}``, ``head_{name}``, ``prefetch_{name}``,
  suffixed ``_auto`` and ``_signed``). Its parameters carry their types, ranges, enums and
  defaults (``components.parameters``, one per graph parameter);
- the errors: the registry of ``errors.py`` (every code, grouped by status);
- the task and image objects: their msgspec types (``records.py``);
- the settings that change answers: the delivery mode (301 or 200), AVIF, the deadline, keys.

``docs_section`` renders the endpoint index that docs/api.md carries between its markers;
``python -m imgserver openapi --docs`` rewrites it and a test fails when it is stale.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import msgspec

from . import __version__
from .catalogue import Catalogue, Graph
from .errors import ImgServerError
from .formats import EXTENSIONS
from .graphschema import value_schema
from .params import Param
from .records import RECORD_ID, ImageView, TaskView
from .request import MAX_INPUT_LENGTH
from .settings import Settings
from .uploads import DEFAULT_GRAPH, DEFAULT_LIMIT, MAX_LIMIT

Json = dict[str, Any]
Route = tuple[str, str]  # (method, the router's canonical path)

GRAPH_ROUTE = "/graph/{spec}"
SIGNED_GRAPH_ROUTE = "/graph/{apikey}/{signature}/{spec}"
DOCS_BEGIN = "<!-- BEGIN GENERATED: python -m imgserver openapi --docs -->"
DOCS_END = "<!-- END GENERATED -->"
_COMPONENT_NAME = re.compile(r"^[a-zA-Z0-9._-]+$")
# What request.canonical_input takes (a stricter spelling: ports 1-65535, printable ASCII):
# an http(s) URL or upload:{id}; and, for input, a chained /graph/ path of this service.
_PORT = r"(?:6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3})"
_URL = rf"[hH][tT][tT][pP][sS]?://[A-Za-z0-9._-]+(?::{_PORT})?(?:[/?#][!-~]*)?"
_UPLOAD = r"upload:[A-Za-z0-9_-]{1,64}"
_SAFE = r"[A-Za-z0-9_.~-]+"  # a key or a signature of a chained input
_CHAIN = rf"/graph/(?:{_SAFE}/{_SAFE}/)?[a-z0-9_-]+(?:\.[A-Za-z0-9]+)?(?:\?[!-~]*)?"
SOURCE_PATTERN = rf"^\s*(?:{_URL}|{_UPLOAD})\s*$"
INPUT_PATTERN = rf"^\s*(?:{_URL}|{_UPLOAD}|{_CHAIN})\s*$"
_SCHEMA_NAMES = {"TaskView": "Task", "ImageView": "Image", "ErrorObject": "ErrorObject"}


def _ref(kind: str, name: str) -> Json:
    return {"$ref": f"#/components/{kind}/{name}"}


def _json(schema: Json, description: str, headers: Mapping[str, Json] | None = None) -> Json:
    out: Json = {"description": description, "content": {"application/json": {"schema": schema}}}
    if headers:
        out["headers"] = dict(headers)
    return out


def _header(description: str, schema: Json | None = None) -> Json:
    return {"description": description, "schema": schema or {"type": "string"}}


HEADERS: Json = {
    "Location": _header("The stored result's URL (a 301), or where it will be (a 202)."),
    "X-Cache": _header(
        "HIT: the result was cached; MISS: it was made for this request.",
        {"type": "string", "enum": ["HIT", "MISS"]},
    ),
    "X-Quality": _header(
        "The quality a JPEG, WebP or AVIF result was encoded at (max-bytes may lower it; "
        "quality=auto: the one chosen, with '; target-not-reached' when even 100 misses the "
        "target).",
        {"type": "string", "pattern": "^[0-9]{1,3}(; target-not-reached)?$"},
    ),
    "Vary": _header("Accept, when the format was negotiated (no extension in the URL)."),
    "Cache-Control": _header(
        "Results: public, with a max-age. Errors: public, max-age=<the failure memory> for "
        "404/415/422; no-store for 5xx."
    ),
    "Retry-After": _header("Seconds to wait before asking again.", {"type": "integer"}),
    "Surrogate-Key": _header(
        "Space-separated keys naming the source (a digest of input) and the graph: purge a "
        "CDN by them as DELETE /cache does."
    ),
    "Cache-Tag": _header("The same keys as Surrogate-Key, comma-separated (Cloudflare)."),
    "ETag": _header("The cache key, quoted (proxy delivery)."),
    "Allow": _header("The methods the resource answers."),
}


def _headers(*names: str) -> Json:
    return {name: _ref("headers", name) for name in names}


# -- errors ------------------------------------------------------------------------------------

_ERROR_HEADERS = {
    429: ("Retry-After",),
    503: ("Retry-After", "Cache-Control"),
    405: ("Allow",),
}


def _error_codes() -> dict[int, list[str]]:
    by_status: dict[int, list[str]] = {}
    for code, cls in ImgServerError.codes().items():
        by_status.setdefault(cls.status, []).append(code)
    return {status: sorted(codes) for status, codes in sorted(by_status.items())}


def _error_components() -> tuple[Json, Json]:
    """(schemas, responses): ``Error`` (every code) and one response per error status, whose
    code is one of that status's."""
    codes = _error_codes()
    everything = sorted(c for group in codes.values() for c in group)
    error_object = {
        "type": "object",
        "description": "code: what went wrong, from the API's vocabulary; message: for people; "
        "other members: details of the code (e.g. param and params for invalid_param).",
        "required": ["code", "message"],
        "properties": {
            "code": {"type": "string", "enum": everything},
            "message": {"type": "string"},
        },
        "additionalProperties": True,
    }
    schemas: Json = {
        "ErrorObject": error_object,
        "Error": {
            "type": "object",
            "description": 'Every error answer: {"error": {"code", "message", ...}}.',
            "required": ["error"],
            "properties": {"error": _ref("schemas", "ErrorObject")},
            "additionalProperties": False,
        },
    }
    responses: Json = {}
    for status, group in codes.items():
        schema = {
            "allOf": [
                _ref("schemas", "Error"),
                {"properties": {"error": {"properties": {"code": {"enum": group}}}}},
            ]
        }
        names = ", ".join(group)
        headers = _headers(*_ERROR_HEADERS.get(status, ("Cache-Control",)))
        responses[f"Error{status}"] = _json(schema, f"Error: {names}.", headers)
    return schemas, responses


def _errors(*statuses: int) -> Json:
    """Responses for these error statuses (and 500, which any operation may answer)."""
    return {str(s): _ref("responses", f"Error{s}") for s in sorted({*statuses, 500})}


# -- graph operations --------------------------------------------------------------------------


def param_schema(param: Param, *, source: bool = False) -> Json:
    """The JSON Schema of a graph parameter's query value (``source``: it names an image)."""
    schema = value_schema(param.type, param.minimum, param.maximum, param.values)
    if source:
        schema["pattern"] = SOURCE_PATTERN
    if param.default is not None:
        schema["default"] = param.default
    return schema


def _param_name(graph: Graph, pname: str) -> str | None:
    """The component name of a graph parameter, or None when its name cannot be one."""
    name = f"{graph.name}.{pname}"
    return name if _COMPONENT_NAME.match(name) else None


def _graph_parameter(graph: Graph, param: Param) -> Json:
    text = param.description or f"{param.type} parameter of {graph.name}"
    if param.type == "bool":
        text += " (true/false; also 1/0, yes/no, on/off)"
    if param.type == "color":
        text += " (#rgb, #rrggbb or #rrggbbaa; the # may be left out)"
    if param.name in graph.source_params:
        text += " (another image: an http(s) URL or upload:{id}, fetched like input)"
    return {
        "name": param.name,
        "in": "query",
        "required": False,
        "description": text,
        "schema": param_schema(param, source=param.name in graph.source_params),
    }


@dataclass(frozen=True)
class _Form:
    """One of the four URL forms of a graph."""

    signed: bool
    negotiated: bool

    def path(self, name: str) -> str:
        prefix = "/graph/{key}/{signature}/" if self.signed else "/graph/"
        return prefix + (name if self.negotiated else name + ".{format}")

    def suffix(self) -> str:
        return ("_auto" if self.negotiated else "") + ("_signed" if self.signed else "")


_FORMS = tuple(
    _Form(signed, negotiated) for signed in (False, True) for negotiated in (False, True)
)


class _Builder:
    def __init__(self, catalogue: Catalogue, settings: Settings) -> None:
        self.catalogue = catalogue
        self.settings = settings
        self.parameters: Json = {}

    def graph_paths(self, methods: set[str], signed: bool) -> Json:
        paths: Json = {}
        for name, graph in self.catalogue.items():
            for form in _FORMS:
                if form.signed != signed:
                    continue
                item = {
                    m.lower(): self.graph_operation(graph, form, m)
                    for m in ("GET", "HEAD", "POST")
                    if m in methods
                }
                paths[form.path(name)] = item
        return paths

    def graph_parameters(self, graph: Graph, form: _Form) -> list[Json]:
        params: list[Json] = []
        if form.signed:
            params += [_ref("parameters", "key"), _ref("parameters", "signature")]
        if not form.negotiated:
            params.append(_ref("parameters", "format"))
        else:
            params.append(_ref("parameters", "Accept"))
        needs = graph.definition.needs_source
        params.append(_ref("parameters", "input" if needs else "input-optional"))
        for pname, param in graph.params.items():
            component = _param_name(graph, pname)
            if component is None:
                params.append(_graph_parameter(graph, param))
                continue
            self.parameters.setdefault(component, _graph_parameter(graph, param))
            params.append(_ref("parameters", component))
        params.append(_ref("parameters", "_nocache"))
        if self.settings.delivery == "proxy":
            params.append(_ref("parameters", "If-None-Match"))
        return params

    def graph_operation(self, graph: Graph, form: _Form, method: str) -> Json:
        verb = {"GET": "get", "HEAD": "head", "POST": "prefetch"}[method]
        what = {
            "GET": "The processed image (waiting for it on a miss).",
            "HEAD": "As GET, without the body.",
            "POST": "Prefetch: queue the result on the background queue (a task).",
        }[method]
        fmt = "negotiated from Accept" if form.negotiated else "given by the extension"
        signed = "; signed with an API key" if form.signed else ""
        example = self.example_url(graph, form)
        responses = self.result_responses(form, head=method == "HEAD")
        if method == "POST":
            responses = {"202": self.task_accepted(), **responses}  # cached: as a hit
        errors = _errors(400, 403, 404, 413, 415, 422, 429, 502, 503, 504)
        if method == "HEAD":
            errors = {s: {"description": f"As GET's {s}, without the body."} for s in errors}
        return {
            "operationId": f"{verb}_{graph.name.replace('-', '_')}{form.suffix()}",
            "tags": [graph.name],
            "summary": f"{graph.name}: {what}",
            "description": f"{graph.description}\n\n{what} Output format {fmt}{signed}. "
            f"Example: `{example}`.",
            "parameters": self.graph_parameters(graph, form),
            "responses": {**responses, **errors},
        }

    def example_url(self, graph: Graph, form: _Form) -> str:
        path = form.path(graph.name).replace("{format}", "jpg")
        query = "input=https://example.com/photo.jpg&" if graph.definition.needs_source else ""
        return f"{path}?{query}width=300"

    def result_responses(self, form: _Form, *, head: bool) -> Json:
        names = ["X-Cache", "X-Quality", "Cache-Control", "Surrogate-Key", "Cache-Tag"]
        if form.negotiated:
            names.append("Vary")
        if self.settings.delivery == "redirect":
            return {
                "301": {
                    "description": "The result exists (a hit, or a miss made in time): "
                    "Location is its URL.",
                    "headers": _headers("Location", *names),
                }
            }
        ok: Json = {
            "description": "The result's bytes (proxy delivery).",
            "headers": _headers("ETag", *names),
        }
        if not head:
            ok["content"] = {"image/*": {"schema": {"type": "string", "format": "binary"}}}
        return {
            "200": ok,
            "304": {"description": "If-None-Match named the result's ETag."},
        }

    def task_accepted(self) -> Json:
        schema = {
            "type": "object",
            "required": ["task"],
            "properties": {"task": _ref("schemas", "Task")},
        }
        return _json(schema, "Queued: the task that makes the result.", _headers("Location"))


# -- the other operations ----------------------------------------------------------------------

_OBJECT = {"type": "object"}
_TEXT = {"type": "string"}


def _op(
    op_id: str,
    tag: str,
    summary: str,
    responses: Json,
    parameters: Iterable[Json] = (),
    **extra: Any,
) -> Json:
    op: Json = {"operationId": op_id, "tags": [tag], "summary": summary, "responses": responses}
    params = list(parameters)
    if params:
        op["parameters"] = params
    op.update(extra)
    return op


def _path_param(name: str, description: str, schema: Json | None = None) -> Json:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": schema or {"type": "string"},
    }


def _query(name: str, description: str, schema: Json, *, required: bool = False) -> Json:
    return {
        "name": name,
        "in": "query",
        "required": required,
        "description": description,
        "schema": schema,
    }


_ID = {"type": "string", "pattern": RECORD_ID.pattern}
_TASK_ID = _path_param("id", "A task's id.", _ID)
_IMAGE_ID = _path_param("id", "An image's id.", _ID)
_EVENTS = {
    "description": "text/event-stream: `event: task` / `event: image` with one `data:` line "
    "of the object as JSON, a `: heartbeat` comment every 15 s, `retry: 2000`.",
    "content": {
        "text/event-stream": {
            "schema": {
                "type": "object",
                "description": "One event (schemathesis and SSE parsers see each as this).",
                "required": ["data"],
                "properties": {
                    "event": {"type": "string", "enum": ["task", "image"]},
                    "data": {"type": "string", "contentMediaType": "application/json"},
                    "id": {"type": "string"},
                    "retry": {"type": "integer"},
                },
            }
        }
    },
}
_HTML = {"content": {"text/html": {"schema": _TEXT}}}


def _graph_names(catalogue: Catalogue) -> Json:
    return {"type": "string", "enum": list(catalogue)}


OperationsOf = Callable[[_Builder, set[str]], Json]


def _graphs_ops(b: _Builder, methods: set[str]) -> Json:
    return {
        "/graphs": {
            "get": _op(
                "list_graphs",
                "catalogue",
                "Every graph and its parameters.",
                {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["graphs"],
                            "properties": {
                                "graphs": {
                                    "type": "object",
                                    "additionalProperties": _ref("schemas", "Graph"),
                                }
                            },
                        },
                        "The catalogue, by graph name.",
                    ),
                    **_errors(),
                },
            )
        }
    }


def _graph_ops(b: _Builder, methods: set[str]) -> Json:
    name = _path_param("name", "A graph's name.", _graph_names(b.catalogue))
    return {
        "/graphs/{name}": {
            "get": _op(
                "show_graph",
                "catalogue",
                "One graph: what a client needs to build a form for it.",
                {"200": _json(_ref("schemas", "Graph"), "The graph."), **_errors(404)},
                [name],
            )
        }
    }


def _ops_ops(b: _Builder, methods: set[str]) -> Json:
    schema = {
        "type": "object",
        "required": ["ops", "encode", "runtimes"],
        "properties": {
            "ops": {"type": "object", "additionalProperties": _OBJECT},
            "encode": {"type": "object", "additionalProperties": _OBJECT},
            "runtimes": {"type": "array", "items": _TEXT},
        },
    }
    return {
        "/ops": {
            "get": _op(
                "list_ops",
                "catalogue",
                "The operations a graph file may use, with their arguments.",
                {"200": _json(schema, "The op registry."), **_errors()},
            )
        }
    }


def _images_ops(b: _Builder, methods: set[str]) -> Json:
    image = _ref("schemas", "Image")
    upload_params = [
        _query(
            "graph",
            f"The graph the upload is processed with (default {DEFAULT_GRAPH}).",
            _graph_names(b.catalogue),
        ),
        _query(
            "format",
            "The output format (default: the original's, when we write it).",
            {"type": "string", "enum": [*EXTENSIONS, "auto"]},
        ),
    ]
    body = {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["image"],
                    "properties": {"image": {"type": "string", "format": "binary"}},
                    # other parts are read past; a part header cannot carry control characters
                    # (but a tab; CR, LF and quotes are escaped by the form encoding)
                    "propertyNames": {"pattern": r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"},
                }
            },
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
            "image/*": {"schema": {"type": "string", "format": "binary"}},
        },
    }
    page = {
        "type": "object",
        "required": ["images", "next_cursor"],
        "properties": {
            "images": {"type": "array", "items": image},
            "next_cursor": {"anyOf": [_ID, {"type": "null"}]},
        },
    }
    item: Json = {}
    if "POST" in methods:
        item["post"] = _op(
            "upload_image",
            "uploads",
            "Upload an image: stores it and starts its compression task.",
            {
                "201": _json(image, "Stored; its task is queued.", _headers("Location")),
                **_errors(400, 404, 413, 415, 422, 429, 503),
            },
            upload_params,
            requestBody=body,
            description="The graph's parameters may follow, each its own query key, as for "
            "its /graph/ URLs (see that graph's operations).",
        )
    if "GET" in methods:
        item["get"] = _op(
            "list_images",
            "uploads",
            "Uploaded images, newest first.",
            {"200": _json(page, "A page of images."), **_errors(400)},
            [
                _query(
                    "limit",
                    "Images per page.",
                    {
                        "type": "integer",
                        "minimum": 1,
                        "maximum": MAX_LIMIT,
                        "default": DEFAULT_LIMIT,
                    },
                ),
                _query("cursor", "next_cursor of the previous page.", _ID),
            ],
        )
    return {"/images": item}


def _image_ops(b: _Builder, methods: set[str]) -> Json:
    return {
        "/images/{id}": {
            "get": _op(
                "show_image",
                "uploads",
                "An uploaded image.",
                {"200": _json(_ref("schemas", "Image"), "The image."), **_errors(404)},
                [_IMAGE_ID],
            )
        }
    }


def _task_ops(b: _Builder, methods: set[str]) -> Json:
    return {
        "/tasks/{id}": {
            "get": _op(
                "show_task",
                "tasks",
                "A task.",
                {"200": _json(_ref("schemas", "Task"), "The task."), **_errors(404)},
                [_TASK_ID],
            )
        }
    }


def _task_status_ops(b: _Builder, methods: set[str]) -> Json:
    schema = {
        "type": "object",
        "required": ["id", "status"],
        "properties": {
            "id": _TEXT,
            "status": {"$ref": "#/components/schemas/Task/properties/status"},
        },
    }
    return {
        "/tasks/{id}/status": {
            "get": _op(
                "task_status",
                "tasks",
                "A task's status.",
                {"200": _json(schema, "Its id and status."), **_errors(404)},
                [_TASK_ID],
            )
        }
    }


def _task_events_ops(b: _Builder, methods: set[str]) -> Json:
    return {
        "/tasks/{id}/events": {
            "get": _op(
                "task_events",
                "tasks",
                "The task now, then each change of it; the stream ends at a final status.",
                {"200": _EVENTS, **_errors(404)},
                [_TASK_ID],
            )
        }
    }


def _events_ops(b: _Builder, methods: set[str]) -> Json:
    return {
        "/events": {
            "get": _op(
                "events",
                "tasks",
                "Every task and image change from now on (the web client's live updates); "
                "the stream does not end.",
                {"200": _EVENTS, **_errors()},
            )
        }
    }


def _probe(op_id: str, summary: str, ok: Json, errors: Json) -> Json:
    return {"get": _op(op_id, "operations", summary, {"200": ok, **errors})}


def _healthz_ops(b: _Builder, methods: set[str]) -> Json:
    ok = _json({"type": "object", "properties": {"status": {"const": "ok"}}}, "Alive.")
    return {"/healthz": _probe("healthz", "200 while the process is alive.", ok, _errors())}


def _readyz_ops(b: _Builder, methods: set[str]) -> Json:
    backends = {"type": "object", "additionalProperties": _TEXT}
    ok = _json(
        {
            "type": "object",
            "required": ["status", "backends"],
            "properties": {"status": {"const": "ready"}, "backends": backends},
        },
        "Every backend answers.",
    )
    summary = "200 when every backend answers; 503 unavailable naming the ones that do not."
    return {"/readyz": _probe("readyz", summary, ok, _errors(503))}


def _metrics_ops(b: _Builder, methods: set[str]) -> Json:
    ok = {"description": "Prometheus text format.", "content": {"text/plain": {"schema": _TEXT}}}
    return {"/metrics": _probe("metrics", "Prometheus metrics.", ok, _errors())}


def _version_ops(b: _Builder, methods: set[str]) -> Json:
    schema = {
        "type": "object",
        "required": ["version", "python", "libraries"],
        "properties": {
            "version": _TEXT,
            "python": _TEXT,
            "libraries": {"type": "object", "additionalProperties": {"type": ["string", "null"]}},
        },
    }
    ok = _json(schema, "This service's version and its libraries'.")
    return {"/version": _probe("version", "Versions.", ok, _errors())}


def _purge(signed: bool) -> Json:
    params = [
        _query(
            "input",
            "The source whose results are dropped.",
            {"type": "string", "maxLength": MAX_INPUT_LENGTH},
            required=True,
        )
    ]
    if signed:
        params = [_ref("parameters", "key"), _ref("parameters", "signature"), *params]
    schema = {
        "type": "object",
        "required": ["input", "deleted", "keys", "surrogate_keys"],
        "properties": {
            "input": _TEXT,
            "deleted": {"type": "integer", "minimum": 0},
            "keys": {"type": "array", "items": _TEXT},
            "surrogate_keys": {
                "type": "array",
                "items": _TEXT,
                "description": "The CDN surrogate keys (Surrogate-Key / Cache-Tag) to purge.",
            },
        },
    }
    return {
        "delete": _op(
            "purge_signed" if signed else "purge",
            "operations",
            "Drop every result made from a source (admin key).",
            {"200": _json(schema, "What was dropped."), **_errors(400, 403, 503)},
            params,
            description="Needs a URL signed with an admin key; the signature covers "
            "cache?{query}. `keys` names the results dropped: purge a CDN in front by the "
            "same keys (Surrogate-Key / Cache-Tag).",
        )
    }


def _cache_ops(b: _Builder, methods: set[str]) -> Json:
    return {"/cache": _purge(False)}


def _signed_cache_ops(b: _Builder, methods: set[str]) -> Json:
    return {"/cache/{key}/{signature}": _purge(True)}


def _stored(kind: str) -> Json:
    name = _path_param("name", f"The {kind}'s name.")
    ok = {
        "description": f"The stored {kind}'s bytes (immutable).",
        "headers": _headers("Cache-Control"),
        "content": {"image/*": {"schema": {"type": "string", "format": "binary"}}},
    }
    op_id = "result" if kind == "result" else "original"
    summary = f"A stored {kind} (the embedded storage only; with S3 its URLs are the bucket's)."
    return {
        "get": _op(op_id, "storage", summary, {"200": ok, **_errors(404)}, [name]),
        "head": _op(
            f"head_{op_id}",
            "storage",
            summary,
            {"200": {"description": "As GET, without the body."}, **_errors(404)},
            [name],
        ),
    }


def _storage_ops(b: _Builder, methods: set[str]) -> Json:
    return {"/results/{name}": _stored("result"), "/originals/{name}": _stored("original")}


def _client_ops(b: _Builder, methods: set[str]) -> Json:
    page = {"description": "The web client's page.", **_HTML}
    return {
        "/": {"get": _op("web_client", "web client", "The web client.", {"200": page, **_errors()})}
    }


def _files(path: str, op_id: str, tag: str, what: str) -> Json:
    """``{path}`` = ``/…/{version}/{name}``: a file of a page, immutable under its version."""
    ok = {"description": f"A file of {what}.", "content": {"*/*": {"schema": _TEXT}}}
    params = [
        _path_param("version", "The digest of the page's files."),
        _path_param("name", "A file name."),
    ]
    summary = f"A file of {what}."
    return {path: {"get": _op(op_id, tag, summary, {"200": ok, **_errors(404)}, params)}}


def _static_ops(b: _Builder, methods: set[str]) -> Json:
    return _files("/static/{version}/{name}", "web_client_file", "web client", "the web client")


def _openapi_ops(b: _Builder, methods: set[str]) -> Json:
    ok = _json(_OBJECT, "An OpenAPI 3.1 document.")
    return {
        "/openapi.json": {
            "get": _op("openapi", "operations", "This description.", {"200": ok, **_errors()})
        }
    }


def _docs_ops(b: _Builder, methods: set[str]) -> Json:
    page = {"description": "This description for people (Swagger UI).", **_HTML}
    return {
        "/docs": {
            "get": _op("docs", "operations", "The API reference page.", {"200": page, **_errors()})
        }
    }


def _docs_file_ops(b: _Builder, methods: set[str]) -> Json:
    return _files("/docs/{version}/{name}", "docs_file", "operations", "the reference page")


def _unsigned_graph_ops(b: _Builder, methods: set[str]) -> Json:
    return b.graph_paths(methods, signed=False)


def _signed_graph_ops(b: _Builder, methods: set[str]) -> Json:
    return b.graph_paths(methods, signed=True)


# Every route of the app, by its canonical path: the function that describes it.
_ROUTES: Mapping[str, OperationsOf] = {
    GRAPH_ROUTE: _unsigned_graph_ops,
    SIGNED_GRAPH_ROUTE: _signed_graph_ops,
    "/graphs": _graphs_ops,
    "/graphs/{name}": _graph_ops,
    "/ops": _ops_ops,
    "/images": _images_ops,
    "/images/{id}": _image_ops,
    "/tasks/{id}": _task_ops,
    "/tasks/{id}/status": _task_status_ops,
    "/tasks/{id}/events": _task_events_ops,
    "/events": _events_ops,
    "/healthz": _healthz_ops,
    "/readyz": _readyz_ops,
    "/metrics": _metrics_ops,
    "/version": _version_ops,
    "/cache": _cache_ops,
    "/cache/{apikey}/{signature}": _signed_cache_ops,
    "/{prefix}/{name}": _storage_ops,
    "/": _client_ops,
    "/static/{version}/{name}": _static_ops,
    "/openapi.json": _openapi_ops,
    "/docs": _docs_ops,
    "/docs/{version}/{name}": _docs_file_ops,
}


def _common_parameters(settings: Settings) -> Json:
    deadline = f"{settings.request_deadline:g}"
    return {
        "format": _path_param(
            "format",
            "The output format. Without one (the /graph/{name} paths) it is negotiated "
            "from Accept.",
            {"type": "string", "enum": list(EXTENSIONS)},
        ),
        "key": _path_param("key", "The API key's name."),
        "signature": _path_param(
            "signature",
            "Hex HMAC-SHA256, under the key's secret, of {graph}[.{ext}]?{query} exactly as "
            "sent, in hex (a legacy key: imgflo's md5). `python -m imgserver sign URL` prints "
            "it. A service without API keys does not check it.",
        ),
        "Accept": {
            "name": "Accept",
            "in": "header",
            "required": False,
            "description": "image/webp (or image/avif, when the operator enables it) chooses "
            "that format; else JPEG, PNG when the result has alpha, GIF when it is animated.",
            "schema": _TEXT,
        },
        "If-None-Match": {
            "name": "If-None-Match",
            "in": "header",
            "required": False,
            "description": "The ETag of a result the client has: 304 when it is this one.",
            "schema": _TEXT,
        },
        "input": _query(
            "input",
            "The source: an absolute http(s) URL, upload:{id} (an image sent to POST /images), "
            "or a path of this service, /graph/..., URL-encoded (a chained request, at most "
            f"4 deep). A GET waits up to {deadline} s for a miss.",
            {"type": "string", "maxLength": MAX_INPUT_LENGTH, "pattern": INPUT_PATTERN},
            required=True,
        ),
        "input-optional": _query(
            "input",
            "This graph draws its image: an input is not needed, and is ignored.",
            _TEXT,
        ),
        "_nocache": _query(
            "_nocache",
            "Recompute the result even when it is cached (a URL signed with an admin key only).",
            {"type": "boolean"},
        ),
    }


def _graph_schema() -> Json:
    param = {
        "type": "object",
        "required": ["type", "default", "minimum", "maximum", "values", "description"],
        "properties": {
            "type": {
                "type": "string",
                "enum": ["int", "number", "bool", "string", "color", "enum", "curve"],
            },
            "default": {"type": ["integer", "number", "boolean", "string", "null"]},
            "minimum": {"type": ["number", "null"]},
            "maximum": {"type": ["number", "null"]},
            "values": {"anyOf": [{"type": "array", "items": _TEXT}, {"type": "null"}]},
            "description": _TEXT,
        },
    }
    return {
        "type": "object",
        "required": ["name", "description", "runtime", "needs_input", "params"],
        "properties": {
            "name": _TEXT,
            "description": _TEXT,
            "runtime": _TEXT,
            "needs_input": {"type": "boolean"},
            "params": {"type": "object", "additionalProperties": param},
        },
    }


def _record_schemas() -> Json:
    """Task and Image, from their msgspec types."""
    _, defs = msgspec.json.schema_components(
        [TaskView, ImageView], ref_template="#/components/schemas/{name}"
    )
    text = json.dumps(defs)
    for old, new in _SCHEMA_NAMES.items():
        text = text.replace(f'"#/components/schemas/{old}"', f'"#/components/schemas/{new}"')
    schemas = {_SCHEMA_NAMES[k]: v for k, v in json.loads(text).items()}
    for schema in schemas.values():
        schema.pop("title", None)
    return schemas


INFO_DESCRIPTION = """\
An on-demand image transformation service:
`/graph/{name}.{format}?input={source}&{params}` answers the processed image (a 301 to the
stored result, or the bytes in proxy delivery), made once and cached. Each graph of the
catalogue (`GET /graphs`) has its own paths here, with its parameters' types, ranges and
defaults; the signed forms `/graph/{key}/{signature}/...` are needed when the operator
configures API keys.

Every error is JSON, `{"error": {"code", "message", ...}}` (schema `Error`). HEAD is answered
wherever GET is; it is listed for `/graph/` URLs and stored objects, where CDNs use it.
Generated from the running service's routes and catalogue."""


def build(routes: Iterable[Route], catalogue: Catalogue, settings: Settings) -> Json:
    """The OpenAPI document of an app serving ``routes`` (``(method, canonical path)`` pairs,
    as its router lists them). ValueError names a route that has no description."""
    methods: dict[str, set[str]] = {}
    for method, path in routes:
        methods.setdefault(path, set()).add(method)
    undescribed = sorted(set(methods) - set(_ROUTES))
    if undescribed:
        raise ValueError(f"routes without an OpenAPI description: {', '.join(undescribed)}")
    builder = _Builder(catalogue, settings)
    paths: Json = {}
    for path, describe in _ROUTES.items():
        if path in methods:
            paths.update(describe(builder, methods[path]))
    error_schemas, error_responses = _error_components()
    schemas = {
        **error_schemas,
        **_record_schemas(),
        "Graph": _graph_schema(),
    }
    schemas["ErrorObject"] = error_schemas["ErrorObject"]  # the one with the code enum
    tags = [
        {"name": "catalogue", "description": "The graphs and the operations they are made of."},
        *({"name": n, "description": f"Graph: {g.description}"} for n, g in catalogue.items()),
        {"name": "uploads", "description": "Images sent to the service, and their compression."},
        {"name": "tasks", "description": "Background jobs: prefetches and uploads' tasks."},
        {"name": "operations", "description": "Probes, metrics, versions, cache purges, docs."},
        {"name": "storage", "description": "Stored results and originals (embedded storage)."},
        {"name": "web client", "description": "The page for people, at /."},
    ]
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "imgserver",
            "version": __version__,
            "description": INFO_DESCRIPTION,
            "license": {"name": "MIT", "identifier": "MIT"},
        },
        "tags": tags,
        "paths": paths,
        "components": {
            "schemas": schemas,
            "responses": error_responses,
            "parameters": {
                **_common_parameters(settings),
                **builder.parameters,
            },
            "headers": HEADERS,
        },
    }


def document(routes: Iterable[Route], catalogue: Catalogue, settings: Settings) -> bytes:
    """``build``'s document as /openapi.json serves it."""
    return json.dumps(build(routes, catalogue, settings), separators=(",", ":")).encode()


# -- docs/api.md's endpoint index ---------------------------------------------------------------

_GRAPH_PATH = re.compile(r"^(/graph/(?:\{key\}/\{signature\}/)?)([a-z0-9_-]+)(\.\{format\})?$")


def docs_section(spec: Mapping[str, Any]) -> str:
    """The endpoint index of docs/api.md (between its markers): every path and method of the
    spec, the per-graph paths folded into their pattern, with what each may answer."""
    rows: dict[tuple[str, str], tuple[str, set[str]]] = {}
    graphs: set[str] = set()
    for path, item in spec["paths"].items():
        match = _GRAPH_PATH.match(path)
        if match:
            graphs.add(match.group(2))
            path = match.group(1) + "{graph}" + (match.group(3) or "")
        for method, op in item.items():
            summary = op["summary"]
            if match:
                summary = {
                    "get": "the processed image",
                    "head": "as GET, without the body",
                    "post": "prefetch: queue the result as a task",
                }[method]
            _, statuses = rows.setdefault((path, method.upper()), (summary, set()))
            statuses.update(op["responses"])
    lines = [
        DOCS_BEGIN,
        "",
        "Every path and method of `GET /openapi.json`. `{graph}` stands for each graph's own",
        "paths, with its parameters, in the document:",
        ", ".join(f"`{g}`" for g in sorted(graphs)) + ".",
        "",
        "| method | path | what | answers |",
        "|---|---|---|---|",
    ]
    for (path, method), (summary, statuses) in rows.items():
        answers = ", ".join(sorted(statuses))
        lines.append(f"| {method} | `{path}` | {summary} | {answers} |")
    lines += ["", DOCS_END]
    return "\n".join(lines) + "\n"


def replace_docs_section(text: str, section: str) -> str:
    """``text`` (docs/api.md) with the section between the markers replaced by ``section``."""
    start, end = text.index(DOCS_BEGIN), text.index(DOCS_END) + len(DOCS_END) + 1
    return text[:start] + section + text[end:]
