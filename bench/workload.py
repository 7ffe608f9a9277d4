"""What the parts are run on: the sources (linked into the one directory the origin serves),
the miss workload's requests, and the settings every part shares."""

from __future__ import annotations

import os
from pathlib import Path

from PIL import Image

from bench import lab
from bench.photos import generated, photo

Image.MAX_IMAGE_PIXELS = None  # our own sources: no decompression-bomb warning
SOURCES_DIR = lab.CACHE / "sources"
CPUS = len(os.sched_getaffinity(0))

# name -> where it comes from; the miss workload cycles through all of them
PACKAGE_JPEGS = [
    "Aqua.jpg",
    "Garden.jpg",
    "LadyBird.jpg",
    "TwoWings.jpg",
    "YellowFlower.jpg",
    "Elephants_3840x2160.jpg",
    "Elephants_5640x3172.jpg",
]
PNGS = ["LadyBird_2560x1600.png", "Elephants_5120x2880.png"]
MISS_SOURCES = PACKAGE_JPEGS + PNGS
QUICK_MISS_SOURCES = ["Aqua.jpg", "Elephants_3840x2160.jpg", "LadyBird_2560x1600.png"]
BYTES_SOURCES = MISS_SOURCES
QUICK_BYTES_SOURCES = ["Aqua.jpg", "LadyBird_2560x1600.png"]
MEMORY_SOURCES = ["Elephants_5120x2880.png", "Elephants_12000x8000.jpg"]

CONCURRENCY = 4
QUALITY = 80


# -- sources ----------------------------------------------------------------------------------


def source_path(name: str) -> Path:
    return photo(name) if name in PACKAGE_JPEGS else generated(name)


def prepare_sources(names: list[str]) -> dict[str, Path]:
    """Every source the run uses, linked into one directory the origin serves."""
    SOURCES_DIR.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name in names:
        path = source_path(name).resolve()
        link = SOURCES_DIR / name
        if not link.exists() or link.resolve() != path:
            link.unlink(missing_ok=True)
            link.symlink_to(path)
        paths[name] = path
    return paths


def size_of(path: Path) -> tuple[int, int]:
    with Image.open(path) as image:
        return image.size


# -- the miss workload ------------------------------------------------------------------------


def miss_jobs(sources: list[str], n: int) -> list[tuple[str, int]]:
    """``n`` unique (source, width) pairs, widths 300-800, cycling through the sources."""
    jobs = []
    for i in range(n):
        s, r = i % len(sources), i // len(sources)
        jobs.append((sources[s], 300 + (r * 53 + s * 17) % 501))
    return jobs


def warmup_jobs(sources: list[str]) -> list[tuple[str, int]]:
    return [(name, 250 + i) for i, name in enumerate(sources)]  # widths outside 300-800
