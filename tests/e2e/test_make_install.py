"""``make serve``'s install steps print one line each, not pip's and setuptools' warnings; a
step that fails shows its log. Real make, venv and pip, in a copy of the project (without
dependencies: ``PIP_NO_DEPS``, so only the build backend comes from the index)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from ..servers import REPO

pytestmark = pytest.mark.slow

FILES = ("Makefile", "setup.cfg", "pyproject.toml", "README.md", "imgserver", "workers")


def make(project: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "--no-print-directory", ".venv/.installed"],
        cwd=project,
        env={**os.environ, "PIP_NO_DEPS": "1", **env},
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_install_steps_print_one_line_each(tmp_path: Path) -> None:
    if shutil.which("make") is None:
        pytest.fail("make is not installed")
    project = tmp_path / "project"
    project.mkdir()
    for name in FILES:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, project / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, project / name)

    # No index: the build backend (setuptools) cannot be had, so the install step fails and
    # shows its log.
    failed = make(project, PIP_NO_INDEX="1")
    assert failed.returncode != 0
    lines = failed.stdout.splitlines()
    assert lines[:3] == [
        "make: creating the virtualenv .venv",
        "make: installing the latest pip",
        "make: installing imgserver and its dependencies",
    ]
    assert "setuptools" in failed.stdout  # pip's own words, from the log
    assert lines[-1] == (
        "make: installing imgserver and its dependencies failed (its log, above, is in "
        ".venv/install.log)"
    )

    done = make(project)  # the virtualenv is there now: one step is left
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines() == ["make: installing imgserver and its dependencies"]
    assert done.stderr == ""
