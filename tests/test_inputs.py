"""Bad inputs are refused before anything is sent, with an error naming the part; images in
other formats or over 3 MB are re-encoded to fit when allowed."""

from __future__ import annotations

import base64
import io
import os
import pathlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests._core_fakes import FakeService, MakeClient, Seen, image_bytes, png_bytes
from tongyi_vision import (
    CorruptMediaError,
    EmptyInputError,
    Image,
    InputError,
    MediaNotFoundError,
    MediaTooLargeError,
    MultiImage,
    TextTooLongError,
    TongyiVisionError,
    TooManyImagesError,
    UnsupportedMediaError,
    Video,
    estimate_text_tokens,
)
from tongyi_vision.media import imaging as _imaging

if TYPE_CHECKING:
    from PIL.ImageFile import ImageFile as PILImageFile

MAX_IMAGE_BYTES = 3 * 1024 * 1024


def refused(
    make_client: MakeClient,
    service: FakeService,
    bad: object,
    error_type: type[InputError],
    *,
    position: int = 2,
    **options: Any,
) -> InputError:
    """Embed good parts with ``bad`` at ``position``; return the error, checking nothing was
    sent and the error is an input error naming the part."""
    client = make_client(service, **options)
    # Any: the point is to pass what the types forbid, too
    parts: list[Any] = ["fine", Image("https://example.com/ok.png"), "also fine"]
    parts.insert(position, bad)
    with pytest.raises(error_type) as caught:
        client.embed(parts)
    error = caught.value
    assert isinstance(error, InputError)
    assert isinstance(error, ValueError)
    assert isinstance(error, TongyiVisionError)
    assert error.part_index == position
    assert str(error).startswith(f"part {position}")
    assert service.seen == []
    return error


# --- text ------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
def test_empty_text(make_client: MakeClient, service: FakeService, text: str) -> None:
    error = refused(make_client, service, text, EmptyInputError)
    assert "text is empty" in str(error)


def test_text_too_long_with_long_text_error(make_client: MakeClient, service: FakeService) -> None:
    text = "word " * 1100
    error = refused(make_client, service, text, TextTooLongError, position=3, long_text="error")
    tokens = estimate_text_tokens(text)
    assert f"about {tokens:,} tokens by the estimate, over the 1,024-token limit" in str(error)
    assert "long_text='split'" in str(error)


def test_cjk_text_over_the_limit_is_refused(make_client: MakeClient, service: FakeService) -> None:
    cjk = "车" * 1300
    assert estimate_text_tokens(cjk) > 1024
    refused(make_client, service, cjk, TextTooLongError, long_text="error")


def test_text_at_the_limit_is_accepted(make_client: MakeClient, service: FakeService) -> None:
    client = make_client(service, long_text="error")
    at_limit = "车" * 1280  # 0.8 each: exactly 1,024
    assert estimate_text_tokens(at_limit) == 1024
    assert estimate_text_tokens("a " * 1024) == 1024
    client.embed(["a " * 1024, at_limit])
    assert len(service.parts_sent) == 2


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("", 0),
        ("abc", 1),
        ("abcd", 1),
        ("a red bicycle", 4),  # three words, one letter beyond six
        ("红色 bike", 3),  # 0.8 per CJK character, one per word
        ("2026", 4),  # digits one by one
        ("Привет", 3),  # Cyrillic letters a half each
        ("🙂🙂", 4),  # beyond the BMP: two each
    ],
)
def test_token_estimate(text: str, tokens: int) -> None:
    assert estimate_text_tokens(text) == tokens


def test_wrong_part_types(make_client: MakeClient, service: FakeService) -> None:
    error = refused(make_client, service, b"raw bytes", InputError)
    assert "wrap bytes or paths in Image(...)" in str(error)
    client = make_client(service)
    with pytest.raises(InputError, match="embed takes a list of parts"):
        client.embed("just a string")
    with pytest.raises(InputError) as caught:
        client.embed_texts(["ok", 42])  # type: ignore[list-item]
    assert caught.value.part_index == 1
    assert service.seen == []


# --- local files -----------------------------------------------------------------------


def test_missing_file(make_client: MakeClient, service: FakeService, tmp_path: Path) -> None:
    error = refused(make_client, service, Image(tmp_path / "nowhere.png"), MediaNotFoundError)
    assert isinstance(error, FileNotFoundError)
    assert "file not found" in str(error)
    assert "nowhere.png" in str(error)


def test_missing_file_uri(make_client: MakeClient, service: FakeService, tmp_path: Path) -> None:
    uri = (tmp_path / "gone.jpg").as_uri()
    error = refused(make_client, service, Image(uri), MediaNotFoundError)
    assert "gone.jpg" in str(error)


def test_unreadable_file(
    make_client: MakeClient, service: FakeService, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "secret.png"
    path.write_bytes(png_bytes())
    real_open = pathlib.Path.open

    def deny(self: pathlib.Path, *args: Any, **kwargs: Any) -> Any:
        if self == path:
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(self, *args, **kwargs)

    # the tests may run as root, who can read anything: simulate the refusal
    monkeypatch.setattr(pathlib.Path, "open", deny)
    error = refused(make_client, service, Image(path), MediaNotFoundError)
    assert "permission denied" in str(error)


def test_a_directory_is_not_an_image(
    make_client: MakeClient, service: FakeService, tmp_path: Path
) -> None:
    error = refused(make_client, service, Image(tmp_path), MediaNotFoundError)
    assert "is not a file" in str(error)


def test_empty_file(make_client: MakeClient, service: FakeService, tmp_path: Path) -> None:
    path = tmp_path / "empty.png"
    path.touch()
    error = refused(make_client, service, Image(path), EmptyInputError)
    assert "file is empty" in str(error)


@pytest.mark.parametrize("auto_fit", [True, False])
def test_not_an_image(
    make_client: MakeClient, service: FakeService, tmp_path: Path, auto_fit: bool
) -> None:
    path = tmp_path / "notes.png"  # the name lies: formats are sniffed from the bytes
    path.write_text("just some text, not pixels")
    error = refused(make_client, service, Image(path, auto_fit=auto_fit), UnsupportedMediaError)
    assert "JPEG, PNG or BMP" in str(error)


def test_an_image_that_cannot_be_decoded(make_client: MakeClient, service: FakeService) -> None:
    broken = image_bytes("GIF")[:20]  # a GIF header and nothing after it
    error = refused(make_client, service, Image(broken), CorruptMediaError)
    assert "cannot be decoded" in str(error)


# --- formats and auto-fit --------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["GIF", "WEBP", "TIFF"])
def test_other_formats_refused_without_auto_fit(
    make_client: MakeClient, service: FakeService, tmp_path: Path, fmt: str
) -> None:
    path = tmp_path / f"picture.{fmt.lower()}"
    path.write_bytes(image_bytes(fmt))
    error = refused(make_client, service, Image(path, auto_fit=False), UnsupportedMediaError)
    assert f"is {fmt}; the service takes JPEG, PNG or BMP" in str(error)
    assert "auto_fit=True" in str(error)


@pytest.mark.parametrize("fmt", ["GIF", "WEBP", "TIFF"])
def test_other_formats_converted_with_auto_fit(
    make_client: MakeClient, service: FakeService, tmp_path: Path, fmt: str
) -> None:
    from PIL import Image as PILImage

    path = tmp_path / f"picture.{fmt.lower()}"
    path.write_bytes(image_bytes(fmt, 40, 30))
    client = make_client(service)
    client.embed([Image(path)])
    (content,) = service.parts_sent
    header, payload = content["image"].split(",", 1)
    assert header in ("data:image/png;base64", "data:image/jpeg;base64")
    decoded = PILImage.open(io.BytesIO(base64.b64decode(payload)))
    assert decoded.format in ("PNG", "JPEG")
    assert decoded.size == (40, 30)


def test_without_pillow_the_error_names_the_image_extra(
    make_client: MakeClient, service: FakeService, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_imaging, "pillow_available", lambda: False)
    error = refused(make_client, service, Image(image_bytes("WEBP")), UnsupportedMediaError)
    assert "pip install 'tongyi-vision[image]'" in str(error)


def noisy_png(width: int, height: int) -> bytes:
    from PIL import Image as PILImage

    # random pixels: PNG cannot compress them, JPEG needs its lowest qualities or a smaller size
    image = PILImage.frombytes("RGB", (width, height), os.urandom(width * height * 3))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def decoded(content: dict[str, str]) -> tuple[str, bytes, PILImageFile]:
    from PIL import Image as PILImage

    header, payload = content["image"].split(",", 1)
    data = base64.b64decode(payload)
    return header, data, PILImage.open(io.BytesIO(data))


def test_large_noisy_image_refit_under_3_mb_keeping_aspect(
    make_client: MakeClient, service: FakeService, tmp_path: Path
) -> None:
    path = tmp_path / "huge.png"
    path.write_bytes(noisy_png(1600, 1000))
    assert path.stat().st_size > MAX_IMAGE_BYTES

    refused_error = refused(
        make_client, service, Image(path, auto_fit=False), MediaTooLargeError, position=0
    )
    assert "over the 3,145,728-byte (3 MB) limit" in str(refused_error)

    client = make_client(service)
    client.embed([Image(path)])
    (content,) = service.parts_sent
    header, data, image = decoded(content)
    assert header == "data:image/jpeg;base64"
    assert len(data) <= MAX_IMAGE_BYTES
    width, height = image.size
    assert abs(width / height - 1.6) < 0.01
    # shrunk only as much as needed: well over half the pixels are kept
    assert width * height > 0.5 * 1600 * 1000


def test_over_3_mb_png_bytes_refit(make_client: MakeClient, service: FakeService) -> None:
    data = noisy_png(1100, 1100)
    assert len(data) > MAX_IMAGE_BYTES
    client = make_client(service)
    client.embed([Image(data)])
    header, fitted, image = decoded(service.parts_sent[0])
    assert header == "data:image/jpeg;base64"
    assert len(fitted) <= MAX_IMAGE_BYTES
    assert image.size[0] == image.size[1]


def test_transparent_image_stays_png(make_client: MakeClient, service: FakeService) -> None:
    from PIL import Image as PILImage

    buffer = io.BytesIO()
    PILImage.new("RGBA", (20, 10), (0, 128, 0, 100)).save(buffer, format="WEBP", lossless=True)
    client = make_client(service)
    client.embed([Image(buffer.getvalue())])
    header, _, image = decoded(service.parts_sent[0])
    assert header == "data:image/png;base64"
    assert image.mode == "RGBA"


def test_decompression_bomb_refused(
    make_client: MakeClient, service: FakeService, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_imaging, "MAX_DECODE_PIXELS", 100)
    error = refused(make_client, service, Image(image_bytes("GIF", 16, 12)), UnsupportedMediaError)
    assert "16x12 pixels is over the 100-pixel safety limit" in str(error)


def test_pillows_own_bomb_check_is_mapped(
    make_client: MakeClient, service: FakeService, monkeypatch: pytest.MonkeyPatch
) -> None:
    from PIL import Image as PILImage

    monkeypatch.setattr(PILImage, "MAX_IMAGE_PIXELS", 40)  # Pillow refuses over twice this
    error = refused(make_client, service, Image(image_bytes("GIF", 16, 12)), UnsupportedMediaError)
    assert "decompression bomb" in str(error)


# --- other image sources ---------------------------------------------------------------


def test_image_sources(make_client: MakeClient, service: FakeService, tmp_path: Path) -> None:
    from PIL import Image as PILImage

    data = png_bytes(5, 5)
    path = tmp_path / "a.png"
    path.write_bytes(data)
    bmp = image_bytes("BMP", 3, 3)
    client = make_client(service)
    with path.open("rb") as handle:
        file_image = Image(handle)
    client.embed(
        [
            Image(path),
            Image(path.as_uri()),
            Image(memoryview(bmp)),
            Image(PILImage.new("RGB", (7, 9))),
            file_image,
        ]
    )
    sent = [c["image"] for c in service.parts_sent]
    # the path and its file:// URI are one image, sent once
    assert len(sent) == 4
    from_path, bmp_uri, pil_uri, from_handle = sent
    assert from_path == from_handle == "data:image/png;base64," + base64.b64encode(data).decode()
    assert bmp_uri == "data:image/bmp;base64," + base64.b64encode(bmp).decode()
    assert pil_uri.startswith("data:image/png;base64,")


def test_mislabelled_data_uri_is_sent_with_its_real_type(
    make_client: MakeClient, service: FakeService
) -> None:
    uri = "data:image/jpeg;base64," + base64.b64encode(png_bytes()).decode()
    client = make_client(service)
    client.embed([Image(uri)])
    assert service.parts_sent[0]["image"].startswith("data:image/png;base64,")


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("data:image/png;base64,%%%not-base64", "has invalid base64"),
        ("data:text/plain;base64,aGVsbG8=", "is not a base64 image data URI"),
        ("data:image/png,rawbytes", "is not a base64 image data URI"),
    ],
)
def test_bad_data_uris(
    make_client: MakeClient, service: FakeService, uri: str, message: str
) -> None:
    error = refused(make_client, service, Image(uri), UnsupportedMediaError)
    assert message in str(error)


def test_image_refuses_text_file_objects_and_other_types(tmp_path: Path) -> None:
    path = tmp_path / "t.txt"
    path.write_text("x")
    with path.open() as handle, pytest.raises(InputError, match="binary mode"):
        Image(handle)
    with pytest.raises(InputError, match="not int"):
        Image(42)  # type: ignore[arg-type]


# --- MultiImage ------------------------------------------------------------------------


def test_multi_image_of_nine_is_too_many(make_client: MakeClient, service: FakeService) -> None:
    group = MultiImage([f"https://example.com/{i}.png" for i in range(9)])
    error = refused(make_client, service, group, TooManyImagesError)
    assert "has 9 images; at most 8 make one vector" in str(error)


def test_empty_multi_image(make_client: MakeClient, service: FakeService) -> None:
    refused(make_client, service, MultiImage([]), EmptyInputError)


def test_multi_image_names_the_bad_image(
    make_client: MakeClient, service: FakeService, tmp_path: Path
) -> None:
    group = MultiImage(["https://example.com/a.png", tmp_path / "missing.png"])
    error = refused(make_client, service, group, MediaNotFoundError)
    assert "image 1 of MultiImage" in str(error)


def test_multi_image_takes_a_list() -> None:
    with pytest.raises(InputError, match="takes a list"):
        MultiImage("a.png")


# --- video (URLs and data URIs; local files are the video module's tests) --------------


def test_video_url_is_passed_through(make_client: MakeClient, service: FakeService) -> None:
    client = make_client(service)
    client.embed([Video("https://example.com/clip.mp4")])
    assert service.parts_sent == [{"video": "https://example.com/clip.mp4"}]


def test_video_data_uri_over_10_mb(make_client: MakeClient, service: FakeService) -> None:
    payload = base64.b64encode(b"\x00\x00\x00\x18ftypmp42" + bytes(11 * 1024 * 1024)).decode()
    error = refused(
        make_client, service, Video("data:video/mp4;base64," + payload), MediaTooLargeError
    )
    assert "10 MB" in str(error)


def test_input_error_outside_a_call_has_no_index() -> None:
    with pytest.raises(EmptyInputError) as caught:
        MultiImage([]).prepare()
    assert caught.value.part_index is None
    assert str(caught.value).startswith("MultiImage([]): ")


def test_client_auto_fit_setting_applies_to_embed_images(
    make_client: MakeClient, service: FakeService
) -> None:
    client = make_client(service, auto_fit=False)
    with pytest.raises(UnsupportedMediaError) as caught:
        client.embed_images(["https://example.com/ok.png", image_bytes("WEBP")])
    assert caught.value.part_index == 1
    assert service.seen == []


def test_a_file_that_vanishes_during_the_call_is_named(
    make_client: MakeClient, tmp_path: Path
) -> None:
    first, second = tmp_path / "first.png", tmp_path / "second.png"
    first.write_bytes(png_bytes(4, 4))
    second.write_bytes(png_bytes(5, 5))

    def delete_second(seen: Seen) -> None:
        second.unlink(missing_ok=True)

    service = FakeService(on_request=delete_second)
    client = make_client(service, max_parts_per_request=1, max_concurrency=1)
    with pytest.raises(MediaNotFoundError) as caught:
        client.embed([Image(first), Image(second)])
    error = caught.value
    assert error.part_index == 1
    assert "second.png" in str(error)
    assert "could not be read while sending" in str(error)
    assert len(service.seen) == 1
    # what was sent before the file vanished is kept
    assert error.partial is not None
    assert error.partial.vectors[0] is not None
    assert error.partial.vectors[1] is None


def test_shorthands_name_the_refused_item(make_client: MakeClient, service: FakeService) -> None:
    client = make_client(service)
    with pytest.raises(InputError) as caught:
        client.embed_images(["https://example.com/a.png", 3.5])  # type: ignore[list-item]
    assert caught.value.part_index == 1
    with pytest.raises(InputError) as caught_video:
        client.embed_videos(["https://example.com/v.mp4", 7])  # type: ignore[list-item]
    assert caught_video.value.part_index == 1
    assert service.seen == []
