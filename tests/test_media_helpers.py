"""Media references in document text, format sniffing, and the image helpers."""

from __future__ import annotations

import base64
import io
import os
from pathlib import Path

import pytest

from tests._core_fakes import image_bytes, png_bytes
from tongyi_vision import (
    CorruptMediaError,
    EmptyInputError,
    Image,
    MediaNotFoundError,
    UnsupportedMediaError,
    Video,
    file_uri,
    media_part,
)
from tongyi_vision.media.imaging import fit_image, image_size
from tongyi_vision.wire.formats import sniff_image_format, sniff_video_format
from tongyi_vision.wire.limits import base_model, image_tokens_for_pixels, media_price

MP4_HEAD = b"\x00\x00\x00\x18ftypisom" + bytes(16)


def test_plain_text_stays_text(tmp_path: Path) -> None:
    assert media_part("a red bicycle") is None
    assert media_part("photos/bike.jpg") is None  # looks like a path, but is text
    assert media_part("file:///etc/passwd\nand more text") is None


def test_data_uris_become_parts() -> None:
    image_uri = "data:image/png;base64," + base64.b64encode(png_bytes()).decode()
    part = media_part(image_uri, auto_fit=False)
    assert isinstance(part, Image)
    assert part.auto_fit is False
    video_uri = "data:video/mp4;base64," + base64.b64encode(MP4_HEAD).decode()
    assert isinstance(media_part(video_uri), Video)


def test_file_uris_are_sniffed(tmp_path: Path) -> None:
    image = tmp_path / "looks like text.txt"
    image.write_bytes(png_bytes())
    video = tmp_path / "clip.bin"
    video.write_bytes(MP4_HEAD)
    notes = tmp_path / "notes.png"
    notes.write_text("not an image")

    assert isinstance(media_part(file_uri(str(image))), Image)
    assert isinstance(media_part(file_uri(str(video))), Video)
    # A reference to a file that is no medium is an error, not the letters of its name.
    with pytest.raises(UnsupportedMediaError, match="neither an image nor a video"):
        media_part(file_uri(str(notes)))
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(EmptyInputError, match="empty file"):
        media_part(file_uri(str(empty)))
    # Without files, a file:// URI is text: nothing is read.
    assert media_part(file_uri(str(image)), files=False) is None


def test_a_missing_file_uri_is_an_error_not_text(tmp_path: Path) -> None:
    with pytest.raises(MediaNotFoundError, match="cannot be read"):
        media_part(file_uri(str(tmp_path / "gone.png")))


def test_file_uri_is_absolute_and_percent_encoded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a b#c.png").write_bytes(png_bytes())
    uri = file_uri("a b#c.png")
    assert uri.startswith("file:///")
    assert "a%20b%23c.png" in uri
    part = media_part(uri)
    assert isinstance(part, Image)
    assert part.prepare().load()["image"].startswith("data:image/png;base64,")


@pytest.mark.parametrize(
    ("head", "fmt"),
    [
        (b"\xff\xd8\xff\xe0", "jpeg"),
        (b"\x89PNG\r\n\x1a\n", "png"),
        (b"BM", "bmp"),
        (b"GIF89a", "gif"),
        (b"RIFF\x00\x00\x00\x00WEBP", "webp"),
        (b"II*\x00", "tiff"),
        (b"hello", None),
    ],
)
def test_sniff_image_format(head: bytes, fmt: str) -> None:
    assert sniff_image_format(head) == fmt


@pytest.mark.parametrize(
    ("head", "fmt"),
    [
        (MP4_HEAD, "mp4"),
        (b"\x00\x00\x00\x14ftypqt  ", "mov"),
        (b"\x00\x00\x00\x08wide", "mov"),
        (b"\x1a\x45\xdf\xa3" + b"\x00" * 20 + b"webm", "webm"),
        (b"\x1a\x45\xdf\xa3" + b"\x00" * 20 + b"matroska", "mkv"),
        (b"RIFF\x00\x00\x00\x00AVI ", "avi"),
        (b"FLV\x01", "flv"),
        (b"\x00\x00\x01\xba", "mpeg"),
        (b"\x89PNG\r\n\x1a\n", None),
    ],
)
def test_sniff_video_format(head: bytes, fmt: str) -> None:
    assert sniff_video_format(head) == fmt


def test_image_tokens_formula_is_bounded() -> None:
    assert image_tokens_for_pixels(28, 28) == 4
    assert image_tokens_for_pixels(280, 280) == 100
    assert image_tokens_for_pixels(10_000, 10_000) == 1024


def test_model_names_and_prices() -> None:
    assert base_model("tongyi-embedding-vision-flash-2026-03-06") == "tongyi-embedding-vision-flash"
    assert base_model("something-else") == "something-else"
    assert media_price("tongyi-embedding-vision-flash") == (0.09, 0.03)
    assert media_price("unknown-model") == (0.09, 0.09)  # priced high


def test_image_size_reads_the_header() -> None:
    assert image_size(image_bytes("GIF", 31, 17), description="gif") == (31, 17)
    with pytest.raises(CorruptMediaError, match="bytes: cannot be decoded"):
        image_size(b"not an image", description="bytes")


def test_a_large_transparent_image_is_flattened_into_a_jpeg() -> None:
    from PIL import Image as PILImage

    width = height = 1000
    noise = PILImage.frombytes("RGBA", (width, height), os.urandom(width * height * 4))
    buffer = io.BytesIO()
    noise.save(buffer, format="PNG", compress_level=1)
    limit = 1024 * 1024
    data, fmt = fit_image(buffer.getvalue(), max_bytes=limit, description="noise")
    assert fmt == "jpeg"
    assert len(data) <= limit
    fitted = PILImage.open(io.BytesIO(data))
    assert fitted.mode == "RGB"
    assert fitted.size[0] == fitted.size[1]
