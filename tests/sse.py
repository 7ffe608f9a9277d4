"""Reading Server-Sent Events over a real HTTP connection (aiohttp), for the tests."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

FINAL = {"completed", "completed_with_errors", "failed"}


async def events(response: aiohttp.ClientResponse) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """(event name, JSON data) of each event until the stream ends; comments are skipped."""
    name, data = "message", []
    async for raw in response.content:
        line = raw.decode().rstrip("\r\n")
        if not line:
            if data:
                yield name, json.loads("\n".join(data))
            name, data = "message", []
        elif line.startswith(":"):
            continue
        elif line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())


async def task_statuses(response: aiohttp.ClientResponse, task_id: str) -> list[str]:
    """The statuses a /tasks/{id}/events stream reports, read until the server ends it."""
    seen = []
    async for name, data in events(response):
        assert name == "task" and data["id"] == task_id, (name, data)
        seen.append(data["status"])
    return seen
