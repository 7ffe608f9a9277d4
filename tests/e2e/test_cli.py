"""``python -m imgserver prefetch | purge`` against a live embedded server: progress, the summary
table, resuming, failures counted in the exit status, sitemaps and stdin."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ..conftest import Origin, Service
from ..servers import REPO
from .test_distributed import photo, unique

PREFETCH_JPG = ("prefetch", "-g", "passthrough.jpg", "-k", "web")
KEYS = "web:websecret-0123456789,ops:opssecret-0123456789:admin"


def cli(
    *args: str, server: Service, stdin: str = "", **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "imgserver", *args, "--server", server.base],
        cwd=REPO,
        input=stdin,
        env={"PATH": "/usr/bin:/bin", "IMGSERVER_KEYS": KEYS, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def table(stdout: str) -> dict[str, int]:
    """The summary table's rows: {outcome: count}."""
    rows = {}
    for line in stdout.splitlines():
        cells = [c.strip() for c in line.strip("│┃ ").split("│")]
        if len(cells) == 2 and cells[1].isdigit():
            rows[cells[0]] = int(cells[1])
    return rows


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Service:
    svc = Service(
        tmp_path_factory.mktemp("cli"), {"IMGSERVER_KEYS": KEYS, "IMGSERVER_WORKERS": "1"}
    )
    svc.start()
    yield svc
    svc.stop()


def test_prefetch_counts_failures_and_resumes(
    keyed: Service, origin: Origin, tmp_path: Path
) -> None:
    good = [origin.add(unique() + ".jpg", photo(320, 200)) for _ in range(3)]
    missing = origin.url(unique() + ".jpg")  # the origin answers 404
    urls = tmp_path / "urls.txt"
    urls.write_text("# sources\n" + "\n".join([*good, "", missing, good[0]]) + "\n")
    args = ("prefetch", "-g", "passthrough.webp", "-p", "width=100", "-k", "web", str(urls))

    first = cli(*args, "--progress", "lines", "--interval", "0", server=keyed)
    assert first.returncode == 1, first.stderr
    rows = table(first.stdout)
    failure = next(label for label in rows if label.startswith("failed: source_"))
    assert rows == {"completed": 3, failure: 1}
    assert f"failed: {missing}: {failure.removeprefix('failed: ')}:" in first.stderr
    assert "prefetch: 4/4 (100%)" in first.stderr and "/s ETA" in first.stderr
    hits = [origin.hits(u.removeprefix(origin.url(""))) for u in good]

    again = tmp_path / "again.txt"  # resuming: what is cached is skipped, without any work
    again.write_text("\n".join(good) + "\n")
    second = cli(*args[:-1], str(again), "--progress", "none", server=keyed)
    assert second.returncode == 0, second.stderr
    assert table(second.stdout) == {"cached (skipped)": 3}
    assert second.stderr == ""
    assert [origin.hits(u.removeprefix(origin.url(""))) for u in good] == hits


def test_prefetch_reads_stdin_and_draws_a_bar(keyed: Service, origin: Origin) -> None:
    sources = [origin.add(unique() + ".png", photo(200, 120)) for _ in range(2)]
    out = cli(
        *PREFETCH_JPG,
        "-j",
        "2",
        "--progress",
        "bar",
        "-",
        server=keyed,
        stdin="\n".join(sources),
    )
    assert out.returncode == 0, out.stderr
    assert table(out.stdout) == {"completed": 2}
    assert "2/2" in out.stderr and "100%" in out.stderr and "/s" in out.stderr
    assert "ETA" in out.stderr


def test_prefetch_takes_a_sitemaps_images(keyed: Service, origin: Origin, tmp_path: Path) -> None:
    image = origin.add(unique() + ".jpg", photo(200, 120))
    listed = origin.add(unique() + ".jpeg", photo(220, 120))
    page = origin.add(unique() + ".html", b"<html></html>", content_type="text/html")
    sitemap = tmp_path / "sitemap.xml"
    sitemap.write_text(
        f"""<?xml version="1.0" encoding="UTF-8"?>
<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"
        xmlns:image="http://www.google.com/schemas/sitemap-image/1.1">
  <url><loc>{page}</loc><image:image><image:loc>{image}</image:loc></image:image></url>
  <url><loc>{listed}</loc></url>
</urlset>
"""
    )
    out = cli("prefetch", "-g", "passthrough.jpg", "-k", "web", str(sitemap), server=keyed)
    assert out.returncode == 0, out.stderr
    assert table(out.stdout) == {"completed": 2}  # the image and the listed .jpeg, not the page
    assert origin.hits(page.removeprefix(origin.url(""))) == 0


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (("-g", "passthrough.jpg", "-"), "", "no source URLs given"),
        (
            ("-g", "passthrough.jpg", "-p", "width", "-"),
            "http://a/b.jpg",
            "a parameter is NAME=VALUE",
        ),
        (
            ("-g", "passthrough.jpg", "-k", "nobody", "-"),
            "http://a/b.jpg",
            "no such enabled API key",
        ),
        (
            ("-g", "passthrough.jpg", "/nonexistent/urls.txt"),
            "",
            "cannot read /nonexistent/urls.txt",
        ),
        (("-g", "passthrough.jpg", "-"), "<sitemapindex/>", "a sitemap index"),
        (("-g", "passthrough.jpg", "-"), "<urlset><url>", "not a readable sitemap"),
    ],
)
def test_prefetch_usage_errors_exit_2(
    keyed: Service, args: tuple[str, ...], stdin: str, message: str
) -> None:
    out = cli("prefetch", *args, server=keyed, stdin=stdin)
    assert out.returncode == 2
    assert len(out.stderr.splitlines()) == 1 and message in out.stderr, out.stderr


def test_prefetch_of_a_bad_parameter_is_a_counted_failure(keyed: Service, origin: Origin) -> None:
    source = origin.add(unique() + ".jpg", photo(200, 120))
    out = cli(
        *PREFETCH_JPG,
        "-p",
        "width=wide",
        "-",
        server=keyed,
        stdin=source,
    )
    assert out.returncode == 1
    assert table(out.stdout) == {"failed: invalid_param": 1}


def test_purge_drops_results_so_prefetch_makes_them_again(keyed: Service, origin: Origin) -> None:
    source = origin.add(unique() + ".jpg", photo(200, 120))
    prefetch = ("prefetch", "-g", "passthrough.jpg", "-k", "web", "--progress", "none", "-")
    assert table(cli(*prefetch, server=keyed, stdin=source).stdout) == {"completed": 1}
    assert table(cli(*prefetch, server=keyed, stdin=source).stdout) == {"cached (skipped)": 1}

    purged = cli("purge", source, server=keyed)  # the first admin key: ops
    assert purged.returncode == 0, purged.stderr
    assert purged.stdout.strip() == f"purged 1 results of {source}"
    assert table(cli(*prefetch, server=keyed, stdin=source).stdout) == {"completed": 1}

    refused = cli("purge", "--key", "web", source, server=keyed)
    assert refused.returncode == 2 and "no such enabled admin API key 'web'" in refused.stderr


def test_help_reads_like_a_manual() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "imgserver", "prefetch", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0
    for section in ("usage:", "Resuming:", "examples:", "exit status:", "--concurrency N"):
        assert section in out.stdout


def test_prefetch_without_waiting_counts_queued_tasks(keyed: Service, origin: Origin) -> None:
    source = origin.add(unique() + ".jpg", photo(200, 120))
    out = cli(*PREFETCH_JPG, "--no-wait", "--progress", "none", "-", server=keyed, stdin=source)
    assert out.returncode == 0, out.stderr
    assert table(out.stdout) == {"queued": 1}
