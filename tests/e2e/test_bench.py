"""The benchmark harness still runs (bench/run.py --quick, the parts that need no thumbor and no
distributed stack): it prints its tables and writes its JSON. No timing is asserted."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ..servers import REPO

pytestmark = pytest.mark.slow


def test_bench_quick_run(tmp_path: Path) -> None:
    pytest.importorskip("numpy", reason="the bench extra is not installed (make bench)")
    if not (shutil.which("nginx") or Path("/usr/sbin/nginx").exists()):
        pytest.skip("nginx (the benchmark's origin) is not installed: make bench installs it")
    sys.path.insert(0, str(REPO))
    from bench.photos import photos

    try:
        photos()
    except Exception as exc:  # no apt, no network: nothing to measure with
        pytest.skip(f"the photos (Debian's mate-backgrounds) are not available: {exc}")
    out = tmp_path / "latest.json"
    command = [
        sys.executable,
        str(REPO / "bench" / "run.py"),
        "--quick",
        "--skip-thumbor",
        "--skip-distributed",
        "--only",
        "miss,bytes",
        "--output",
        str(out),
    ]
    run = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    for heading in (
        "1. miss throughput and latency",
        "4a. bytes: compress",
        "4b. bytes: passthrough",
        "targets (issues 6 and 13)",
    ):
        assert heading in run.stdout, run.stdout
    for system in ("ours embedded", "bare pyvips", "bare Pillow"):
        assert f"\n{system} " in run.stdout, run.stdout
    results = json.loads(out.read_text())
    assert set(results["miss"]) == {"ours embedded", "bare pyvips", "bare Pillow"}
    assert all(r["errors"] == 0 for r in results["miss"].values()), results["miss"]
    assert {r["kind"] for r in results["bytes"]} == {"compress", "resize"}
