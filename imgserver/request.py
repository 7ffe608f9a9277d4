"""URL -> typed image request (graph, output format, input, params), canonical form, cache key."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from multidict import MultiMapping
from yarl import URL

from .catalogue import GRAPH_NAME, QUALITY_TARGET, Catalogue, Graph
from .errors import InvalidInput, InvalidParam, SourceNotAllowed, UnknownGraph
from .formats import AUTO, negotiate, output_format
from .messages import Job
from .names import graph_surrogate, result_scope, source_scope, source_surrogate
from .records import Params, ParamValue
from .runtime.registry import AUTO_QUALITY
from .security import host_allowed
from .settings import Settings

KEY_VERSION = 1  # bump when the runtime's output for the same request changes
MAX_INPUT_LENGTH = 4096
UPLOAD_PREFIX = "upload:"
CHAIN_PREFIX = "graph:"  # the input of a chained request: graph:{the inner request's key}
GRAPH_PATH = "/graph/"  # an input that is a path of this service: a chained request
MAX_CHAIN = 4  # graphs in a chain, the outer one included
UPLOAD_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# A host as yarl leaves it (lower case, IDNA-encoded): a DNS name or an IP address.
_HOST = re.compile(r"[a-z0-9._-]+|[0-9a-f:.]+")
RESERVED = {"_nocache"}


@dataclass(frozen=True)
class ImageRequest:
    """A validated request for one processed image."""

    graph: Graph
    format: str  # an output format name, or formats.AUTO
    negotiated: bool  # chosen from Accept (the answer must say Vary: Accept)
    input: str  # an http(s) URL, upload:{id}, graph:{inner key}; "" for a graph without one
    params: Mapping[str, ParamValue]  # typed, defaults applied, unset optional params left out
    nocache: bool = False
    inner: ImageRequest | None = None  # the request whose result is the input (a chain)

    def sources(self) -> Iterator[str]:
        """Every source this request (and the chain under it) fetches: checked against the
        allow-list before anything is queued."""
        if self.inner is not None:
            yield from self.inner.sources()
        elif self.input and not self.input.startswith(UPLOAD_PREFIX):
            yield self.input
        for name in self.graph.source_params:
            value = self.params.get(name)
            if isinstance(value, str) and not value.startswith(UPLOAD_PREFIX):
                yield value

    def origin(self) -> str:
        """The input at the end of the chain: the source a purge of it drops this result for
        (an http(s) URL or upload:{id}; "" for a graph that draws its image)."""
        return self.inner.origin() if self.inner is not None else self.input

    def failure_scopes(self) -> list[str]:
        """Where a failure that this request would meet is remembered: under this request's
        key, under each source it reads (its input, another image a parameter names), and the
        same down its chain."""
        scopes = [result_scope(self.key)]
        if self.input:
            scopes.append(source_scope(self.input))
        for name in self.graph.source_params:
            value = self.params.get(name)
            if isinstance(value, str) and value:
                scopes.append(source_scope(value))
        if self.inner is not None:
            scopes += self.inner.failure_scopes()
        return scopes

    @cached_property
    def surrogate_keys(self) -> tuple[str, ...]:
        """The surrogate keys of this request's answers: its source's and its graph's
        (computed once per request: parsed requests are kept, and this is on the hit path)."""
        origin = self.origin()
        keys = (source_surrogate(origin),) if origin else ()
        return (*keys, graph_surrogate(self.graph.name))

    def job(self, task_id: str | None = None) -> Job:
        """The job that makes this request's result (for a task, when ``task_id`` is given)."""
        return Job(
            self.key,
            self.graph.name,
            self.graph.digest,
            self.format,
            self.input,
            dict(self.params),
            task_id,
            self.nocache,
            inner=self.inner.job() if self.inner is not None else None,
        )

    def canonical(self) -> dict[str, Any]:
        return {
            "v": KEY_VERSION,
            "graph": self.graph.name,
            "digest": self.graph.digest,
            "format": self.format,
            "input": self.input,
            "params": dict(sorted(self.params.items())),
        }

    @cached_property
    def key(self) -> str:
        """SHA-256 of the canonical request: the cache key (computed once per request)."""
        text = json.dumps(self.canonical(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


def split_graph_spec(spec: str) -> tuple[str, str | None]:
    """``passthrough.webp`` -> ("passthrough", "webp"); no extension -> (name, None)."""
    name, dot, ext = spec.partition(".")
    return name, (ext if dot else None)


def parse_request(
    spec: str,
    query: MultiMapping[str],
    *,
    accept: str,
    catalogue: Catalogue,
    avif_enabled: bool,
    jxl_enabled: bool = False,
    depth: int = 1,
) -> ImageRequest:
    """Validate a ``/graph/{spec}?{query}`` request, cheapest checks first. ``depth``: how many
    graphs of a chain this one is (1: the request itself; its input's request is 2, …)."""
    name, ext = split_graph_spec(spec)
    if not GRAPH_NAME.match(name):
        raise UnknownGraph(f"no graph named '{name}'", graphs=list(catalogue))
    graph = catalogue.get_graph(name)
    if ext is not None:
        fmt, negotiated = output_format(ext), False
    elif depth > 1:  # an inner request of a chain: no client of its own to negotiate with
        fmt, negotiated = AUTO, False
    else:
        fmt = negotiate(accept, avif_enabled=avif_enabled, jxl_enabled=jxl_enabled)
        negotiated = True

    inputs = query.getall("input", [])
    if len(inputs) > 1 or (not inputs and graph.definition.needs_source):
        raise InvalidInput("give exactly one 'input': an http(s) URL or upload:{id}")
    inner = None
    if not inputs or not graph.definition.needs_source:
        source = ""  # a graph that draws its image: an input given anyway changes nothing
    elif inputs[0].strip().startswith(GRAPH_PATH):
        inner = _chained(inputs[0].strip(), catalogue, avif_enabled, depth + 1)
        source = CHAIN_PREFIX + inner.key
    else:
        source = canonical_input(inputs[0])

    params, nocache = parse_params(graph, query)
    if nocache and depth > 1:
        raise InvalidInput("'_nocache' goes on the outer request of a chain, not an inner one")
    return ImageRequest(graph, fmt, negotiated, source, params, nocache, inner)


def _chained(path: str, catalogue: Catalogue, avif_enabled: bool, depth: int) -> ImageRequest:
    """The request an input ``/graph/…`` names, parsed like one (its signature, if it has one,
    is not checked: the outer request's covers it). Its format, without an extension, is
    ``auto``: the client's Accept is the outer request's."""
    if depth > MAX_CHAIN:
        raise InvalidInput(f"a chain of inputs has at most {MAX_CHAIN} graphs")
    if len(path) > MAX_INPUT_LENGTH:
        raise InvalidInput(f"'input' is longer than {MAX_INPUT_LENGTH} characters")
    try:
        url = URL(path)
    except (ValueError, TypeError):
        raise InvalidInput("'input' is not a valid /graph/ path") from None
    parts = url.path.split("/")  # "", "graph", [key, signature,] spec
    if url.is_absolute() or len(parts) not in (3, 5) or not parts[-1]:
        raise InvalidInput("'input' must be /graph/{graph}[.{ext}]?… for a chained request")
    return parse_request(
        parts[-1],
        url.query,
        accept="",
        catalogue=catalogue,
        avif_enabled=avif_enabled,
        depth=depth,
    )


def canonical_input(raw: str) -> str:
    """The source in canonical form; 400 invalid_input when it is missing or not absolute."""
    raw = raw.strip()
    if not raw:
        raise InvalidInput("'input' is empty")
    if len(raw) > MAX_INPUT_LENGTH:
        raise InvalidInput(f"'input' is longer than {MAX_INPUT_LENGTH} characters")
    if raw.startswith(UPLOAD_PREFIX):
        upload_id = raw[len(UPLOAD_PREFIX) :]
        if not UPLOAD_ID.match(upload_id):
            raise InvalidInput("'input' upload:{id} has a malformed id")
        return raw
    try:
        url = URL(raw)
    except (ValueError, TypeError):
        raise InvalidInput("'input' is not a valid URL") from None
    if url.scheme.lower() not in ("http", "https") or not url.host:
        raise InvalidInput(
            "'input' must be an absolute http:// or https:// URL (or upload:{id})", input=raw
        )
    if url.user is not None or url.password is not None:
        raise InvalidInput("'input' must not carry credentials")
    if not _HOST.fullmatch(url.raw_host or "") or url.port == 0:
        raise InvalidInput("'input' has an invalid host or port", input=raw)
    # yarl lower-cases scheme and host and drops a default port; fragments never reach a server.
    url = url.with_fragment(None)
    if url.raw_path == "/" and not url.raw_query_string:
        url = url.with_path("/")  # yarl keeps "http://host" bare: make it "http://host/"
    return str(url)


def parse_params(graph: Graph, query: MultiMapping[str]) -> tuple[Params, bool]:
    """Typed parameters with defaults applied; invalid_param (listing the graph's) when wrong."""
    values: Params = {}
    nocache = False
    seen: set[str] = set()
    for key, raw in query.items():  # items, not keys: multidict >= 7 iterates unique keys
        if key == "input":
            continue
        if key in seen:
            raise _invalid(graph, f"parameter '{key}' is given more than once", key)
        seen.add(key)
        if key.startswith("_"):
            if key not in RESERVED:
                raise _invalid(graph, f"'{key}' is not a reserved key ({', '.join(RESERVED)})", key)
            nocache = raw.strip().lower() not in ("0", "false", "no", "off")
            continue
        param = graph.params.get(key)
        if param is None:
            raise _invalid(graph, f"graph '{graph.name}' has no parameter '{key}'", key)
        try:
            values[key] = param.parse(raw)
        except InvalidParam as exc:
            exc.details["params"] = _schema(graph)
            raise
    for pname, param in graph.params.items():
        if pname not in values and param.default is not None:
            values[pname] = param.default
    if graph.auto_quality is not None and values.get(graph.auto_quality) != AUTO_QUALITY:
        values.pop(QUALITY_TARGET, None)  # only quality=auto reads it: not in other keys
    for pname in graph.source_params:  # another image to fetch: checked like the input
        value = values.get(pname)
        if isinstance(value, str):
            try:
                values[pname] = canonical_input(value)
            except InvalidInput as exc:
                message = exc.message.replace("'input'", f"'{pname}'")
                raise _invalid(graph, message, pname) from None
    return values, nocache


def _schema(graph: Graph) -> dict[str, Any]:
    return {n: p.to_json() for n, p in graph.params.items()}


def _invalid(graph: Graph, message: str, key: str) -> InvalidParam:
    return InvalidParam(message, param=key, params=_schema(graph))


def check_sources(req: ImageRequest, settings: Settings) -> None:
    """403 source_not_allowed when an allow-list is set and a source the request would fetch
    (its input, or the input at the end of its chain) is on a host not on it."""
    patterns = settings.source_patterns
    if not patterns:
        return
    for source in req.sources():
        host = URL(source).host or ""
        if not host_allowed(host, patterns):
            raise SourceNotAllowed(f"the source host {host} is not on the allow-list", host=host)
