"""Launching Debian's chromium with Playwright (never `playwright install`: the machine is
offline; deploy/system-deps.sh installs the `chromium` package)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def launch(playwright: Any) -> Any:
    """A headless chromium Browser from a started (sync or async) Playwright."""
    if not CHROMIUM.exists():
        pytest.fail("chromium is not installed: run `make test` (system-deps.sh installs it)")
    return playwright.chromium.launch(
        executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
    )
