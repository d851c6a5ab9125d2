"""Pictures of the search page for the docs: ``python3 tasks.py screenshots``.

Builds a sample index with the CLI (``tongyi-vision embed``) against the emulator
(``tongyi-vision serve``), serves it with ``tongyi-vision ui``, drives headless
Chromium (Debian's ``chromium``, through Playwright) through the page's main
states and writes them to ``docs/images/ui-*.png``. Everything runs on
127.0.0.1; the sample files live in a temporary folder removed at the end.
"""

from __future__ import annotations

import io
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.sync_api import Page

ROOT = Path(__file__).resolve().parent.parent
IMAGES = ROOT / "docs" / "images"
KEY = "screenshots-key"
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


def _first_line(process: subprocess.Popen[str], timeout: float = 90) -> str:
    lines: queue.Queue[str] = queue.Queue()
    stream: IO[str] | None = process.stdout
    if stream is not None:
        threading.Thread(target=lambda: lines.put(stream.readline()), daemon=True).start()
    try:
        line = lines.get(timeout=timeout).strip()
    except queue.Empty:
        line = ""
    if not line.startswith("http://"):
        process.kill()
        process.wait()
        raise RuntimeError(f"{process.args!r} printed no URL (exit {process.returncode})")
    return line


@contextmanager
def _serving(command: Sequence[str], env: dict[str, str]) -> Iterator[str]:
    """Run a ``tongyi-vision`` server command (its messages on stderr); yield the URL it
    prints first; stop it."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tongyi_vision", *command, "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        yield _first_line(process)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _samples(folder: Path) -> tuple[Path, Path]:
    """The sample pictures, texts and video; returns (the media folder, a query picture)."""
    from PIL import Image as PILImage

    from tongyi_vision.samples import (
        generate_sample_video,
        write_sample_images,
        write_sample_texts,
    )

    media = folder / "photos"
    write_sample_images(media / "pictures", size=480)
    write_sample_texts(media / "notes")
    generate_sample_video(
        media / "video" / "colours.mp4",
        seconds=12,
        colours=((200, 40, 40), (40, 60, 200), (40, 170, 70)),
        segment_seconds=4,
        size=(320, 240),
        fps=4,
    )
    query = folder / "red-circle-again.jpg"
    with PILImage.open(media / "pictures" / "red-circle.png") as original:
        buffer = io.BytesIO()
        original.convert("RGB").resize((240, 240)).save(buffer, format="JPEG", quality=80)
    query.write_bytes(buffer.getvalue())
    return media, query


def _drop(tab: Page, path: Path, mime: str) -> None:
    """Drop a file on the page's drop zone (a drop event carrying a DataTransfer)."""
    import base64

    transfer = tab.evaluate_handle(
        """([encoded, name, mime]) => {
            const bytes = Uint8Array.from(atob(encoded), (c) => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], name, { type: mime }));
            return transfer;
        }""",
        [base64.b64encode(path.read_bytes()).decode(), path.name, mime],
    )
    tab.dispatch_event("#drop-zone", "drop", {"dataTransfer": transfer})


def _settle(tab: Page) -> None:
    """Wait until every thumbnail and video poster of the grid is decoded."""
    tab.evaluate(
        """async () => {
            const images = [...document.querySelectorAll('.card img.thumb')];
            await Promise.all(images.map((img) => img.decode().catch(() => null)));
            // A clip that was played shows its frame (not a spinner) once it has the data of
            // its time; the others show their poster and load nothing.
            const ready = (video) => new Promise((done) => {
                if (video.played.length === 0 && video.readyState === 0) return done();
                const check = () => (video.readyState >= 2 && !video.seeking ? done() : null);
                video.addEventListener('loadeddata', check);
                video.addEventListener('seeked', check);
                check();
                setTimeout(done, 5000);
            });
            await Promise.all([...document.querySelectorAll('.card video')].map(ready));
        }"""
    )
    tab.wait_for_timeout(800)  # a player's spinner, gone


def _shoot(url: str, query: Path, chromium: str) -> list[Path]:
    from playwright.sync_api import FilePayload, expect, sync_playwright

    IMAGES.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    with (
        tempfile.TemporaryDirectory(prefix="tongyi-vision-chromium-") as profile,
        sync_playwright() as playwright,
    ):
        context = playwright.chromium.launch_persistent_context(
            profile,
            executable_path=chromium,
            args=CHROMIUM_ARGS,
            headless=True,
            viewport={"width": 1280, "height": 860},
        )
        tab = context.new_page()
        tab.set_default_timeout(30_000)
        status = tab.locator("#status")

        def save(name: str) -> None:
            _settle(tab)
            path = IMAGES / f"ui-{name}.png"
            tab.screenshot(path=str(path))
            written.append(path)

        tab.goto(url)
        expect(tab.locator("#index-facts")).to_contain_text("items")
        tab.fill("#query", "a red bicycle by a brick wall")
        tab.press("#query", "Enter")
        expect(status).to_contain_text("results for")
        save("text-search")

        _drop(tab, query, "image/jpeg")
        expect(status).to_contain_text(f"for the image {query.name} in")
        save("image-search")

        tab.locator(".card.kind-image").nth(1).locator("button.like").click()
        expect(status).to_contain_text("items like")
        save("more-like-this")

        tab.uncheck('#filters input[value="text"]')
        tab.uncheck('#filters input[value="image"]')
        tab.fill("#query", "a white square crossing a green scene")
        tab.press("#query", "Enter")
        expect(status).to_contain_text("results for \u201ca white square")
        expect(tab.locator(".card.kind-video")).to_have_count(3)
        clip = tab.locator(".card.kind-video video").nth(1)
        clip.evaluate(
            """async (video) => {
                await video.play();
                await new Promise((done) => setTimeout(done, 1200));
                video.pause();
            }"""
        )
        details = tab.locator(".card.kind-video .details").nth(1)
        details.evaluate("(element) => { element.open = true; }")
        save("video")

        tab.check('#filters input[value="text"]')
        tab.check('#filters input[value="image"]')
        tab.set_input_files(
            "#file-input",
            files=FilePayload(name="holiday.png", mimeType="image/png", buffer=b"no picture"),
        )
        expect(tab.locator("#error")).to_be_visible()
        save("bad-upload")
        context.close()
    return written


def main() -> int:
    chromium = shutil.which("chromium")
    if chromium is None:
        print("chromium is not installed: `python3 tasks.py system` installs it", file=sys.stderr)
        return 1
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("TONGYI_VISION_") and k not in ("EMPIRIOLABS_API_KEY",)
    }
    env["DASHSCOPE_API_KEY"] = ""
    folder = Path(tempfile.gettempdir()) / "tongyi-vision-screenshots"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    try:
        media, query = _samples(folder)
        with _serving(["serve", "--api-key", KEY], env) as emulator:
            service = {**env, "EMPIRIOLABS_API_KEY": KEY, "TONGYI_VISION_BASE_URL": emulator}
            index = folder / "photos.index"
            subprocess.run(
                [
                    *(sys.executable, "-m", "tongyi_vision", "embed", str(media)),
                    *("--out", str(index), "--clip-seconds", "4", "--no-progress"),
                ],
                env=service,
                check=True,
                stdout=subprocess.DEVNULL,
            )
            page = {**service, "XDG_CACHE_HOME": str(folder / "cache")}
            with _serving(["ui", str(index)], page) as url:
                written = _shoot(url, query, chromium)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    for path in written:
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
