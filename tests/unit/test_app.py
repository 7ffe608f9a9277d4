"""The app factory, in process on the embedded backends: its resources open in order (one
event-bus subscription, every backend answering /readyz), its routes come from the route
modules, and GET /ops answers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from imgserver.app import create_app
from imgserver.backends.memory import MemoryEventBus
from imgserver.runtime.registry import OPS
from imgserver.settings import Settings
from imgserver.web.state import BACKENDS

BACKENDS_NAMES = {"storage", "index", "tasks", "images", "broker", "events", "inflight", "quotas"}


@pytest.fixture
async def client(aiohttp_client: Any, tmp_path: Path) -> Any:
    return await aiohttp_client(create_app(Settings(data_dir=tmp_path, workers=1)))


async def test_every_backend_is_ready_and_reported(client: Any) -> None:
    resp = await client.get("/readyz")
    assert resp.status == 200
    body = await resp.json()
    assert body == {"status": "ready", "backends": dict.fromkeys(BACKENDS_NAMES, "ok")}


async def test_one_event_bus_subscription_per_frontend(client: Any) -> None:
    bus = client.app[BACKENDS].events
    assert isinstance(bus, MemoryEventBus)
    assert len(bus._subscribers) == 1


async def test_ops_answers_from_the_registry(client: Any) -> None:
    resp = await client.get("/ops")
    assert resp.status == 200
    assert set((await resp.json())["ops"]) == set(OPS)


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/", 200),
        ("/graphs", 200),
        ("/graphs/resize", 200),
        ("/healthz", 200),
        ("/version", 200),
        ("/metrics", 200),
        ("/tasks/nope", 404),
        ("/images", 200),
        ("/results/" + "0" * 64, 404),
        ("/nowhere", 404),
    ],
)
async def test_the_route_modules_are_all_mounted(client: Any, path: str, status: int) -> None:
    resp = await client.get(path)
    assert resp.status == status
    if status == 404:
        assert (await resp.json())["error"]["code"] == "not_found"
