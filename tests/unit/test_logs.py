"""logs.py: JSON and text log lines, the request id (accepted from the client or made, on every
answer, in every log line written while the request or its job is served)."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from imgserver import logs
from imgserver.app import create_app
from imgserver.messages import Job, decode_job, encode_job
from imgserver.settings import Settings

HEX32 = re.compile(r"^[0-9a-f]{32}$")


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO, logging.Handler]]:
    """A logger whose lines go through logs.py's filter into a string."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(logs._RequestIdFilter())
    logger = logging.getLogger("test_logs")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    yield logger, out, handler
    logger.removeHandler(handler)


def test_json_lines_parse_and_carry_the_request_id(captured) -> None:
    logger, out, handler = captured
    handler.setFormatter(logs.JsonFormatter())
    with logs.serving("abc-123"):
        logger.info("job %s done", "k1", extra={"seconds": 0.5})
    logger.warning("outside")
    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert first["message"] == "job k1 done"
    assert first["request_id"] == "abc-123"
    assert first["level"] == "INFO"
    assert first["logger"] == "test_logs"
    assert first["seconds"] == 0.5
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", first["time"])
    assert "request_id" not in second  # no request: no empty field
    assert second["level"] == "WARNING"


def test_json_lines_carry_the_traceback(captured) -> None:
    logger, out, handler = captured
    handler.setFormatter(logs.JsonFormatter())
    try:
        raise ValueError("boom\nwith a newline")
    except ValueError:
        logger.exception("failed")
    (line,) = out.getvalue().splitlines()  # one line, whatever the message holds
    record = json.loads(line)
    assert "ValueError: boom" in record["exception"]


def test_text_lines_show_the_request_id(captured) -> None:
    logger, out, handler = captured
    handler.setFormatter(logging.Formatter(logs.TEXT_FORMAT))
    with logs.serving("r-1"):
        logger.info("inside")
    logger.info("outside")
    inside, outside = out.getvalue().splitlines()
    assert inside.endswith("INFO test_logs [r-1]: inside")
    assert outside.endswith("INFO test_logs: outside")


def test_serving_restores_the_outer_id() -> None:
    with logs.serving("outer"):
        with logs.serving("inner"):
            assert logs.current.get() == "inner"
        assert logs.current.get() == "outer"
    assert logs.current.get() == ""


@pytest.mark.parametrize(
    "value",
    ["0f8fe2e6-bf0e-4d8b-9a3e-8f2f1c1e7f55", "a", "Root=1-67891233-abcdef;x"[:13], "x" * 128],
)
def test_a_well_formed_client_id_is_kept(value: str) -> None:
    assert logs.accepted(value, logs.RequestIds()) == value


@pytest.mark.parametrize(
    "value", [None, "", "x" * 129, "has space", 'quo"te', "new\nline", "ünïcode", "a;b", "<x>"]
)
def test_anything_else_gets_an_id_of_ours(value: str | None) -> None:
    assert HEX32.match(logs.accepted(value, logs.RequestIds()))


def test_ids_of_ours_differ_within_a_process_and_between_processes() -> None:
    one, other = logs.RequestIds(), logs.RequestIds()
    made = [one() for _ in range(1000)] + [other() for _ in range(1000)]
    assert len(set(made)) == 2000
    assert all(HEX32.match(m) for m in made)


def test_configure_sets_the_root_logger(monkeypatch: pytest.MonkeyPatch) -> None:
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [])
    monkeypatch.setattr(root, "level", root.level)
    logs.configure(Settings(log_format="json", log_level="warning"))
    (handler,) = root.handlers
    assert isinstance(handler.formatter, logs.JsonFormatter)
    assert root.level == logging.WARNING
    logs.configure(Settings())
    (handler,) = root.handlers
    assert handler.formatter is not None
    assert handler.formatter._fmt == logs.TEXT_FORMAT


def test_the_job_message_carries_the_id_and_old_messages_still_decode() -> None:
    job = Job("k", "resize", "d", "jpeg", "http://x/a.jpg", {}, request_id="r-9")
    assert decode_job(encode_job(job)).request_id == "r-9"
    # a message from a frontend that predates the field
    old = msgspec.msgpack.encode(
        {k: v for k, v in msgspec.to_builtins(job).items() if k != "request_id"}
    )
    assert decode_job(old).request_id == ""


@pytest.fixture
async def client(aiohttp_client: Any, tmp_path: Path) -> Any:
    return await aiohttp_client(create_app(Settings(data_dir=tmp_path, workers=1)))


async def test_every_answer_carries_a_request_id(client: Any) -> None:
    ids = set()
    for path in ("/healthz", "/nowhere", "/graph/nope.jpg"):
        resp = await client.get(path)
        rid = resp.headers[logs.HEADER]
        assert HEX32.match(rid), path
        ids.add(rid)
    assert len(ids) == 3  # one per request


async def test_the_clients_id_comes_back_and_a_bad_one_is_replaced(client: Any) -> None:
    resp = await client.get("/healthz", headers={logs.HEADER: "client-id-42"})
    assert resp.headers[logs.HEADER] == "client-id-42"
    resp = await client.get("/healthz", headers={logs.HEADER: "x" * 500})
    assert HEX32.match(resp.headers[logs.HEADER])
    resp = await client.get("/healthz", headers={logs.HEADER: "two words"})
    assert HEX32.match(resp.headers[logs.HEADER])


async def test_an_event_stream_carries_it_too(client: Any) -> None:
    resp = await client.get("/events", headers={logs.HEADER: "stream-1"})
    assert resp.status == 200
    assert resp.headers[logs.HEADER] == "stream-1"
    resp.close()


async def test_a_miss_logs_with_its_request_id(
    aiohttp_client: Any, tmp_path: Path, caplog: Any
) -> None:
    """What the embedded worker logs about a job (here: its source cannot be reached, retried,
    then failed) carries the id of the request that queued it."""
    settings = Settings(
        data_dir=tmp_path,
        workers=1,
        allow_private_sources=True,
        retry_backoff=0.01,
        retry_backoff_max=0.05,
    )
    client = await aiohttp_client(create_app(settings))
    caplog.set_level(logging.INFO)
    caplog.handler.addFilter(logs._RequestIdFilter())
    resp = await client.get(
        "/graph/passthrough.jpg",
        params={"input": "http://127.0.0.1:9/none.jpg"},
        headers={logs.HEADER: "miss-7"},
    )
    assert resp.headers[logs.HEADER] == "miss-7"
    assert resp.status >= 400
    body = await resp.json()
    assert body["error"]["code"]
    tagged = [r for r in caplog.records if getattr(r, "request_id", "") == "miss-7"]
    assert tagged, [(r.name, r.getMessage()) for r in caplog.records]


def test_the_access_line_has_its_fields_and_the_responses_id(captured) -> None:
    from aiohttp import web
    from aiohttp.test_utils import make_mocked_request

    logger, out, handler = captured
    handler.setFormatter(logs.JsonFormatter())
    request = make_mocked_request(
        "GET", "/graph/resize.jpg?input=x&width=10", headers={"User-Agent": "probe/1"}
    )
    response = web.Response(status=301, headers={logs.HEADER: "acc-1"})
    logs.AccessLogger(logger, "").log(request, response, 0.0123)
    (line,) = out.getvalue().splitlines()
    record = json.loads(line)
    assert record["request_id"] == "acc-1"
    assert (record["method"], record["path"], record["status"]) == (
        "GET",
        "/graph/resize.jpg?input=x&width=10",
        301,
    )
    assert record["seconds"] == 0.0123 and record["agent"] == "probe/1"
    assert '"GET /graph/resize.jpg?input=x&width=10" 301' in record["message"]
