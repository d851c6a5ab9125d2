"""The search page in a real headless Chromium (Debian's ``chromium``, driven by Playwright
through ``executable_path``), served by a real ``tongyi-vision ui`` process on an index the
real CLI built against the emulator: typing a query, thumbnails, dropping and choosing
pictures, a clip playing from its time, filters, a bad upload, "more like this".

One browser for the module; a fresh tab for each test.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest
from playwright.sync_api import BrowserContext, FilePayload, Page, expect, sync_playwright

from integration_tests._system import require_program
from integration_tests.test_ui_http import (
    Collection,
    RunningPage,
    build_collection,
    jpeg_bytes,
    start_page,
)

if TYPE_CHECKING:
    from integration_tests.conftest import RunningEmulator

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WAIT_MS = 30_000


@pytest.fixture(scope="module")
def collection(tmp_path_factory: pytest.TempPathFactory, emulator: RunningEmulator) -> Collection:
    return build_collection(tmp_path_factory.mktemp("ui-browser"), emulator)


@pytest.fixture(scope="module")
def server(
    collection: Collection, emulator: RunningEmulator, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningPage]:
    running = start_page(
        collection.index, server=emulator, workdir=tmp_path_factory.mktemp("ui-browser-page")
    )
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def requested() -> list[str]:
    """Every URL the browser asked for during the module."""
    return []


@pytest.fixture(scope="module")
def console() -> list[str]:
    """Every console message and page error of the module."""
    return []


@pytest.fixture(scope="module")
def browser(
    tmp_path_factory: pytest.TempPathFactory, requested: list[str]
) -> Iterator[BrowserContext]:
    chromium = require_program("chromium")
    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            profile,
            executable_path=chromium,
            args=CHROMIUM_ARGS,
            headless=True,
            viewport={"width": 1280, "height": 900},
        )
        context.on("request", lambda request: requested.append(request.url))
        try:
            yield context
        finally:
            context.close()


@pytest.fixture
def tab(browser: BrowserContext, server: RunningPage, console: list[str]) -> Iterator[Page]:
    page = browser.new_page()
    page.set_default_timeout(WAIT_MS)
    page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
    page.on("pageerror", lambda error: console.append(f"pageerror: {error}"))
    page.goto(server.url)
    expect(page.locator("#index-facts")).to_contain_text("15 (6 text")
    try:
        yield page
    finally:
        page.close()


def search_text(tab: Page, text: str) -> None:
    tab.fill("#query", text)
    tab.press("#query", "Enter")
    expect(tab.locator("#status")).to_contain_text(f"for \u201c{text}\u201d in")


def card_ids(tab: Page) -> list[str]:
    ids: list[str] = tab.eval_on_selector_all(".card", "cards => cards.map(c => c.dataset.id)")
    return ids


def drop_file(tab: Page, data: bytes, name: str, mime: str, target: str = "#drop-zone") -> None:
    """Drop a file on ``target`` as a person would: a drop event carrying a DataTransfer."""
    transfer = tab.evaluate_handle(
        """([encoded, name, mime]) => {
            const bytes = Uint8Array.from(atob(encoded), (c) => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], name, { type: mime }));
            return transfer;
        }""",
        [base64.b64encode(data).decode(), name, mime],
    )
    tab.dispatch_event(target, "drop", {"dataTransfer": transfer})


def thumbnails(tab: Page) -> list[dict[str, Any]]:
    """Each result picture once it has loaded: its URL and its decoded size."""
    found: list[dict[str, Any]] = tab.evaluate(
        """async () => {
            const images = [...document.querySelectorAll('.card img.thumb')];
            await Promise.all(images.map((img) => img.decode().catch(() => null)));
            return images.map((img) => ({
                src: img.getAttribute('src'), width: img.naturalWidth, height: img.naturalHeight,
                complete: img.complete,
            }));
        }"""
    )
    return found


def test_a_typed_query_shows_results_with_thumbnails(tab: Page) -> None:
    search_text(tab, "a red circle")
    cards = tab.locator(".card")
    expect(cards).to_have_count(12)
    pictures = thumbnails(tab)
    assert len(pictures) == tab.locator(".card.kind-image").count() > 0
    for picture in pictures:
        assert picture["complete"] and picture["src"].startswith("/media/")
        assert "/thumb" in picture["src"]
        # the thumbnail's size, not the 800 x 600 original's
        assert (picture["width"], picture["height"]) == (320, 240)
    expect(tab.locator(".card.kind-text .text").first).not_to_be_empty()
    expect(tab.locator("#usage-facts")).to_contain_text("requests1")


def test_a_dropped_picture_finds_its_twin_first(tab: Page, collection: Collection) -> None:
    drop_file(tab, collection.twin_query.read_bytes(), collection.twin_query.name, "image/jpeg")
    expect(tab.locator("#status")).to_contain_text("for the image red-circle-again.jpg in")
    first = tab.locator(".card").first
    twin = collection.folder / "media" / "photos" / "red-circle.png"
    expect(first).to_have_attribute("data-id", str(twin))
    expect(first.locator(".name")).to_have_text("red-circle.png")
    expect(tab.locator("#status img.query-image")).to_be_visible()


def test_a_picture_chosen_with_the_file_picker_finds_itself(
    tab: Page, collection: Collection
) -> None:
    chosen = collection.photos[2]
    tab.set_input_files('input[type="file"]', chosen)  # the page's one file picker
    expect(tab.locator("#status")).to_contain_text(f"for the image {chosen.name} in")
    first = tab.locator(".card").first
    expect(first).to_have_attribute("data-id", str(chosen))
    expect(first.locator(".score")).to_have_text("1.0000")


def test_a_video_result_plays_from_its_start_time(tab: Page) -> None:
    tab.uncheck('#filters input[value="text"]')
    tab.uncheck('#filters input[value="image"]')
    responses: list[tuple[str, int]] = []
    tab.on("response", lambda response: responses.append((response.url, response.status)))
    search_text(tab, "a white square moving across a green scene")
    clips = tab.locator(".card.kind-video video.clip")
    expect(clips).to_have_count(3)
    starts = [float(s) for s in clips.evaluate_all("vs => vs.map(v => v.dataset.start)")]
    assert sorted(starts) == [0, 4, 8]
    later = clips.nth(starts.index(max(starts)))
    played = later.evaluate(
        """async (video) => {
            await video.play();
            const until = Date.now() + 10000;
            while (video.currentTime <= Number(video.dataset.start) && Date.now() < until) {
                await new Promise((done) => setTimeout(done, 50));
            }
            return { time: video.currentTime, start: Number(video.dataset.start),
                     end: Number(video.dataset.end), error: video.error && video.error.code };
        }"""
    )
    assert played["error"] is None
    assert played["start"] == 8 and played["end"] == 12
    assert played["start"] <= played["time"] < played["end"]
    assert any("/media/" in url and status == 206 for url, status in responses)


def test_kind_filters_narrow_the_results(tab: Page) -> None:
    search_text(tab, "a red circle")
    expect(tab.locator(".card.kind-text")).not_to_have_count(0)
    tab.uncheck('#filters input[value="text"]')
    tab.uncheck('#filters input[value="video"]')
    expect(tab.locator(".card")).to_have_count(6)
    kinds = tab.eval_on_selector_all(".card", "cards => cards.map(c => c.dataset.kind)")
    assert kinds == ["image"] * 6
    tab.fill("#k", "2")
    tab.dispatch_event("#k", "change")
    expect(tab.locator(".card")).to_have_count(2)


def test_a_bad_upload_shows_a_clear_message(tab: Page, emulator: RunningEmulator) -> None:
    before = emulator.stats()
    tab.set_input_files(
        "#file-input",
        files=FilePayload(name="broken.png", mimeType="image/png", buffer=b"not a picture at all"),
    )
    error = tab.locator("#error")
    expect(error).to_be_visible()
    expect(error).to_contain_text("Could not search with the image broken.png")
    expect(error).to_contain_text("is not an image in a format")
    expect(error).to_contain_text("JPEG, PNG or BMP")
    expect(tab.locator(".card")).to_have_count(0)
    # dropped beside the zone: the page searches with it too, and says what is wrong
    drop_file(tab, b"\x89PNG\r\n\x1a\n" + b"\0" * 64, "cut.png", "image/png", target="#results")
    expect(error).to_contain_text("cut.png")
    assert emulator.stats()["requests"] == before["requests"]


def test_more_like_this_searches_by_the_stored_vector_for_free(
    tab: Page, emulator: RunningEmulator
) -> None:
    search_text(tab, "a circle, and more like it")  # a query of its own: not served from memory
    picture = tab.locator(".card.kind-image").first
    chosen = picture.get_attribute("data-id")
    name = picture.locator(".name").inner_text()
    before = emulator.stats()
    picture.locator("button.like").click()
    expect(tab.locator("#status")).to_contain_text(f"for items like {name} in")
    expect(tab.locator("#status")).to_contain_text("nothing sent")
    assert chosen not in card_ids(tab) and len(card_ids(tab)) == 12
    assert emulator.stats()["requests"] == before["requests"]
    expect(tab.locator("#usage-facts")).to_contain_text("queries2 (1 free)")


def test_a_chosen_video_finds_its_clips(tab: Page, collection: Collection) -> None:
    tab.set_input_files("#file-input", collection.video)
    expect(tab.locator("#status")).to_contain_text("for the video colours.mp4 in")
    kinds = tab.eval_on_selector_all(".card", "cards => cards.map(c => c.dataset.kind)")
    assert kinds[0] == "video"


def test_the_summary_and_the_cost_of_the_queries(tab: Page) -> None:
    facts = tab.locator("#index-facts")
    expect(facts).to_contain_text("tongyi-embedding-vision-flash")
    expect(facts).to_contain_text("dimension768")
    expect(facts).to_contain_text("dialectopenai")
    expect(facts).to_contain_text("size on disk")
    expect(tab.locator("#usage-facts")).to_contain_text("queries0")
    drop_file(tab, jpeg_bytes(_gradient()), "gradient.jpg", "image/jpeg")
    expect(tab.locator("#usage-facts")).to_contain_text("requests1")
    cost = tab.locator("#usage-facts dd").nth(3).inner_text()
    assert cost.startswith("$0.") and cost != "$0"
    expect(tab.locator("#billing-note")).to_contain_text("estimated")


def test_nothing_was_loaded_from_outside_and_nothing_failed(
    requested: list[str], console: list[str], server: RunningPage
) -> None:
    assert requested, "the tests above made the browser load the page"
    outside = [u for u in requested if not u.startswith((server.url, "blob:", "data:"))]
    assert outside == []
    problems = [
        line
        for line in console
        if "Content Security Policy" in line or line.startswith("pageerror")
    ]
    assert problems == []


def _gradient() -> Any:
    from PIL import Image as PILImage

    picture = PILImage.new("RGB", (300, 200))
    picture.putdata([(x % 256, y % 256, 128) for y in range(200) for x in range(300)])
    return picture
