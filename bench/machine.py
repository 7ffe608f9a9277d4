"""The machine a run is on, and the versions of everything measured, for the report."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

import aiohttp
from PIL import Image

from bench import lab
from bench.workload import CPUS


def machine_info() -> dict:
    import pyvips

    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    mem_kb = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal")
    )

    def run(*command: str) -> str:
        """The first line a command prints (some print their version on stderr, exit 1)."""
        try:
            out = subprocess.run(command, capture_output=True, text=True, timeout=30)
        except OSError:
            return "not installed"
        lines = (out.stdout + out.stderr).strip().splitlines()
        return lines[0] if lines else "?"

    thumbor_py = str(lab.THUMBOR_VENV / "bin" / "python")
    versions = {
        "python": platform.python_version(),
        "libvips": f"{pyvips.version(0)}.{pyvips.version(1)}.{pyvips.version(2)}",
        "pyvips": pyvips.__version__,
        "Pillow": Image.__version__,
        "thumbor": run(thumbor_py, "-c", "import thumbor; print(thumbor.__version__)"),
        "thumbor's Pillow": run(thumbor_py, "-c", "import PIL; print(PIL.__version__)"),
        "aiohttp": aiohttp.__version__,
        "nginx": run(lab.NGINX, "-v").rsplit("/", 1)[-1],
        "wrk": run("wrk", "-v").split(" [")[0].removeprefix("wrk "),
        "redis": run("redis-server", "--version").split(" sha")[0].split("v=")[-1],
    }
    return {
        "cpus": CPUS,
        "cpu_model": model,
        "ram_gb": mem_kb / 1024 / 1024,
        "kernel": platform.release(),
        "loadavg_start": os.getloadavg(),
        "versions": versions,
    }
