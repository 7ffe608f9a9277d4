"""Make docs/screenshot.png, the README's picture of the web client.

    .venv/bin/python bench/screenshot.py [--out docs/screenshot.png]

Starts the service (embedded, a temporary data dir), opens the page in Debian's chromium
(`deploy/system-deps.sh chromium`), uploads photos from Debian's mate-backgrounds package
(bench/photos.py) and a text file through the page's file picker, waits until every photo is
compressed (live, from the event stream), runs a graph in the playground, and saves the window
(1280x800) as a PNG quantised to a palette, so the committed file stays small.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import pyvips
from playwright.sync_api import expect, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.photos import photo  # noqa: E402
from tests.browser import launch  # noqa: E402
from tests.servers import Service  # noqa: E402

PHOTOS = ("Aqua.jpg", "LadyBird.jpg", "Dune.jpg", "FreshFlower.jpg", "GreenMeadow.jpg")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshot.png")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=800)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="imgserver-shot-") as tmp:
        work = Path(tmp)
        notes = work / "notes.txt"
        notes.write_text("not an image\n" * 10)
        service = Service(work / "data", {"IMGSERVER_LOG_LEVEL": "WARNING"}).start()
        try:
            with sync_playwright() as p:
                browser = launch(p)
                page = browser.new_page(viewport={"width": args.width, "height": args.height})
                expect.set_options(timeout=60_000)
                page.goto(service.url("/"))
                expect(page.locator("#live")).to_have_attribute("data-state", "live")
                for name in PHOTOS:  # one at a time: the gallery shows them in this order
                    page.set_input_files("#files", str(photo(name)))
                    expect(page.locator(".card .name", has_text=name)).to_have_count(1)
                expect(page.locator(".card[data-status=completed]")).to_have_count(len(PHOTOS))
                page.set_input_files("#files", str(notes))
                expect(page.locator("#uploads li.error")).to_have_count(1)
                page.select_option("#graph", "desaturate")
                page.fill("#p-width", "480")
                page.get_by_role("button", name="Run graph").click()
                expect(page.locator("#result-info")).to_contain_text("ms")
                for img in page.locator(".card .thumb img").all():
                    img.scroll_into_view_if_needed()
                    while not img.evaluate("i => i.complete && i.naturalWidth > 0"):
                        time.sleep(0.05)
                page.evaluate("() => window.scrollTo(0, 0)")
                time.sleep(0.3)
                raw = page.screenshot(type="png")
                browser.close()
        finally:
            service.stop()

    image = pyvips.Image.new_from_buffer(raw, "")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    image.pngsave(str(args.out), palette=True, Q=90, effort=10, compression=9, keep="none")
    print(f"{args.out}: {image.width}x{image.height}, {args.out.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
