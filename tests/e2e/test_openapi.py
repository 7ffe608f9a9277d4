"""The service against its own OpenAPI description, as real processes: /openapi.json is valid
OpenAPI 3.1, /docs renders it in chromium from the service's own files only, and schemathesis
fuzzes every operation (fixed seed and example count) checking no 500, answers that match the
document (statuses, headers, content types, bodies), invalid requests refused with a 4xx, and
every error the JSON shape (``schemathesis_hooks.py``)."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from openapi_spec_validator import validate
from playwright.sync_api import sync_playwright

from ..browser import launch
from ..conftest import REPO, Origin, Service
from ..images import alpha_png, jpeg, png, texture

HERE = Path(__file__).resolve().parent
SEED = 20261202
MAX_EXAMPLES = 2  # per operation and phase
# Operations (by id) not fuzzed, and why:
EXCLUDED = {
    # a live stream that, by design, never ends: a request to it cannot finish (its events are
    # tested in test_uploads.py / test_browser.py)
    "events",  # GET /events
}


# The service under test: sources from loopback only (the test origin); results up to 2
# megapixels (canvas and delaunay_triangles draw what width x height asks for: at the default
# 25 MP one request costs seconds, and a bigger one is the same 422 too_many_pixels).
FUZZED_ENV = {
    "IMGSERVER_ALLOWED_SOURCES": "127.0.0.1",
    "IMGSERVER_MAX_OUTPUT_PIXELS": "2000000",
}
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
    "positive_data_acceptance",
    "missing_required_header",
    "unsupported_method",
    "allow_header_conformance",
    "use_after_free",
    "ensure_resource_availability",
    "json_error_shape",  # schemathesis_hooks.py
)  # all of schemathesis' but max_response_time: tests never assert timings


# Logged by aiohttp's HTTP parser, not by the app, for schemathesis' probe of a NUL in a header
# (the parser answers a plain 400 before any handler runs).
PARSER_REFUSAL = "aiohttp.http_exceptions.BadHttpMessage"


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as r:
        return json.loads(r.read())


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory, origin: Origin) -> Iterator[Service]:
    """The embedded service, fetching sources only from the loopback test origin (so generated
    URLs elsewhere are refused at once, 403, and the ones that exist are fetched for real)."""
    svc = Service(tmp_path_factory.mktemp("fuzzed"), FUZZED_ENV)
    svc.start()
    yield svc
    svc.stop()


def test_openapi_json_is_valid(fuzzed: Service) -> None:
    spec = get_json(fuzzed.url("/openapi.json"))
    validate(spec)
    assert {"/graph/transform.{format}", "/graph/{key}/{signature}/crop"} <= set(spec["paths"])


def test_docs_render_from_the_service_alone(fuzzed: Service) -> None:
    with sync_playwright() as p:
        browser = launch(p)
        try:
            page = browser.new_page()
            requested: list[str] = []
            problems: list[str] = []
            page.on("request", lambda r: requested.append(r.url))
            page.on("console", lambda m: m.type == "error" and problems.append(m.text))
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.goto(fuzzed.url("/docs"))
            page.locator(".info .title", has_text="imgserver").wait_for(timeout=30_000)
            page.locator("h3.opblock-tag", has_text="transform").click()
            operation = page.locator("#operations-transform-get_transform")
            operation.wait_for(timeout=10_000)
            assert "/graph/transform.{format}" in operation.inner_text()
            operation.locator(".opblock-summary").click()  # the parameters, typed
            page.locator("tr[data-param-name='gravity']").wait_for(timeout=10_000)
        finally:
            browser.close()
    assert requested and all(url.startswith(fuzzed.base + "/") for url in requested), requested
    assert fuzzed.url("/openapi.json") in requested
    assert not problems, problems  # a CSP violation is reported as a console error


@pytest.mark.slow
def test_schemathesis_finds_nothing(fuzzed: Service, origin: Origin, tmp_path: Path) -> None:
    """Every operation, every phase: the coverage phase's boundaries and invalid values, then
    MAX_EXAMPLES generated requests per operation."""
    fuzz(fuzzed, origin, tmp_path, "examples,coverage,fuzzing")


@pytest.mark.slow
def test_schemathesis_finds_nothing_in_proxy_delivery(
    start_service: Any, origin: Origin, tmp_path: Path
) -> None:
    """Proxy delivery answers 200s and 304s with the bytes instead of 301s: the fuzzing phase
    again, of the GET operations (the parsing the coverage phase tests is the same in both
    modes, and so are POST, DELETE and HEAD but for the body), with fewer examples: what
    differs is how results are delivered."""
    service = start_service(IMGSERVER_DELIVERY="proxy", **FUZZED_ENV)
    fuzz(service, origin, tmp_path, "fuzzing", examples=2, only=("--include-method", "GET"))


def fuzz(
    service: Service,
    origin: Origin,
    tmp_path: Path,
    phases: str,
    examples: int = MAX_EXAMPLES,
    only: tuple[str, ...] = (),
) -> None:
    """Run schemathesis against ``service`` (sources: images of the test origin, missing and
    broken ones, and an upload) and assert it found nothing and the service logged no bug."""
    sources = [
        origin.add("/fuzz/photo.jpg", jpeg(texture(64, 48))),
        origin.add("/fuzz/alpha.png", alpha_png(), content_type="image/png"),
        origin.add("/fuzz/truncated.png", png(texture(32, 32))[:60], content_type="image/png"),
        origin.add("/fuzz/text.txt", b"not an image", content_type="text/plain"),
        origin.url("/fuzz/missing.jpg"),  # the origin answers 404
    ]
    image = jpeg(texture(40, 30))
    request = urllib.request.Request(service.url("/images"), data=image, method="POST")
    with urllib.request.urlopen(request, timeout=30) as r:
        sources.append("upload:" + json.loads(r.read())["id"])
    report = tmp_path / "report.json"
    command = [
        *(sys.executable, "-m", "schemathesis.cli"),
        *("--config-file", str(HERE / "schemathesis.toml"), "run", service.url("/openapi.json")),
        *("--checks", ",".join(CHECKS)),
        *("--seed", str(SEED), "--max-examples", str(examples), "--workers", "2"),
        *only,
        *("--phases", phases, "--max-redirects", "0", "--request-timeout", "40"),
        *(arg for op in sorted(EXCLUDED) for arg in ("--exclude-operation-id", op)),
        *("--report", "json", "--report-json-path", str(report)),
    ]
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": "tests.e2e.schemathesis_hooks",
        "FUZZ_SOURCES": " ".join(sources),
        "FUZZ_IMAGE": base64.b64encode(image).decode(),
        "PYTHONPATH": str(REPO),
    }
    # run from tmp_path: schemathesis keeps a cache directory where it runs
    run = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900
    )
    assert run.returncode == 0, run.stdout[-20000:] + run.stderr[-3000:]
    summary = json.loads(report.read_text())
    operations, cases = summary["operations"], summary["test_cases"]
    print(
        f"schemathesis ({phases}): {operations['tested']} operations, {cases['generated']} "
        f"requests, {summary['running_time']:.0f} s, {len(summary['failures'])} failures"
    )
    assert operations["tested"] == operations["selected"]
    if not only:
        assert operations["selected"] == operations["total"] - len(EXCLUDED)
    log = service.log()
    assert "unhandled error" not in log  # the middleware's words for a 500
    assert log.count("Traceback") == log.count(PARSER_REFUSAL), log[-5000:]
