"""The page's files: item tokens, which files may be served (no path from a URL, no link
swapped in after indexing), and thumbnails made once and kept by content."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import pytest
from PIL import Image as PILImage

from tongyi_vision.index import Row
from tongyi_vision.samples import generate_sample_video
from tongyi_vision.ui import ThumbnailCache, default_thumbnail_folder, item_id_of, item_token
from tongyi_vision.ui import media_path as served_path
from tongyi_vision.wire.errors import InputError


def image_row(path: Path, kind: str = "image", **changes: object) -> Row:
    data = path.read_bytes()
    row = Row(
        id=str(path),
        source=str(path),
        kind=kind,
        sha256=hashlib.sha256(data).hexdigest(),
        content=path.as_uri(),
    )
    for name, value in changes.items():
        setattr(row, name, value)
    return row


def picture(path: Path, size: tuple[int, int] = (800, 600), mode: str = "RGB") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    colour: tuple[int, ...] = (200, 30, 40, 128) if mode == "RGBA" else (200, 30, 40)
    PILImage.new(mode, size, colour).save(path)
    return path


@pytest.mark.parametrize(
    "item_id",
    ["/photos/a.jpg", "/talks/keynote.mp4#t=10,20", "/notes/é ü 中文.txt#chunk=3", "/x/\udcff.png"],
)
def test_a_token_names_its_item_and_nothing_else(item_id: str) -> None:
    token = item_token(item_id)
    assert token.isascii() and "/" not in token and "=" not in token and "." not in token
    assert item_id_of(token) == item_id


@pytest.mark.parametrize(
    "token",
    ["", "..", "../etc/passwd", "%2e%2e", "/etc/passwd", "a/b", "abc=", "a b", "é", "x" * 20_000],
)
def test_strings_that_are_no_token_name_nothing(token: str) -> None:
    assert item_id_of(token) is None


def test_a_media_row_is_served_from_its_real_path(tmp_path: Path) -> None:
    path = picture(tmp_path / "photos" / "a.png")
    assert served_path(image_row(path)) == path


def test_rows_that_are_not_local_media_files_are_not_served(tmp_path: Path) -> None:
    path = picture(tmp_path / "a.png")
    row = image_row(path)
    assert served_path(image_row(path, kind="text")) is None
    assert served_path(image_row(path, content="https://example.com/a.png")) is None
    assert served_path(image_row(path, content="data:image/png;base64,AAAA")) is None
    # The reference and the source must agree: a row cannot point at another file.
    assert served_path(image_row(path, source=str(tmp_path / "b.png"))) is None
    other = tmp_path / "other.png"
    assert served_path(image_row(path, content=other.as_uri())) is None
    path.unlink()
    assert served_path(row) is None  # gone since it was indexed


def test_relative_and_unnormalised_paths_are_not_served(tmp_path: Path) -> None:
    path = picture(tmp_path / "a.png")
    dotted = f"{tmp_path}/sub/../a.png"
    (tmp_path / "sub").mkdir()
    assert served_path(image_row(path, source=dotted, content="file://" + dotted)) is None
    assert served_path(image_row(path, source="a.png", content="file:a.png")) is None


def test_a_file_swapped_for_a_link_after_indexing_is_not_served(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("not in the index")
    path = picture(tmp_path / "photos" / "a.png")
    row = image_row(path)
    path.unlink()
    path.symlink_to(secret)
    assert served_path(row) is None


def test_a_folder_swapped_for_a_link_after_indexing_is_not_served(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    picture(outside / "a.png")  # a file of the same name, elsewhere
    path = picture(tmp_path / "photos" / "a.png")
    row = image_row(path)
    os.rename(tmp_path / "photos", tmp_path / "photos.old")
    (tmp_path / "photos").symlink_to(outside)
    assert served_path(row) is None


def test_a_folder_where_a_file_was_is_not_served(tmp_path: Path) -> None:
    path = picture(tmp_path / "a.png")
    row = image_row(path)
    path.unlink()
    path.mkdir()
    assert served_path(row) is None


def test_thumbnails_are_small_jpegs_made_once_and_named_by_content(tmp_path: Path) -> None:
    cache = ThumbnailCache(tmp_path / "thumbs")
    first = picture(tmp_path / "a.png", (1200, 800), mode="RGBA")
    made = cache.get(image_row(first), first)
    assert (made.width, made.height) == (320, 213)
    with PILImage.open(made.path) as thumb:
        assert thumb.format == "JPEG" and thumb.size == (320, 213)
        assert thumb.getpixel((10, 10)) != (0, 0, 0)  # transparent parts on white, not black
    stamp = made.path.stat().st_mtime_ns
    # The same content at another path (a copy, another index) is the same thumbnail.
    copy = tmp_path / "copy.png"
    copy.write_bytes(first.read_bytes())
    again = cache.get(image_row(copy), copy)
    assert again.path == made.path and again.path.stat().st_mtime_ns == stamp
    assert len(list((tmp_path / "thumbs").rglob("*.jpg"))) == 1
    assert not list((tmp_path / "thumbs").rglob("*.part"))


def test_a_small_picture_is_not_enlarged(tmp_path: Path) -> None:
    path = picture(tmp_path / "small.bmp", (64, 48))
    made = ThumbnailCache(tmp_path / "thumbs").get(image_row(path), path)
    assert (made.width, made.height) == (64, 48)


def test_a_clip_thumbnail_is_a_frame_of_its_range(tmp_path: Path) -> None:
    video = tmp_path / "colours.mp4"
    generate_sample_video(
        video,
        seconds=8,
        colours=((220, 30, 30), (30, 30, 220)),
        segment_seconds=4,
        size=(640, 360),
        fps=4,
    )
    cache = ThumbnailCache(tmp_path / "thumbs")
    rows = [
        image_row(video, kind="video", start_seconds=start, end_seconds=start + 4)
        for start in (0.0, 4.0)
    ]
    red, blue = (cache.get(row, video) for row in rows)
    assert red.path != blue.path and (red.width, red.height) == (320, 180)
    with PILImage.open(red.path) as first, PILImage.open(blue.path) as second:
        r, _, b = first.convert("RGB").getpixel((5, 5))
        assert r > b
        r, _, b = second.convert("RGB").getpixel((5, 5))
        assert b > r


def test_a_file_that_is_no_picture_has_no_thumbnail(tmp_path: Path) -> None:
    path = tmp_path / "broken.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    with pytest.raises(InputError):
        ThumbnailCache(tmp_path / "thumbs").get(image_row(path), path)
    assert not list((tmp_path / "thumbs").rglob("*.jpg"))


def test_thumbnails_of_rows_without_a_digest_are_named_by_id(tmp_path: Path) -> None:
    path = picture(tmp_path / "a.jpg")
    cache = ThumbnailCache(tmp_path / "thumbs")
    name = cache.name(image_row(path, sha256=""))
    assert name == f"{hashlib.sha256(str(path).encode()).hexdigest()}-320-v1.jpg"


def test_the_default_folder_is_the_users_cache(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_thumbnail_folder() == tmp_path / "tongyi-vision" / "thumbnails"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    expected = tmp_path / "home" / ".cache" / "tongyi-vision" / "thumbnails"
    assert default_thumbnail_folder() == expected


def test_thumbnail_bytes_decode(tmp_path: Path) -> None:
    path = picture(tmp_path / "a.jpg", (2000, 1000))
    made = ThumbnailCache(tmp_path / "thumbs", side=256).get(image_row(path), path)
    data = made.path.read_bytes()
    with PILImage.open(io.BytesIO(data)) as thumb:
        assert thumb.size == (256, 128)
    assert len(data) < path.stat().st_size
