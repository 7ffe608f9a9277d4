"""A minimal process supervisor for ``python -m imgserver stack``: what systemd or Kubernetes
do for the roles in production, on one machine in the foreground.

Each ``Role`` runs as a child in its own session (so a Ctrl-C on the terminal reaches only the
supervisor, which then stops the children in order). A child that exits while the stack runs is
started again after a backoff that doubles from 1 s up to 30 s, and falls back to 1 s once a run
lasted a minute. Its output is copied line by line, prefixed with the time and the role's name.

Why not honcho (it ends every process when one dies) or supervisord (a daemon with its own
config file and control socket, more than a foreground dev stack needs): a restart loop with
backoff is this module.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

BACKOFF_FIRST = 1.0
BACKOFF_MAX = 30.0
STABLE_AFTER = 60.0  # a run this long resets the backoff


@dataclass
class Role:
    name: str
    argv: Sequence[str]
    env: dict[str, str]
    # awaited after every (re)start, e.g. to wait for a port or create a bucket
    after_start: Callable[[], Awaitable[None]] | None = None
    stop_timeout: float = 40.0
    restarts: int = 0
    proc: asyncio.subprocess.Process | None = field(default=None, repr=False)


def say(name: str, line: str) -> None:
    sys.stdout.write(f"{time.strftime('%H:%M:%S')} {name:<10} | {line}\n")
    sys.stdout.flush()


class Supervisor:
    def __init__(self) -> None:
        self.roles: list[Role] = []
        self.stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self, role: Role) -> None:
        """Start ``role`` (and its ``after_start``), then keep it running until ``stop``."""
        self.roles.append(role)
        await self._spawn(role)
        self._tasks.append(asyncio.create_task(self._keep(role)))

    async def _spawn(self, role: Role) -> None:
        role.proc = await asyncio.create_subprocess_exec(
            *role.argv,
            env=role.env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
        self._tasks.append(asyncio.create_task(self._pump(role.name, role.proc)))
        if self.stopping.is_set():  # `stop` ran while it was being started
            await stop_process(role.proc, role.stop_timeout)
            return
        if role.after_start is not None:
            await role.after_start()

    @staticmethod
    async def _pump(name: str, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        async for raw in proc.stdout:
            say(name, raw.decode(errors="replace").rstrip())

    async def _keep(self, role: Role) -> None:
        backoff = BACKOFF_FIRST
        while True:
            began = time.monotonic()
            assert role.proc is not None
            code = await role.proc.wait()
            with contextlib.suppress(ProcessLookupError):  # what it left behind in its session
                os.killpg(role.proc.pid, signal.SIGKILL)
            if self.stopping.is_set():
                return
            if time.monotonic() - began >= STABLE_AFTER:
                backoff = BACKOFF_FIRST
            say("stack", f"{role.name} exited ({exit_text(code)}); restarting in {backoff:g} s")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), backoff)
            if self.stopping.is_set():
                return
            backoff = min(backoff * 2, BACKOFF_MAX)
            role.restarts += 1
            try:
                await self._spawn(role)
            except (OSError, RuntimeError) as exc:  # e.g. a port still held: try again later
                say("stack", f"{role.name} did not start again: {exc}")

    async def stop(self, names: Sequence[str] | None = None) -> None:
        """SIGTERM the roles (all, or those named) at once; SIGKILL what outlives its timeout."""
        self.stopping.set()
        chosen = [r for r in self.roles if names is None or r.name in names]
        await asyncio.gather(*(stop_process(r.proc, r.stop_timeout) for r in chosen))

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


async def stop_process(proc: asyncio.subprocess.Process | None, grace: float) -> None:
    if proc is None or proc.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        await asyncio.wait_for(proc.wait(), grace)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()


def exit_text(code: int) -> str:
    if code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return f"exit status {code}"
