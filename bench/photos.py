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


# Larger sources than the package has, made once from its photos with pyvips (same content,
# real photographic detail): a 5120x2880 PNG, a 2560x1600 PNG and a ~100 MP JPEG.
GENERATED = CACHE / "generated"


def _make(name: str) -> None:
    import pyvips

    out = GENERATED / name
    tmp = out.with_name(out.name + ".tmp")
    elephants = str(photo("Elephants_5640x3172.jpg"))
    if name == "Elephants_5120x2880.png":
        pyvips.Image.thumbnail(elephants, 5120, height=2880, crop="centre").pngsave(
            str(tmp), keep="none"
        )
    elif name == "LadyBird_2560x1600.png":
        pyvips.Image.new_from_file(str(photo("LadyBird.jpg"))).pngsave(str(tmp), keep="none")
    elif name == "Elephants_12000x8000.jpg":  # 96 MP: crop to 3:2, then upscale
        image = pyvips.Image.new_from_file(elephants)
        width = image.height * 3 // 2
        image = image.crop((image.width - width) // 2, 0, width, image.height)
        image = image.resize(12000 / image.width, vscale=8000 / image.height, kernel="lanczos3")
        image.jpegsave(str(tmp), Q=90, keep="none")
    else:
        raise FileNotFoundError(name)
    tmp.rename(out)


def generated(name: str) -> Path:
    """A generated source by name (made on first use): "Elephants_5120x2880.png",
    "LadyBird_2560x1600.png" or "Elephants_12000x8000.jpg"."""
    out = GENERATED / name
    if not out.exists():
        GENERATED.mkdir(parents=True, exist_ok=True)
        _make(name)
    return out
