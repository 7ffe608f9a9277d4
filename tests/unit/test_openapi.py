"""The OpenAPI description (``imgserver/openapi.py``): valid OpenAPI 3.1, generated from the
app's routes (a route without a description stops start-up), each graph's parameters with
their types, ranges, enums and defaults, every error code, the record types the handlers
really write; served once-built at /openapi.json, rendered at /docs under a strict CSP; and
docs/api.md's endpoint index in step with it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import pytest
from openapi_spec_validator import validate

from imgserver.app import create_app
from imgserver.catalogue import Catalogue
from imgserver.errors import Failure, ImgServerError
from imgserver.formats import EXTENSIONS
from imgserver.openapi import DOCS_BEGIN, DOCS_END, build, docs_section, param_schema
from imgserver.records import FAILED, ImageRecord, ImageView, Task, TaskView
from imgserver.settings import REPO_ROOT, Settings
from imgserver.web.state import CATALOGUE, OPENAPI

API_MD = REPO_ROOT / "docs" / "api.md"
FORMS = ("/graph/{n}.{{format}}", "/graph/{n}", "/graph/{{key}}/{{signature}}/{n}.{{format}}")


def spec_of(settings: Settings) -> dict[str, Any]:
    return json.loads(create_app(settings).get(OPENAPI).body)  # type: ignore[union-attr]


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    return spec_of(Settings())


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return Catalogue.load(Settings().graphs_dir)


def resolve(spec: dict[str, Any], obj: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in obj:
        node: Any = spec
        for part in obj["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        obj = node
    return obj


@pytest.mark.parametrize("delivery", ["redirect", "proxy"])
def test_the_document_is_valid_openapi_3_1(delivery: str, tmp_path: Path) -> None:
    document = spec_of(Settings(delivery=delivery, data_dir=tmp_path))
    assert document["openapi"] == "3.1.0"
    validate(document)  # raises on an invalid document
    for method in ("get", "post"):  # a POST of a cached URL answers as a hit
        answers = document["paths"]["/graph/crop.{format}"][method]["responses"]
        assert ("301" in answers, "200" in answers) == (delivery == "redirect", delivery == "proxy")


def test_every_route_is_described(spec: dict[str, Any], tmp_path: Path) -> None:
    app = create_app(Settings(data_dir=tmp_path))
    described = {(m.upper(), p) for p, item in spec["paths"].items() for m in item}
    for route in app.router.routes():
        path = route.resource.canonical if route.resource else ""
        path = path.replace("{apikey}", "{key}")
        if path == "/{prefix}/{name}":
            paths = ["/results/{name}", "/originals/{name}"]
        elif path.startswith("/graph/"):
            paths = [f.format(n=name) for name in app[CATALOGUE] for f in FORMS]
        else:
            paths = [path]
        for p in paths:
            if route.method == "HEAD" and not p.startswith(("/graph/", "/results", "/originals")):
                continue  # answered wherever GET is; listed where CDNs use it
            assert (route.method, p) in described


def test_a_route_without_a_description_is_refused(catalogue: Catalogue) -> None:
    with pytest.raises(ValueError, match="/secret"):
        build([("GET", "/healthz"), ("GET", "/secret")], catalogue, Settings())


def test_each_graph_has_its_forms_and_methods(spec: dict[str, Any], catalogue: Catalogue) -> None:
    ids = [op["operationId"] for item in spec["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids))
    for name in catalogue:
        for form in (*FORMS, "/graph/{{key}}/{{signature}}/{n}"):
            assert set(spec["paths"][form.format(n=name)]) == {"get", "head", "post"}
    fmt = spec["components"]["parameters"]["format"]["schema"]["enum"]
    assert fmt == list(EXTENSIONS)


def test_graph_parameters_carry_types_ranges_enums_and_defaults(
    spec: dict[str, Any], catalogue: Catalogue
) -> None:
    for name, graph in catalogue.items():
        for path in (f"/graph/{name}.{{format}}", f"/graph/{{key}}/{{signature}}/{name}"):
            params = [resolve(spec, p) for p in spec["paths"][path]["get"]["parameters"]]
            query = {p["name"]: p for p in params if p["in"] == "query"}
            assert set(query) == {"input", "_nocache", *graph.params}
            assert query["input"]["required"] is graph.definition.needs_source
            for pname, param in graph.params.items():
                source = pname in graph.source_params
                assert query[pname]["schema"] == param_schema(param, source=source)
    transform = catalogue["transform"].params
    mode = param_schema(transform["mode"])
    assert mode["type"] == "string" and set(mode["enum"]) >= {"fit", "fill", "crop", "pad"}
    dpr = param_schema(transform["dpr"])
    assert (dpr["type"], dpr["minimum"], dpr["maximum"]) == ("number", 1, 4)
    width = param_schema(transform["width"])
    assert width["type"] == "integer" and width["minimum"] == 1
    assert param_schema(catalogue["gaussianblur"].params["std-dev-x"])["default"] == 1.5


def test_errors_name_every_code_by_status(spec: dict[str, Any]) -> None:
    codes = spec["components"]["schemas"]["ErrorObject"]["properties"]["code"]["enum"]
    assert set(codes) == set(ImgServerError.codes())
    for code, cls in ImgServerError.codes().items():
        response = spec["components"]["responses"][f"Error{cls.status}"]
        schema = response["content"]["application/json"]["schema"]["allOf"][1]
        assert code in schema["properties"]["error"]["properties"]["code"]["enum"]
    graph_get = spec["paths"]["/graph/crop.{format}"]["get"]["responses"]
    assert {"400", "403", "404", "413", "415", "422", "429", "500", "502", "503", "504"} <= set(
        graph_get
    )


def test_result_headers_are_described(spec: dict[str, Any]) -> None:
    hit = spec["paths"]["/graph/crop"]["get"]["responses"]["301"]["headers"]
    for header in ("Location", "X-Cache", "X-Quality", "Vary", "Cache-Control", "Surrogate-Key"):
        assert header in hit
    assert "Retry-After" in resolve(spec, spec["components"]["responses"]["Error503"])["headers"]
    assert "Retry-After" in resolve(spec, spec["components"]["responses"]["Error429"])["headers"]


def test_task_and_image_objects_are_what_the_handlers_write() -> None:
    """The schemas come from TaskView/ImageView; to_json must produce exactly those."""
    task = Task("t" * 24, "crop", "http://x/a.jpg", {"x": 1}, "jpeg", "k", "d")
    task.status = FAILED
    task.error = Failure("source_unreachable", "gone", {"status": 500})
    image = ImageRecord("i" * 24, "t" * 24, "png", 10, 4, 4, compressed_path="results/k")
    for record, view in ((task, TaskView), (image, ImageView)):
        written = record.to_json(lambda p: f"http://h/{p}")
        assert set(written) == set(view.__struct_fields__)
        msgspec.convert(written, view, strict=True)


def test_docs_api_md_index_is_up_to_date(spec: dict[str, Any]) -> None:
    text = API_MD.read_text()
    current = text[text.index(DOCS_BEGIN) : text.index(DOCS_END) + len(DOCS_END) + 1]
    assert current == docs_section(spec), "run: python -m imgserver openapi --docs"


@pytest.fixture
async def client(aiohttp_client: Any, tmp_path: Path) -> Any:
    return await aiohttp_client(create_app(Settings(data_dir=tmp_path, workers=1)))


async def test_openapi_json_is_built_once_and_served(client: Any) -> None:
    built = client.app[OPENAPI]
    first = await client.get("/openapi.json")
    assert first.status == 200 and first.content_type == "application/json"
    second = await client.get("/openapi.json", headers={"If-None-Match": first.headers["ETag"]})
    assert second.status == 304
    assert client.app[OPENAPI] is built
    assert (await first.json())["info"]["title"] == "imgserver"


async def test_docs_page_uses_only_its_own_files(client: Any) -> None:
    resp = await client.get("/docs")
    assert resp.status == 200
    csp = resp.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "unsafe" not in csp and "http" not in csp
    page = await resp.text()
    assert "//" not in page.replace("<!DOCTYPE", "")  # no absolute URL to anywhere
    for name in ("swagger-ui-bundle.js", "swagger-ui.css", "docs.js"):
        assert f"/docs/{{version}}/{name}" not in page  # the version is filled in
        url = next(line for line in page.split('"') if line.endswith(name))
        asset = await client.get(url)
        assert asset.status == 200
        assert "immutable" in asset.headers["Cache-Control"]
    missing = await client.get("/docs/abc/nothing.js")
    assert missing.status == 404
    assert (await missing.json())["error"]["code"] == "not_found"


async def test_a_405_says_which_methods_are_allowed(client: Any) -> None:
    resp = await client.put("/graphs")  # RFC 9110: a 405 carries Allow
    assert resp.status == 405
    assert set(resp.headers["Allow"].split(",")) == {"GET", "HEAD"}
    assert (await resp.json())["error"]["code"] == "method_not_allowed"


async def test_a_long_url_gets_the_json_error_not_the_parsers(client: Any) -> None:
    """A request line over aiohttp's default 8190 bytes reaches the app (MAX_REQUEST_LINE)."""
    source = "http://example.com/" + "a" * 9000
    resp = await client.get("/graph/crop.jpg", params={"input": source})
    assert resp.status == 400
    body = await resp.json()
    assert body["error"]["code"] == "invalid_input" and "longer than" in body["error"]["message"]


async def test_a_multipart_part_with_a_malformed_header_is_a_400(client: Any) -> None:
    """Found by the schemathesis run: aiohttp's parser error for a part header was a 500."""
    boundary = "b0undary"
    body = (
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="\x17\xab"\r\n\r\n'
        f"[]\r\n--{boundary}--\r\n"
    ).encode("latin-1")
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    resp = await client.post("/images", data=body, headers=headers)
    assert resp.status == 400
    assert (await resp.json())["error"]["code"] == "invalid_input"
