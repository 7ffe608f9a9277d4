"""What the parts share: the run's options, sources, the origin and thumbor (``Context``), the
names of the systems measured, the log, and how one measurement is attempted and its rounds
reduced to one figure."""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import lab
from bench.workload import (
    BYTES_SOURCES,
    CPUS,
    MEMORY_SOURCES,
    MISS_SOURCES,
    QUICK_BYTES_SOURCES,
    QUICK_MISS_SOURCES,
    SOURCES_DIR,
    miss_jobs,
    prepare_sources,
)

RESULTS = lab.REPO / "bench" / "results"

EMBEDDED = "ours embedded"
DIST_S3 = "ours distributed (S3)"
DIST_LOCAL = "ours distributed (local storage)"
THUMBOR = "thumbor 7.8"
BARE = {"pyvips": "bare pyvips", "pillow": "bare Pillow"}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class Context:
    """What the parts share: options, sources, the origin, thumbor (started on first use)."""

    def __init__(self, args: argparse.Namespace, root: Path) -> None:
        self.args = args
        self.root = root
        self.miss_sources = QUICK_MISS_SOURCES if args.quick else MISS_SOURCES
        n = args.requests or (2 * len(self.miss_sources) if args.quick else 20 * len(MISS_SOURCES))
        self.jobs = miss_jobs(self.miss_sources, n)
        self.hit_seconds = 3 if args.quick else 10
        self.budget_seconds = 2 if args.quick else 5
        names = set(self.miss_sources)
        if "bytes" in args.only:
            names |= set(QUICK_BYTES_SOURCES if args.quick else BYTES_SOURCES)
        if "memory" in args.only:
            names |= set(MEMORY_SOURCES)
        log("preparing sources (first run: downloads mate-backgrounds, makes the large ones)")
        self.paths = prepare_sources(sorted(names))
        self.nginx = lab.Nginx(root / "nginx", SOURCES_DIR).start()
        self._thumbor: lab.Thumbor | None = None
        self.profiled = False

    def thumbor(self) -> lab.Thumbor:
        if self._thumbor is None:
            if not (lab.THUMBOR_VENV / "bin" / "thumbor").exists():
                raise SystemExit("thumbor is not installed: run `make bench` (or --skip-thumbor)")
            self._thumbor = lab.Thumbor(self.root / "thumbor", CPUS).start()
        return self._thumbor

    def stop_thumbor(self) -> None:
        if self._thumbor is not None:
            self._thumbor.stop()
            self._thumbor = None

    def close(self) -> None:
        self.stop_thumbor()
        self.nginx.stop()


def attempt(results: dict, what: str, measure: Callable[[], object]) -> Any:
    """Run one measurement; a failure is logged and recorded, and the run goes on."""
    log(what)
    try:
        return measure()
    except Exception as exc:
        traceback.print_exc()
        results["failed"][what] = repr(exc)
        return None


def median_round(measured: list[dict]) -> dict:
    """The round with the median throughput, with every round's throughput beside it."""
    by_rps = sorted(measured, key=lambda r: r["rps"])
    chosen = dict(by_rps[(len(by_rps) - 1) // 2])
    chosen["rounds_rps"] = [round(r["rps"], 2) for r in measured]
    if "profile" not in chosen:  # profiled in one round only
        chosen |= {k: r[k] for r in measured for k in ("profile",) if k in r}
    return chosen
