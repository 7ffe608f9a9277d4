"""Real photographs for the benchmarks, from Debian's mate-backgrounds package.

The package is downloaded (not installed) and unpacked into bench/.cache/, so no large
binary is committed and no root is needed once the apt lists exist.
"""

from __future__ import annotations

import glob
import subprocess
from pathlib import Path

CACHE = Path(__file__).resolve().parent / ".cache"
PACKAGE = "mate-backgrounds"
ROOT = CACHE / "root" / "usr/share/backgrounds/mate"


def photos() -> Path:
    """The directory of the package's images, fetching the package on first use."""
    if not ROOT.is_dir():
        CACHE.mkdir(parents=True, exist_ok=True)
        if not glob.glob(str(CACHE / f"{PACKAGE}_*.deb")):
            try:
                subprocess.run(["apt-get", "download", PACKAGE], cwd=CACHE, check=True)
            except subprocess.CalledProcessError:
                subprocess.run(["apt-get", "update", "-q"], check=True)
                subprocess.run(["apt-get", "download", PACKAGE], cwd=CACHE, check=True)
        deb = sorted(glob.glob(str(CACHE / f"{PACKAGE}_*.deb")))[-1]
        subprocess.run(["dpkg-deb", "-x", deb, str(CACHE / "root")], check=True)
    return ROOT


def photo(name: str) -> Path:
    """One image by file name, e.g. "Aqua.jpg" (2560x1600) or "Elephants_5640x3172.jpg"."""
    found = sorted(photos().glob(f"*/{name}"))
    if not found:
        raise FileNotFoundError(f"{name} is not in {PACKAGE}")
    return found[0]
