"""The page's ASGI application in memory (starlette's TestClient, no socket): its routes,
errors as JSON, the guard on hosts and origins, files by item only, and uploads' limits.

The same runs over a real ``tongyi-vision ui`` process in integration_tests/test_ui_http.py.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image as PILImage
from starlette.testclient import TestClient

from tests._core_fakes import KEY
from tests.test_ui_search import FLASH, Service, axis
from tongyi_vision import Client
from tongyi_vision.index import IndexInfo, IndexTable, Row
from tongyi_vision.samples import generate_sample_video
from tongyi_vision.ui import RecentQueries, create_app, item_token


def jpeg(size: tuple[int, int], colour: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    PILImage.new("RGB", size, colour).save(buffer, format="JPEG")
    return buffer.getvalue()


@pytest.fixture
def media(tmp_path: Path) -> dict[str, Path]:
    folder = tmp_path / "media"
    folder.mkdir()
    photo = folder / "photo.jpg"
    photo.write_bytes(jpeg((1000, 750), (200, 40, 40)))
    video = folder / "talk.mp4"
    generate_sample_video(
        video, seconds=8, colours=((200, 40, 40), (40, 40, 200)), segment_seconds=4, fps=4
    )
    secret = tmp_path / "secret.txt"
    secret.write_text("outside the index")
    return {"photo": photo, "video": video, "secret": secret}


def row(path: Path, kind: str, vector: list[float], **extra: object) -> Row:
    item = Row(
        id=str(path),
        source=str(path),
        kind=kind,
        sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
        content=path.as_uri(),
        vector=vector,
        metadata={"file_name": path.name},
    )
    for name, value in extra.items():
        setattr(item, name, value)
    return item


@pytest.fixture
def table(tmp_path: Path, media: dict[str, Path]) -> IndexTable:
    made = IndexTable.create(tmp_path / "index", IndexInfo(FLASH, 768, "openai"))
    video = media["video"]
    made.add(
        [
            row(media["photo"], "image", axis(5)),
            Row(
                id="/notes/a.txt",
                source="/notes/a.txt",
                kind="text",
                sha256="a" * 64,
                content="a note",
                vector=axis(1),
            ),
            row(
                video,
                "video",
                axis(8),
                id=f"{video}#t=4,8",
                content=f"{video.as_uri()}#t=4,8",
                start_seconds=4.0,
                end_seconds=8.0,
            ),
        ]
    )
    return made


@pytest.fixture
def service() -> Service:
    return Service()


@pytest.fixture
def page(tmp_path: Path, table: IndexTable, service: Service) -> Iterator[TestClient]:
    http = httpx.Client(transport=httpx.MockTransport(service))
    with Client(KEY, model=FLASH, http_client=http, cache=RecentQueries()) as client:
        app = create_app(
            table,
            client,
            thumbnails=tmp_path / "thumbs",
            emulated=True,
            service="the test service",
            default_k=5,
            max_image_upload=200_000,
            max_video_upload=300_000,
        )
        with TestClient(app, base_url="http://127.0.0.1:8765") as test:
            yield test


def test_the_page_and_its_files_load_from_this_server_only(page: TestClient) -> None:
    html = page.get("/")
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
    policy = html.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script-src 'self'" in policy
    assert "http" not in policy  # no other origin
    assert "/static/app.js" in html.text and "/static/style.css" in html.text
    for name, kind in (("app.js", "text/javascript"), ("style.css", "text/css")):
        response = page.get(f"/static/{name}")
        assert response.status_code == 200 and response.headers["content-type"].startswith(kind)
        assert "https://" not in response.text and "http://" not in response.text
    assert page.get("/static/index.html").status_code == 404
    assert page.get("/static/../_app.py").status_code == 404
    assert page.get("/healthz").text == "ok"


def test_the_summary_says_what_the_index_holds(page: TestClient) -> None:
    summary = page.get("/api/summary").json()
    assert summary["index"]["counts"] == {"text": 1, "image": 1, "video": 1}
    assert summary["service"]["emulated"] is True
    assert summary["default_k"] == 5


def test_a_text_search_answers_results_usage_and_timing(page: TestClient, service: Service) -> None:
    answer = page.post("/api/search", json={"text": "axis 5", "kinds": ["image"]}).json()
    [photo] = answer["results"]
    assert photo["kind"] == "image" and photo["score"] == pytest.approx(1.0)
    assert answer["usage"]["requests"] == 1 and answer["usage"]["total_tokens"] == 7
    assert set(answer["timing_ms"]) == {"embed", "search", "total"}
    assert service.parts == [{"text": "axis 5"}]


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b"not json", 400, "not JSON"),
        (b"[1, 2]", 400, "send a JSON object"),
        (b'{"text": ""}', 400, "type something"),
        (b'{"text": "x", "k": 0}', 400, "k must be"),
        (b'{"text": "x", "kinds": ["audio"]}', 400, "unknown kind"),
        (b'{"like": "/not/here.png"}', 400, "is not an item of this index"),
        (b'{"text": "' + b"x" * 70_000 + b'"}', 413, "up to"),
    ],
)
def test_bad_queries_are_answered_with_a_json_error(
    page: TestClient, service: Service, body: bytes, status: int, message: str
) -> None:
    response = page.post("/api/search", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == status
    assert message in response.json()["error"]
    assert service.parts == []


def test_an_image_upload_finds_its_twin(page: TestClient, media: dict[str, Path]) -> None:
    response = page.post(
        "/api/search/image?name=photo.jpg&k=2",
        content=media["photo"].read_bytes()[:150_000],
        headers={"Content-Type": "image/jpeg"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["results"][0]["id"] == str(media["photo"])


def test_uploads_over_the_limit_are_refused_before_they_are_read(page: TestClient) -> None:
    response = page.post(
        "/api/search/image?name=huge.jpg",
        content=b"\xff\xd8\xff" + b"\0" * 250_000,
        headers={"Content-Type": "image/jpeg"},
    )
    assert response.status_code == 413 and "up to" in response.json()["error"]


def test_a_bad_image_upload_says_what_is_wrong_with_it(page: TestClient) -> None:
    response = page.post(
        "/api/search/image?name=../../broken.png",
        content=b"this is no picture",
        headers={"Content-Type": "image/png"},
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error.startswith("'broken.png': ") and "JPEG, PNG or BMP" in error


def test_a_video_upload_is_sampled_and_searched(
    page: TestClient, media: dict[str, Path], service: Service, tmp_path: Path
) -> None:
    response = page.post(
        "/api/search/video?name=talk.mp4&kinds=video",
        content=media["video"].read_bytes(),
        headers={"Content-Type": "video/mp4"},
    )
    assert response.status_code == 200, response.text
    assert [r["kind"] for r in response.json()["results"]] == ["video"]
    [sent] = service.parts
    assert len(sent["multi_images"]) == 8  # frames sampled here, as for every local video


def test_files_are_served_by_item_only(page: TestClient, media: dict[str, Path]) -> None:
    photo = page.get(f"/media/{item_token(str(media['photo']))}")
    assert photo.status_code == 200 and photo.content == media["photo"].read_bytes()
    for path in (
        "/media/" + item_token(str(media["secret"])),  # a file that is no item
        "/media/" + item_token("/notes/a.txt"),  # a text item has no file to serve
        "/media/" + item_token(str(media["video"])),  # the video is served by clip only
        "/media/..%2F..%2Fsecret.txt",
        "/media/%2e%2e",
        "/media/" + str(media["secret"]),
    ):
        response = page.get(path)
        assert response.status_code == 404, path
        assert response.json() == {"error": "not found"}


def test_a_clip_is_served_in_ranges(page: TestClient, media: dict[str, Path]) -> None:
    token = item_token(f"{media['video']}#t=4,8")
    size = media["video"].stat().st_size
    response = page.get(f"/media/{token}", headers={"Range": "bytes=100-199"})
    assert response.status_code == 206
    assert response.headers["content-range"] == f"bytes 100-199/{size}"
    assert response.content == media["video"].read_bytes()[100:200]


def test_thumbnails_are_small(page: TestClient, media: dict[str, Path]) -> None:
    for item in (str(media["photo"]), f"{media['video']}#t=4,8"):
        response = page.get(f"/media/{item_token(item)}/thumb")
        assert response.status_code == 200 and response.headers["content-type"] == "image/jpeg"
        with PILImage.open(io.BytesIO(response.content)) as thumb:
            assert max(thumb.size) <= 320
    assert page.get("/media/" + item_token("/notes/a.txt") + "/thumb").status_code == 404


def test_requests_for_another_host_are_refused(page: TestClient) -> None:
    response = page.get("/api/summary", headers={"Host": "attacker.example:8765"})
    assert response.status_code == 421
    assert page.get("/", headers={"Host": "localhost:8765"}).status_code == 200


def test_posts_from_another_sites_page_are_refused(page: TestClient, service: Service) -> None:
    response = page.post(
        "/api/search", json={"text": "axis 1"}, headers={"Origin": "http://attacker.example"}
    )
    assert response.status_code == 403 and service.parts == []
    same = page.post(
        "/api/search", json={"text": "axis 1"}, headers={"Origin": "http://127.0.0.1:8765"}
    )
    assert same.status_code == 200


def test_the_key_is_in_no_response(page: TestClient, media: dict[str, Path]) -> None:
    bodies = [
        page.get("/").text,
        page.get("/static/app.js").text,
        page.get("/api/summary").text,
        page.post("/api/search", json={"text": "axis 1"}).text,
        page.post("/api/search/image", content=b"junk").text,
    ]
    assert all(KEY not in body for body in bodies)
    assert json.loads(bodies[2])["service"]["description"] == "the test service"
