"""``tongyi-vision ui`` as a user runs it: a real process on an index the real CLI built
against the emulator, driven over HTTP: its JSON endpoints, its errors, what it costs (the
emulator's ``/stats``), attempts to read files outside the index, how it stops, and
``tongyi-vision demo --ui``.

The helpers here (building the index, starting and stopping the page) serve the browser
tests of test_ui_browser.py too.
"""

from __future__ import annotations

import http.client
import io
import queue
import shutil
import signal
import subprocess
import sys
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from PIL import Image as PILImage

from integration_tests.test_cli import command_env
from tongyi_vision.samples import generate_sample_video, write_sample_images, write_sample_texts
from tongyi_vision.ui import item_token

if TYPE_CHECKING:
    from integration_tests.conftest import RunningEmulator

_START_TIMEOUT = 90.0
SECRET = "the contents of a file outside the index"
PHOTO_SIZE = (800, 600)


@dataclass
class RunningPage:
    """A ``tongyi-vision ui`` process: its URL, what it wrote, and how to stop it."""

    url: str
    process: subprocess.Popen[str] = field(repr=False)
    log_path: Path = field(repr=False)
    stdout_rest: list[str] = field(default_factory=list)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, how: signal.Signals = signal.SIGTERM) -> int:
        """Send ``how``, then SIGKILL after 20 s; returns the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(how)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        if self.process.stdout is not None:
            self.stdout_rest.append(self.process.stdout.read())
            self.process.stdout.close()
        return self.process.returncode


def _first_line(stream: Any, timeout: float) -> str:
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: lines.put(stream.readline()), daemon=True).start()
    try:
        return lines.get(timeout=timeout)
    except queue.Empty:
        return ""


def start_page(
    *args: str | Path,
    server: RunningEmulator | None,
    workdir: Path,
    command: str = "ui",
    **env: str,
) -> RunningPage:
    """Start ``tongyi-vision COMMAND ARGS --port 0`` and wait for the URL on its first line."""
    argv = [sys.executable, "-m", "tongyi_vision", command, *map(str, args), "--port", "0"]
    environment = command_env(server, XDG_CACHE_HOME=str(workdir / "cache"), **env)
    log_path = workdir / f"ui-{len(list(workdir.glob('ui-*.log')))}.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=log, text=True, env=environment, cwd=workdir
        )
    page = RunningPage("", process, log_path)
    first = _first_line(process.stdout, _START_TIMEOUT).strip()
    if not first.startswith("http://127.0.0.1:"):
        page.stop(signal.SIGKILL)
        raise RuntimeError(f"no URL first (exit {process.poll()}): {first!r}\n{page.log()}")
    page.url = first
    return page


def jpeg_bytes(picture: PILImage.Image, quality: int = 85) -> bytes:
    buffer = io.BytesIO()
    picture.convert("RGB").save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


@dataclass
class Collection:
    """The files a module's index was built from, and the index."""

    folder: Path
    index: Path
    photos: list[Path]
    video: Path
    secret: Path
    twin_query: Path
    """A smaller JPEG of photos/red-circle.png, not in the index: its twin comes first."""


def build_collection(folder: Path, server: RunningEmulator) -> Collection:
    """Sample pictures (800 x 600, larger than a thumbnail), texts and a 12-second video in
    clips of 4 s, indexed with ``tongyi-vision embed`` against the emulator."""
    media = folder / "media"
    photos = []
    for path in write_sample_images(media / "photos", size=600):
        with PILImage.open(path) as drawn:
            wide = PILImage.new("RGB", PHOTO_SIZE, (245, 245, 240))
            wide.paste(drawn.convert("RGB"), (100, 0))
            wide.save(path)
        photos.append(path)
    write_sample_texts(media / "texts")
    video = media / "video" / "colours.mp4"
    generate_sample_video(
        video,
        seconds=12,
        colours=((200, 40, 40), (40, 60, 200), (40, 170, 70)),
        segment_seconds=4,
        size=(320, 240),
        fps=4,
    )
    secret = folder / "secret.txt"
    secret.write_text(SECRET)
    twin = folder / "query" / "red-circle-again.jpg"
    twin.parent.mkdir()
    with PILImage.open(media / "photos" / "red-circle.png") as original:
        twin.write_bytes(jpeg_bytes(original.resize((400, 300)), quality=80))
    index = folder / "photos.index"
    done = subprocess.run(
        [
            *(sys.executable, "-m", "tongyi_vision", "embed", str(media), "--out", str(index)),
            *("--clip-seconds", "4", "--no-progress"),
        ],
        env=command_env(server),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "embedded 15 items (6 text, 6 image, 3 video)" in done.stdout
    return Collection(folder, index, photos, video, secret, twin)


@pytest.fixture(scope="module")
def collection(tmp_path_factory: pytest.TempPathFactory, emulator: RunningEmulator) -> Collection:
    return build_collection(tmp_path_factory.mktemp("ui-collection"), emulator)


@pytest.fixture(scope="module")
def page(
    collection: Collection, emulator: RunningEmulator, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningPage]:
    running = start_page(
        collection.index, server=emulator, workdir=tmp_path_factory.mktemp("ui-page")
    )
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def seen() -> list[httpx.Response]:
    """Every response the module's tests received, for the check that none holds the key."""
    return []


@pytest.fixture
def web(page: RunningPage, seen: list[httpx.Response]) -> Iterator[httpx.Client]:
    def keep(response: httpx.Response) -> None:
        response.read()
        seen.append(response)

    with httpx.Client(base_url=page.url, timeout=60, event_hooks={"response": [keep]}) as client:
        yield client


def raw_get(url: str, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """GET ``path`` exactly as written (no client tidies its ``..`` or its escapes)."""
    parsed = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parsed.hostname or "", parsed.port, timeout=30)
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def sent(server: RunningEmulator, since: dict[str, int]) -> tuple[int, int]:
    now = server.stats()
    return now["requests"] - since["requests"], now["billed_parts"] - since["billed_parts"]


def search(web: httpx.Client, **body: Any) -> dict[str, Any]:
    response = web.post("/api/search", json=body)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


# --- starting ---


def test_the_url_is_the_first_line_and_the_page_loads(page: RunningPage, web: httpx.Client) -> None:
    parsed = urllib.parse.urlsplit(page.url)
    assert parsed.hostname == "127.0.0.1" and parsed.port and parsed.path == "/"
    html = web.get("/")
    assert html.status_code == 200 and "<title>tongyi-vision" in html.text
    assert "default-src 'none'" in html.headers["content-security-policy"]
    assert "serving" in page.log() and "photos.index" in page.log()
    for name in ("app.js", "style.css"):
        assert web.get(f"/static/{name}").status_code == 200


def test_the_summary_describes_the_index_and_the_service(
    page: RunningPage, web: httpx.Client, collection: Collection, emulator: RunningEmulator
) -> None:
    summary = web.get("/api/summary").json()
    index = summary["index"]
    assert index["counts"] == {"text": 6, "image": 6, "video": 3} and index["items"] == 15
    assert index["model"] == "tongyi-embedding-vision-flash" and index["dimension"] == 768
    assert index["dialect"] == "openai" and index["clip_seconds"] == 4
    assert index["path"] == str(collection.index.resolve())
    assert (
        0
        < index["bytes_on_disk"]
        == sum(p.stat().st_size for p in collection.index.rglob("*") if p.is_file())
    )
    assert summary["service"]["emulated"] is False  # a key and a URL were set: that service
    assert emulator.base_url in summary["service"]["description"]


# --- searching ---


def test_a_text_query_costs_one_request_and_the_same_again_none(
    web: httpx.Client, emulator: RunningEmulator
) -> None:
    query = "Blue ocean waves roll onto a quiet sandy beach."
    before = emulator.stats()
    answer = search(web, text=query, k=5)
    assert sent(emulator, before) == (1, 1)
    results = answer["results"]
    assert len(results) == 5 and [r["rank"] for r in results] == [1, 2, 3, 4, 5]
    assert [r["score"] for r in results] == sorted((r["score"] for r in results), reverse=True)
    assert results[0]["kind"] == "text" and results[0]["text"] == query
    assert results[0]["score"] == pytest.approx(1.0)
    assert answer["usage"]["requests"] == 1 and answer["usage"]["total_tokens"] > 0
    assert answer["usage"]["cost_usd"] > 0  # what the real service would charge
    before = emulator.stats()
    again = search(web, text=query, k=3, kinds=["image", "video"])
    assert sent(emulator, before) == (0, 0)
    assert again["usage"]["cached"] == 1 and again["usage"]["requests"] == 0
    assert {r["kind"] for r in again["results"]} <= {"image", "video"}


def test_kinds_and_k_filter_the_results(web: httpx.Client) -> None:
    for kinds, k, expected in (
        (["image"], 10, 6),
        (["video"], 10, 3),
        (["text", "video"], 4, 4),
        (["image", "video"], 200, 9),
    ):
        answer = search(web, text="a red circle", kinds=kinds, k=k)
        assert len(answer["results"]) == expected
        assert {r["kind"] for r in answer["results"]} <= set(kinds)


def test_an_image_upload_finds_its_twin_first(
    web: httpx.Client, collection: Collection, emulator: RunningEmulator
) -> None:
    before = emulator.stats()
    response = web.post(
        "/api/search/image",
        params={"name": collection.twin_query.name, "k": "3", "kinds": "image"},
        content=collection.twin_query.read_bytes(),
        headers={"Content-Type": "image/jpeg"},
    )
    assert response.status_code == 200, response.text
    first = response.json()["results"][0]
    assert first["source"] == str(collection.folder / "media" / "photos" / "red-circle.png")
    assert sent(emulator, before) == (1, 1)


def test_a_video_upload_is_sampled_and_finds_its_clips(
    web: httpx.Client, collection: Collection
) -> None:
    response = web.post(
        "/api/search/video",
        params={"name": "colours.mp4", "kinds": "video", "k": "3"},
        content=collection.video.read_bytes(),
        headers={"Content-Type": "video/mp4"},
    )
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert len(results) == 3 and {r["source"] for r in results} == {str(collection.video)}
    assert {(r["start_seconds"], r["end_seconds"]) for r in results} == {(0, 4), (4, 8), (8, 12)}


def test_more_like_this_costs_nothing(
    web: httpx.Client, collection: Collection, emulator: RunningEmulator
) -> None:
    item = str(collection.photos[0])
    before = emulator.stats()
    answer = search(web, like=item, k=4, kinds=["image"])
    assert sent(emulator, before) == (0, 0)
    assert answer["usage"]["requests"] == 0 and answer["query"]["type"] == "like"
    ids = [r["id"] for r in answer["results"]]
    assert len(ids) == 4 and item not in ids


@pytest.mark.parametrize(
    ("path", "content", "status", "message"),
    [
        ("/api/search/image?name=broken.png", b"this is no picture", 400, "'broken.png': is not"),
        ("/api/search/image?name=empty.png", b"", 400, "empty"),
        ("/api/search/video?name=clip.mp4", b"not a video at all, just text", 400, "'clip.mp4'"),
        ("/api/search", b'{"text": "   "}', 400, "type something"),
        ("/api/search", b'{"like": "/no/such/item.png"}', 400, "not an item of this index"),
        ("/api/search", b'{"text": "x", "k": 1000}', 400, "k must be"),
        ("/api/search", b"{not json", 400, "not JSON"),
    ],
)
def test_bad_queries_are_clear_json_errors_and_cost_nothing(
    web: httpx.Client,
    emulator: RunningEmulator,
    path: str,
    content: bytes,
    status: int,
    message: str,
) -> None:
    before = emulator.stats()
    response = web.post(path, content=content, headers={"Content-Type": "image/png"})
    assert response.status_code == status
    assert message in response.json()["error"]
    assert sent(emulator, before) == (0, 0)


def test_an_upload_over_the_cap_is_refused(web: httpx.Client) -> None:
    response = web.post(
        "/api/search/image",
        content=b"\xff\xd8\xff" + b"\0" * (33 * 1024 * 1024),
        headers={"Content-Type": "image/jpeg"},
    )
    assert response.status_code == 413 and "32 MB" in response.json()["error"]


# --- files ---


def test_results_carry_their_files_thumbnails_and_clips(
    web: httpx.Client, collection: Collection
) -> None:
    answer = search(web, text="a red circle", kinds=["image", "video"], k=9)
    for result in answer["results"]:
        thumb = web.get(result["thumb_url"])
        assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
        with PILImage.open(io.BytesIO(thumb.content)) as picture:
            if result["kind"] == "image":
                assert picture.size == (320, 240)  # never the 800 x 600 original
            else:
                assert max(picture.size) <= 320
        assert len(thumb.content) < Path(result["source"]).stat().st_size or (
            result["kind"] == "video"
        )
    photo = next(r for r in answer["results"] if r["kind"] == "image")
    whole = web.get(photo["media_url"])
    assert whole.content == Path(photo["source"]).read_bytes()
    clip = next(r for r in answer["results"] if r["kind"] == "video")
    size = collection.video.stat().st_size
    part = web.get(clip["media_url"], headers={"Range": "bytes=0-1023"})
    assert part.status_code == 206 and part.headers["content-range"] == f"bytes 0-1023/{size}"
    assert part.content == collection.video.read_bytes()[:1024]
    assert part.headers["accept-ranges"] == "bytes"


def traversal_paths(collection: Collection) -> list[str]:
    secret = str(collection.secret)
    inside = next(p for p in collection.index.rglob("*") if p.is_file())
    return [
        "/media/../../../../../../etc/passwd",
        "/media/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/media/%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "/media/..%2f..%2f..%2f" + urllib.parse.quote(secret.lstrip("/"), safe=""),
        "/media/" + urllib.parse.quote(secret, safe=""),
        "/media/" + secret,
        "/media//etc/passwd",
        "/media/" + item_token(secret),
        "/media/" + item_token(secret) + "/thumb",
        "/media/" + item_token("../" * 8 + "etc/passwd"),
        "/media/" + item_token(str(inside)),  # a file of the index folder is no item
        "/media/" + item_token(str(collection.video)),  # the video is served by clip only
        "/media/" + item_token(str(collection.folder / "media" / "texts" / "text-1.txt")),
        "/static/../../../../../../etc/passwd",
        "/static/%2e%2e/%2e%2e/%2e%2e/pyproject.toml",
        "/static/..%2f_app.py",
        "/static/index.html",
        "/" + secret,
        "//etc/passwd",
        "/etc/passwd",
        "/media/" + item_token(str(collection.photos[0])) + "/../../secret.txt",
        "/media/" + item_token(str(collection.photos[0])) + "?path=" + secret,
    ]


def test_no_path_reads_a_file_outside_the_index(page: RunningPage, collection: Collection) -> None:
    passwd = Path("/etc/passwd").read_bytes()[:64] if Path("/etc/passwd").is_file() else b""
    for path in traversal_paths(collection):
        status, body = raw_get(page.url, path)
        assert SECRET.encode() not in body, path
        assert not passwd or passwd not in body, path
        if "?path=" in path:
            # the query string is ignored: the item's own file, nothing else
            assert status == 200 and body == collection.photos[0].read_bytes()
        else:
            assert status in (400, 404), (path, status)


def test_a_file_or_folder_swapped_for_a_link_after_indexing_is_not_served(
    web: httpx.Client, collection: Collection
) -> None:
    photo = collection.folder / "media" / "photos" / "blue-square.png"
    token = item_token(str(photo))
    assert web.get(f"/media/{token}").status_code == 200
    assert web.get(f"/media/{token}/thumb").status_code == 200  # made and kept
    kept = photo.with_name("blue-square.kept")
    photo.rename(kept)
    photo.symlink_to(collection.secret)
    try:
        assert web.get(f"/media/{token}").status_code == 404
        assert web.get(f"/media/{token}/thumb").status_code == 404
    finally:
        photo.unlink()
        kept.rename(photo)
    assert web.get(f"/media/{token}").status_code == 200

    folder = collection.folder / "media" / "video"
    elsewhere = collection.folder / "elsewhere"
    elsewhere.mkdir()
    shutil.copy(collection.secret, elsewhere / "colours.mp4")
    clip = item_token(f"{collection.video}#t=0,4")
    folder.rename(collection.folder / "media" / "video.kept")
    folder.symlink_to(elsewhere)
    try:
        assert web.get(f"/media/{clip}").status_code == 404
        assert web.get(f"/media/{clip}/thumb").status_code == 404
    finally:
        folder.unlink()
        (collection.folder / "media" / "video.kept").rename(folder)
    assert web.get(f"/media/{clip}", headers={"Range": "bytes=0-9"}).status_code == 206


def test_requests_to_other_names_or_from_other_sites_are_refused(
    web: httpx.Client, emulator: RunningEmulator
) -> None:
    assert web.get("/api/summary", headers={"Host": "rebound.example"}).status_code == 421
    before = emulator.stats()
    refused = web.post(
        "/api/search", json={"text": "spend"}, headers={"Origin": "http://evil.example"}
    )
    assert refused.status_code == 403 and sent(emulator, before) == (0, 0)
    port = urllib.parse.urlsplit(str(web.base_url)).port
    same = web.post(
        "/api/search", json={"text": "a red circle"}, headers={"Origin": f"http://127.0.0.1:{port}"}
    )
    assert same.status_code == 200


def test_the_key_is_in_no_response_and_no_log_line(
    web: httpx.Client, page: RunningPage, seen: list[httpx.Response], emulator: RunningEmulator
) -> None:
    web.get("/")
    web.get("/static/app.js")
    web.get("/api/summary")
    assert len(seen) > 20  # the other tests' responses are here too
    for response in seen:
        assert emulator.api_key not in response.text
        assert all(emulator.api_key not in value for value in response.headers.values())
    assert emulator.api_key not in page.log()


# --- stopping, the bundled emulator, demo --ui ---


def test_sigterm_exits_0_and_ctrl_c_130(collection: Collection, tmp_path: Path) -> None:
    for how, code in ((signal.SIGTERM, 0), (signal.SIGINT, 130)):
        running = start_page(collection.index, server=None, workdir=tmp_path)
        assert httpx.get(running.url + "healthz", timeout=30).text == "ok"
        assert running.stop(how) == code, running.log()
        assert "stopped" in running.log() and "Traceback" not in running.log()


def test_without_a_key_it_searches_with_the_bundled_emulator(
    collection: Collection, tmp_path: Path
) -> None:
    running = start_page(collection.index, server=None, workdir=tmp_path)
    try:
        log = running.log()
        assert "no API key set: queries go to the bundled emulator" in log
        assert "NOT semantic" in log
        summary = httpx.get(running.url + "api/summary", timeout=30).json()
        assert summary["service"]["emulated"] is True
        answer = httpx.post(
            running.url + "api/search", json={"text": "a quiet sandy beach"}, timeout=30
        ).json()
        assert answer["results"][0]["text"].startswith("Blue ocean waves")
    finally:
        assert running.stop() == 0


def test_a_port_in_use_is_a_clear_error(
    page: RunningPage, collection: Collection, emulator: RunningEmulator
) -> None:
    port = str(urllib.parse.urlsplit(page.url).port)
    done = subprocess.run(
        [sys.executable, "-m", "tongyi_vision", "ui", str(collection.index), "--port", port],
        env=command_env(emulator),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 5 and done.stdout == ""
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr and "--port" in done.stderr


def test_no_index_is_an_input_error(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tongyi_vision", "ui", str(tmp_path / "nothing"), "--port", "0"],
        env=command_env(None),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 3 and "no such index" in done.stderr


def test_demo_ui_indexes_the_samples_and_serves_them(tmp_path: Path) -> None:
    running = start_page("--ui", server=None, workdir=tmp_path, command="demo")
    try:
        summary = httpx.get(running.url + "api/summary", timeout=30).json()
        index = Path(summary["index"]["path"])
        assert summary["index"]["counts"] == {"text": 6, "image": 6, "video": 3}
        assert summary["service"]["emulated"] is True
        assert index.is_dir() and index.name == "demo.index"
        answer = httpx.post(
            running.url + "api/search", json={"text": "a yellow taxi at night", "k": 1}, timeout=30
        ).json()
        assert answer["results"][0]["text"].startswith("A yellow taxi")
        query = next(line for line in running.log().splitlines() if "try: drop" in line)
        twin = Path(query.split("drop ", 1)[1].split(" on the page")[0])
        response = httpx.post(
            running.url + "api/search/image",
            params={"name": twin.name, "k": "1", "kinds": "image"},
            content=twin.read_bytes(),
            headers={"Content-Type": "image/jpeg"},
            timeout=30,
        )
        assert response.json()["results"][0]["name"] == "red-circle.png"
    finally:
        assert running.stop() == 0, running.log()
    assert not index.exists()  # the samples and their index are removed at the end
    assert running.stdout_rest == [""]  # stdout held the URL alone


def test_the_server_writes_no_access_log(page: RunningPage) -> None:
    assert "GET /api/summary" not in page.log() and "POST /api" not in page.log()
