"""The web client in a real browser: Debian's chromium driven by Playwright, against the service
run as a real process. Uploads through the file picker and a simulated drop, live statuses from
``/events`` (no reload), sizes and savings, the graph playground, errors, phone width.

Also the page's HTTP side (content types, caching, size), which needs no browser.
"""

from __future__ import annotations

import base64
import gzip
import json
import re
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from ..browser import launch
from ..conftest import Service
from ..images import alpha_png, jpeg, marked, png, texture

WAIT_MS = 30_000  # for a task to finish (they take well under a second here)
TIMES = "\u00d7"  # the multiplication sign, as in the sizes the page shows
SAVING = re.compile(r"^\d+(\.\d)?% (smaller|larger)$|^same size$")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    expect.set_options(timeout=WAIT_MS)
    with sync_playwright() as p:
        b = launch(p)
        yield b
        b.close()


def open_page(browser: Browser, server: Any, width: int = 1280, height: int = 800) -> Page:
    """The page of ``server`` (the service, or nginx in front of it), live updates connected."""
    context = browser.new_context(viewport={"width": width, "height": height})
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    page.errors = []  # type: ignore[attr-defined]
    page.on("pageerror", lambda e: page.errors.append(str(e)))  # type: ignore[attr-defined]
    page.goto(server.url("/"))
    expect(page.locator("#live")).to_have_attribute("data-state", "live")
    # survives only if the page is never reloaded or left
    page.evaluate("() => { window.__sameDocument = true; }")
    return page


@pytest.fixture
def page(browser: Browser, service: Service) -> Iterator[Page]:
    p = open_page(browser, service)
    yield p
    errors = p.errors  # type: ignore[attr-defined]
    p.context.close()
    assert not errors, errors


def http(url: str, data: bytes | None = None, headers: dict[str, str] | None = None):
    """(status, headers, body) of a request; error statuses are answers too."""
    req = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def upload_raw(service: Service, data: bytes) -> dict[str, Any]:
    status, _, body = http(service.url("/images"), data)
    assert status == 201, body
    return json.loads(body)


def card(page: Page, image_id: str):
    return page.locator(f'.card[data-id="{image_id}"]')


def card_ids(page: Page, name: str) -> list[str]:
    """Ids of the cards whose title is ``name``."""
    return (
        page.locator(".card")
        .filter(has=page.locator(".name", has_text=name))
        .evaluate_all("cards => cards.map(c => c.dataset.id)")
    )


def same_document(page: Page) -> bool:
    return page.evaluate("() => window.__sameDocument === true")


def events_seen(page: Page) -> int:
    return int(page.locator("#live").get_attribute("data-events") or 0)


def check_sizes(page: Page, service: Service, image_id: str) -> None:
    """The card shows the original and compressed sizes and the saving, as the API has them."""
    image = json.loads(http(service.url(f"/images/{image_id}"))[2])
    assert image["compressed_bytes"] is not None
    c = card(page, image_id)
    expect(c.locator(".compressed")).not_to_have_text("…")
    original = c.locator(".original").inner_text()
    assert re.match(r"^[\d.]+ (B|kB|MB) · (JPEG|PNG)", original), original
    saving = c.locator(".saving").inner_text()
    assert SAVING.match(saving), saving
    expected = round((1 - image["compressed_bytes"] / image["bytes"]) * 100, 1)
    if expected > 0:
        assert float(saving.split("%")[0]) == pytest.approx(expected, abs=0.11)


# -- the page over HTTP -----------------------------------------------------------------------


def test_page_and_assets_are_served_with_types_and_caching(service: Service) -> None:
    status, headers, body = http(service.url("/"))
    assert status == 200
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert headers["Cache-Control"] == "no-cache"
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    html = body.decode()
    assets = re.findall(r'(?:href|src)="(/static/[0-9a-f]{16}/[a-z]+\.(?:js|css))"', html)
    assert {a.rsplit("/", 1)[1] for a in assets} >= {"app.js", "style.css", "api.js"}
    total = len(body)
    types = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
    for path in set(assets):
        status, headers, body = http(service.url(path))
        assert status == 200, path
        assert headers["Content-Type"] == types[Path(path).suffix]
        assert headers["Cache-Control"] == "public, max-age=31536000, immutable"
        total += len(body)
        # revalidation and compression
        status, _, _ = http(service.url(path), headers={"If-None-Match": headers["ETag"]})
        assert status == 304
        status, zipped_headers, zipped = http(
            service.url(path), headers={"Accept-Encoding": "gzip"}
        )
        assert zipped_headers["Content-Encoding"] == "gzip" and gzip.decompress(zipped) == body
    # modules import each other: every one they name is served too (under the same version)
    version = assets[0].split("/")[2]
    imported = set()
    for path in assets:
        _, _, body = http(service.url(path))
        imported |= set(re.findall(r'from "\./([a-z]+\.js)"', body.decode()))
    for name in imported:
        assert http(service.url(f"/static/{version}/{name}"))[0] == 200, name
    assert total < 50_000, f"the client weighs {total} bytes"

    # a page from before a restart asks for an older version: served, but not cached for long
    status, headers, _ = http(service.url("/static/0000000000000000/app.js"))
    assert (status, headers["Cache-Control"]) == (200, "no-cache")
    status, headers, body = http(service.url(f"/static/{version}/nope.js"))
    assert status == 404 and json.loads(body)["error"]["code"] == "not_found"


# -- in the browser ---------------------------------------------------------------------------


def test_upload_with_the_picker_then_status_goes_live(
    page: Page, service: Service, tmp_path: Path
) -> None:
    files = [tmp_path / "sunset.jpg", tmp_path / "diagram.png"]
    files[0].write_bytes(jpeg(texture(640, 400), q=95))
    files[1].write_bytes(png(marked(300, 200)))
    seen = events_seen(page)

    page.set_input_files("#files", [str(f) for f in files])

    ids = []
    for f in files:
        expect(page.locator(".card .name", has_text=f.name)).to_have_count(1)
        [image_id] = card_ids(page, f.name)
        ids.append(image_id)
        # the status reaches `completed` with the page never reloaded: from the event stream
        expect(card(page, image_id)).to_have_attribute("data-status", "completed")
        expect(card(page, image_id).locator(".badge")).to_have_text("completed")
        check_sizes(page, service, image_id)
    assert same_document(page)
    assert events_seen(page) > seen
    assert page.locator("#uploads li").count() == 0  # finished uploads leave no row

    # newest first, and the thumbnail (through the graph API: a redirect the <img> follows)
    order = page.locator(".card").evaluate_all("cards => cards.map(c => c.dataset.id)")
    assert order.index(max(ids)) < order.index(min(ids))
    thumb = card(page, ids[0]).locator(".thumb img")
    thumb.scroll_into_view_if_needed()
    expect(thumb).to_have_attribute("alt", re.compile(rf"^sunset\.jpg: JPEG 640{TIMES}400$"))
    assert "/graph/passthrough.webp?input=upload%3A" in (thumb.get_attribute("src") or "")
    assert poll(page, "img => img.complete && img.naturalWidth", thumb) == 320


def poll(page: Page, fn: str, locator: Any, timeout: float = WAIT_MS / 1000) -> Any:
    """``fn(element)`` once truthy (the page's CSP forbids wait_for_function's eval)."""
    deadline = time.monotonic() + timeout
    while True:
        value = locator.evaluate(fn)
        if value or time.monotonic() > deadline:
            return value
        page.wait_for_timeout(50)


def test_an_image_uploaded_elsewhere_appears_and_completes_live(
    page: Page, service: Service
) -> None:
    image = upload_raw(service, jpeg(texture(500, 300)))
    expect(card(page, image["id"])).to_have_attribute("data-status", "completed")
    check_sizes(page, service, image["id"])
    assert same_document(page)


def test_upload_by_drag_and_drop(page: Page, service: Service) -> None:
    data = alpha_png(200, 100)
    page.locator("#drop").evaluate(
        """(zone, [name, b64]) => {
            const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
            const dt = new DataTransfer();
            dt.items.add(new File([bytes], name, { type: "image/png" }));
            for (const type of ["dragenter", "dragover", "drop"]) {
                zone.dispatchEvent(new DragEvent(type, { dataTransfer: dt, bubbles: true,
                                                         cancelable: true }));
            }
        }""",
        ["dropped.png", base64.b64encode(data).decode()],
    )
    expect(page.locator(".card .name", has_text="dropped.png")).to_have_count(1)
    [image_id] = card_ids(page, "dropped.png")
    expect(card(page, image_id)).to_have_attribute("data-status", "completed")
    assert f"PNG 200{TIMES}100" in card(page, image_id).locator(".original").inner_text()
    assert not page.locator("#drop").evaluate("zone => zone.classList.contains('over')")


def test_a_non_image_gets_a_readable_error(page: Page, tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("these are not pixels\n" * 20)
    cards_before = page.locator(".card").count()
    page.set_input_files("#files", str(notes))
    row = page.locator("#uploads li.error")
    expect(row).to_have_count(1)
    expect(row.locator(".file")).to_have_text("notes.txt")
    expect(row.locator(".message")).to_contain_text("the source is not an image we decode")
    assert page.locator(".card").count() == cards_before
    row.locator("button.dismiss").click()
    expect(row).to_have_count(0)


def test_playground_runs_a_graph_on_an_upload(page: Page, service: Service) -> None:
    image = upload_raw(service, jpeg(texture(640, 480)))
    c = card(page, image["id"])
    expect(c).to_have_attribute("data-status", "completed")

    # the form comes from GET /graphs: one control per parameter type
    expect(page.locator("#graph option")).to_have_count(len(graphs(service)))
    page.select_option("#graph", "resize")
    assert page.locator("#p-mode").evaluate("e => e.tagName") == "SELECT"
    assert page.locator("#p-upscale").get_attribute("type") == "checkbox"
    # quality takes a number or auto: a text field offering the word
    assert page.locator("#p-quality").get_attribute("type") == "text"
    assert page.locator("#p-quality").get_attribute("min") == "1"
    assert page.locator("#p-quality").input_value() == "80"  # the default
    words = page.locator("#p-quality-words option").evaluate_all("os => os.map(o => o.value)")
    assert words == ["auto"]

    c.get_by_role("button", name="Try a graph").click()
    assert page.locator("#input").input_value() == f"upload:{image['id']}"
    page.fill("#p-width", "200")
    page.select_option("#p-mode", "crop")
    page.fill("#p-height", "100")
    page.select_option("#format", "webp")
    page.fill("#p-quality", "auto")
    page.get_by_role("button", name="Run graph").click()

    result = page.locator("#result-img")
    assert poll(page, "img => img.complete && img.naturalWidth", result) == 200
    assert result.evaluate("img => img.naturalHeight") == 100
    url = page.locator("#result-url").input_value()
    assert url.startswith(service.url("/graph/resize.webp?input=upload%3A" + image["id"]))
    query = url.split("?", 1)[1]
    assert sorted(query.split("&")[1:]) == ["height=100", "mode=crop", "quality=auto", "width=200"]
    expect(page.locator("#result-info")).to_contain_text(f"200{TIMES}100 image/webp")
    status, headers, _ = http(url)  # the URL to copy gives the same image
    assert status == 200 and headers["Content-Type"] == "image/webp"

    # the copy button puts it on the clipboard
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.get_by_role("button", name="Copy").click()
    expect(page.get_by_role("button", name="Copied")).to_be_visible()
    assert page.evaluate("() => navigator.clipboard.readText()") == url

    # a failing run shows the API's message
    page.select_option("#input", "url")
    page.fill("#input-url", "http://127.0.0.1:9/nothing-here.jpg")
    page.get_by_role("button", name="Run graph").click()
    expect(page.locator("#play-error")).to_be_visible()
    expect(page.locator("#play-error")).to_contain_text("127.0.0.1")
    assert page.locator("#result-img").is_hidden()
    assert same_document(page)


def test_playground_chains_a_result_and_offers_uploads_as_watermarks(
    page: Page, service: Service
) -> None:
    image = upload_raw(service, jpeg(texture(640, 480)))
    logo = upload_raw(service, png(marked(40, 20, 20)))
    c = card(page, image["id"])
    expect(c).to_have_attribute("data-status", "completed")
    expect(card(page, logo["id"])).to_have_attribute("data-status", "completed")

    page.select_option("#graph", "resize")
    c.get_by_role("button", name="Try a graph").click()
    page.fill("#p-width", "200")
    page.fill("#p-height", "100")
    page.select_option("#p-mode", "crop")
    page.select_option("#format", "png")
    page.get_by_role("button", name="Run graph").click()
    result = page.locator("#result-img")
    assert poll(page, "img => img.complete && img.naturalWidth", result) == 200

    # the result is now an input: a chained request, resolved by the service
    page.select_option("#graph", "transform")
    chained = page.locator("#input option", has_text="Result of resize.png")
    expect(chained).to_have_count(1)
    page.select_option("#input", chained.get_attribute("value"))
    page.fill("#p-rotate", "90")
    watermark = page.locator("#p-watermark")
    assert watermark.get_attribute("list") == "uploaded-images"
    expect(page.locator(f"#uploaded-images option[value='upload:{logo['id']}']")).to_have_count(1)
    watermark.fill(f"upload:{logo['id']}")
    page.get_by_role("button", name="Run graph").click()
    expect(page.locator("#result-info")).to_contain_text(f"100{TIMES}200")
    url = page.locator("#result-url").input_value()
    assert "input=%2Fgraph%2Fresize.png%3Finput%3Dupload" in url and "watermark=upload" in url

    # a graph that draws its image has no input to choose
    page.select_option("#graph", "canvas")
    expect(page.locator("#input")).to_be_hidden()
    page.get_by_role("button", name="Run graph").click()
    expect(page.locator("#result-info")).to_contain_text(f"600{TIMES}400")
    assert "input=" not in page.locator("#result-url").input_value()
    page.select_option("#graph", "resize")
    expect(page.locator("#input")).to_be_visible()
    assert same_document(page)


def graphs(service: Service) -> dict[str, Any]:
    return json.loads(http(service.url("/graphs"))[2])["graphs"]


def test_load_more_pages_through_the_gallery(browser: Browser, service: Service) -> None:
    for i in range(13):
        upload_raw(service, png(marked(40 + i, 30)))
    total = len(json.loads(http(service.url("/images?limit=100"))[2])["images"])
    page = open_page(browser, service)
    try:
        expect(page.locator(".card")).to_have_count(12)
        more = page.get_by_role("button", name="Load more")
        more.click()
        expect(page.locator(".card")).to_have_count(min(total, 24))
        ids = page.locator(".card").evaluate_all("cards => cards.map(c => c.dataset.id)")
        assert ids == sorted(ids, reverse=True) and len(set(ids)) == len(ids)
        expect(more).to_be_visible() if total > 24 else expect(more).to_be_hidden()
    finally:
        page.context.close()


def test_phone_width_has_no_horizontal_scroll(browser: Browser, service: Service) -> None:
    upload_raw(service, jpeg(texture(1600, 400)))
    page = open_page(browser, service, width=375, height=740)
    try:
        expect(page.locator(".card").first).to_be_visible()
        page.select_option("#graph", "gaussianblur")
        page.get_by_role("button", name="Run graph").click()
        expect(page.locator("#result-info")).to_contain_text(TIMES)
        widths = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
        assert widths[0] <= widths[1] == 375, widths
        # every control is labelled, every image has a text alternative
        unlabelled = page.evaluate("""() => [...document.querySelectorAll('input, select, button')]
            .filter(e => !e.labels?.length && !e.getAttribute('aria-label')
                         && !e.textContent.trim()).map(e => e.outerHTML)""")
        assert unlabelled == []
        assert page.evaluate(
            "() => [...document.querySelectorAll('.card img')].every(i => i.alt.length > 0)"
        )
        # keyboard: Tab reaches the file picker; the form's controls are all tabbable
        for _ in range(10):
            page.keyboard.press("Tab")
            if page.evaluate("() => document.activeElement.id") == "files":
                break
        else:
            pytest.fail("Tab never reached the file picker")
        assert page.evaluate(
            "() => [...document.querySelectorAll('#play input, #play select,"
            " #play button')].every(e => e.tabIndex >= 0)"
        )
    finally:
        page.context.close()
