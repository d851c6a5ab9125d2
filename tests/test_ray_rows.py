"""What one cell of a Ray dataset is embedded as (``tongyi_vision.ray.row_part``): texts,
paths, URLs, references, clips, bytes, numpy pictures, content blocks and parts; decided per
row, or forced by ``kind``. Pure logic: nothing is sent, no Ray runs."""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
import pytest

from tests._core_fakes import png_bytes
from tongyi_vision import (
    EmptyInputError,
    Fused,
    Image,
    InputError,
    MediaNotFoundError,
    MultiImage,
    UnsupportedMediaError,
    Video,
)
from tongyi_vision.media.parts import prepare_part
from tongyi_vision.ray import row_part
from tongyi_vision.ray._rows import clip_reference, pil_of

# The first bytes of an MP4 (an ``ftyp`` box): enough for the catalogue to call it a video.
MP4_HEAD = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + b"\x00" * 64


@pytest.fixture
def files(tmp_path: Path) -> Path:
    (tmp_path / "cat.png").write_bytes(png_bytes())
    (tmp_path / "talk.mp4").write_bytes(MP4_HEAD)
    (tmp_path / "notes.txt").write_text("not media")
    return tmp_path


def test_plain_strings_are_texts_even_when_they_mention_files() -> None:
    for text in ("a red bicycle", "see photo.jpg for details", "C:/not a path.png and more"):
        assert row_part(text) == text


def test_a_local_image_path_or_reference_is_that_image(files: Path) -> None:
    for value in (str(files / "cat.png"), (files / "cat.png").as_uri(), files / "cat.png"):
        part = row_part(value)
        assert isinstance(part, Image)
        assert prepare_part(part).kind == "image"


def test_a_path_that_looks_like_media_but_is_missing_is_refused_not_embedded_as_text(
    files: Path,
) -> None:
    with pytest.raises(MediaNotFoundError):
        row_part(str(files / "gone.jpg"))


def test_a_clip_reference_is_a_video_of_that_time_range(files: Path) -> None:
    uri = (files / "talk.mp4").as_uri() + "#t=10,20"
    for value in (uri, f"{files / 'talk.mp4'}#t=10,20"):
        part = row_part(value)
        assert isinstance(part, Video)
        assert (part.start, part.end) == (10.0, 20.0)
    forced = row_part(f"{files / 'talk.mp4'}#t=2.5,4", "video")
    assert isinstance(forced, Video) and (forced.start, forced.end) == (2.5, 4.0)


def test_clip_reference_reads_only_paths_of_videos_with_a_time_fragment() -> None:
    assert clip_reference("/v/talk.mp4#t=1,2") == "file:///v/talk.mp4#t=1,2"
    assert clip_reference("/v/talk.mp4") is None
    assert clip_reference("/p/cat.png#t=1,2") is None
    assert clip_reference("https://x.test/v.mp4#t=1,2") is None
    assert clip_reference("two words.mp4#t=1,2") is None
    with pytest.raises(InputError, match="#t=soon"):
        clip_reference("/v/talk.mp4#t=soon")


def test_urls_are_videos_by_their_suffix_else_images() -> None:
    video = row_part("https://cdn.test/clips/intro.MP4?sig=1")
    image = row_part("https://cdn.test/photos/42")
    assert isinstance(video, Video) and video.source == "https://cdn.test/clips/intro.MP4?sig=1"
    assert isinstance(image, Image) and image.source == "https://cdn.test/photos/42"


def test_data_uris_and_raw_base64_are_the_media_they_hold() -> None:
    data = png_bytes()
    encoded = base64.b64encode(data).decode()
    assert isinstance(row_part(f"data:image/png;base64,{encoded}"), Image)
    raw = row_part(encoded)
    assert isinstance(raw, Image) and raw.source == data


def test_bytes_are_told_by_their_first_bytes() -> None:
    image = row_part(png_bytes())
    video = row_part(MP4_HEAD)
    assert isinstance(image, Image) and isinstance(video, Video)
    assert isinstance(row_part(bytearray(png_bytes())), Image)
    with pytest.raises(UnsupportedMediaError, match="neither an image nor a video"):
        row_part(b"\xff\xfe\x00 not text, not a picture")
    with pytest.raises(EmptyInputError):
        row_part(b"")


def test_text_stored_as_bytes_is_read_as_the_string_it_spells(tmp_path: Path) -> None:
    # A column of texts, paths and image bytes reaches the workers as binary.
    picture = tmp_path / "cat.png"
    picture.write_bytes(png_bytes())
    assert row_part(b"plain words, not a picture") == "plain words, not a picture"
    assert row_part("caf\u00e9 au lait".encode()) == "caf\u00e9 au lait"
    as_path = row_part(str(picture).encode())
    assert isinstance(as_path, Image) and str(as_path.source).endswith(str(picture))
    assert row_part(b"a text", "text") == "a text"


def test_numpy_pictures_become_images_encoded_on_the_worker() -> None:
    rgb = np.zeros((6, 8, 3), dtype=np.uint8)
    rgb[:, :, 0] = 200
    part = row_part(rgb)
    assert isinstance(part, Image)
    prepared = prepare_part(part)
    assert prepared.load()["image"].startswith("data:image/png;base64,")
    assert isinstance(row_part(np.zeros((6, 8), dtype=np.uint8)), Image)  # grey
    assert isinstance(row_part(np.zeros((6, 8, 1), dtype=np.uint8)), Image)
    assert pil_of(np.zeros((6, 8, 4), dtype=np.uint8)).mode == "RGBA"


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.zeros((6, 8, 3), dtype=np.float32), "uint8"),
        (np.zeros((2, 6, 8, 3), dtype=np.uint8), "shape"),
        (np.zeros((6, 8, 2), dtype=np.uint8), "shape"),
        (np.zeros((0, 8, 3), dtype=np.uint8), "shape"),
    ],
)
def test_arrays_that_are_not_pictures_are_refused(array: np.ndarray, message: str) -> None:
    with pytest.raises(InputError, match=message):
        row_part(array)


def test_numpy_strings_are_strings_not_pictures() -> None:
    assert row_part(np.str_("a caption")) == "a caption"


def test_content_blocks_and_parts_are_taken_as_they_are(files: Path) -> None:
    image = Image(files / "cat.png")
    video = Video(str(files / "talk.mp4"), start=0, end=1)
    multi = MultiImage([files / "cat.png"])
    fused = Fused(["a cat", image])
    for part in (image, video, multi, fused):
        assert row_part(part) is part
    assert row_part({"type": "text", "text": "hello"}) == "hello"
    block = row_part({"type": "image", "url": "https://cdn.test/cat.png"})
    assert isinstance(block, Image)


def test_a_forced_kind_reads_every_row_as_that_kind(files: Path) -> None:
    looks_like_a_path = str(files / "cat.png")
    assert row_part(looks_like_a_path, "text") == looks_like_a_path
    assert isinstance(row_part(str(files / "notes.txt"), "image"), Image)
    assert isinstance(row_part(png_bytes(), "video"), Video)
    assert isinstance(row_part(MP4_HEAD, "image"), Image)
    with pytest.raises(InputError, match="kind 'text' takes strings"):
        row_part(png_bytes(), "text")
    with pytest.raises(InputError, match="not pixels"):
        row_part(np.zeros((4, 4, 3), dtype=np.uint8), "video")


@pytest.mark.parametrize("empty", [None, float("nan")])
def test_an_empty_cell_is_refused(empty: object) -> None:
    with pytest.raises(EmptyInputError, match="no value"):
        row_part(empty)


def test_other_values_are_refused_saying_what_a_row_may_hold() -> None:
    with pytest.raises(InputError, match="not int"):
        row_part(42)
