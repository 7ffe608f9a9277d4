"""One way to open and close a resource: ``async with`` it. A class says how it opens and closes
(``open``/``close``) and ``Managed`` makes it an async context manager; ``AsyncExitStack``s
(``backends/factory.py``, ``processing.py``, ``workers/``) and the app's cleanup contexts enter
them."""

from __future__ import annotations

from types import TracebackType
from typing import Self


class Managed:
    """``async with`` from ``open()`` and ``close()`` (by default: nothing to do, e.g. a store on
    a connection someone else opened)."""

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
