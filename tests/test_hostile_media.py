"""Local media is checked before any request of a call: a picture cut short, a header that
claims a bomb, a video whose range cannot be decoded, a PIL image too large, a HEIF photo
that is no video; each is a typed error naming the part, and nothing was sent."""

from __future__ import annotations

import gc
import io
from pathlib import Path

import pytest
from PIL import Image as PILImage

from tests._core_fakes import FakeService, MakeClient
from tests._video_media import sample, truncated
from tests.test_catalogue import png_header
from tongyi_vision import (
    CorruptMediaError,
    Image,
    PartialResult,
    UnsupportedMediaError,
    Video,
)
from tongyi_vision.media import imaging
from tongyi_vision.wire.formats import sniff_image_format, sniff_video_format


def _noisy(fmt: str) -> bytes:
    image = PILImage.effect_noise((120, 90), 60).convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "BMP"])
@pytest.mark.parametrize("pillow", [True, False], ids=["pillow", "no-pillow"])
def test_a_picture_cut_short_is_refused_before_sending(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str, pillow: bool
) -> None:
    if not pillow:
        monkeypatch.setattr(imaging, "pillow_available", lambda: False)
    whole = _noisy(fmt)
    cut = tmp_path / f"cut.{fmt.lower()}"
    cut.write_bytes(whole[: len(whole) * 2 // 3])
    with pytest.raises(CorruptMediaError, match="cut short") as caught:
        Image(cut).prepare()
    assert "cut." in str(caught.value)
    (tmp_path / "whole.bin").write_bytes(whole)
    Image(tmp_path / "whole.bin").prepare()  # the same picture, whole, is fine
    with pytest.raises(CorruptMediaError):
        Image(whole[:-40]).prepare()  # bytes are checked the same way


def test_a_mixed_call_with_a_bad_picture_sends_nothing(
    tmp_path: Path, make_client: MakeClient, service: FakeService
) -> None:
    whole = _noisy("PNG")
    cut = tmp_path / "cut.png"
    cut.write_bytes(whole[:-100])
    parts = [f"text {i}" for i in range(30)] + [Image(cut)]
    client = make_client(service)
    with pytest.raises(CorruptMediaError) as caught:
        client.embed(parts)
    assert caught.value.part_index == 30
    assert service.seen == []
    # Skipping it, the texts are embedded and only they are sent.
    result = client.embed(parts, on_invalid="skip")
    assert isinstance(result, PartialResult)
    assert result.missing == [30] and isinstance(result.errors[30], CorruptMediaError)
    assert all("image" not in str(seen.contents) for seen in service.seen)


def test_a_tiny_png_claiming_a_bomb_is_refused_before_sending(
    tmp_path: Path, make_client: MakeClient, service: FakeService
) -> None:
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_header(50_000, 50_000))
    with pytest.raises(UnsupportedMediaError, match="bomb"):
        make_client(service).embed(["a text", Image(bomb)])
    assert service.seen == []


def test_a_video_range_that_cannot_be_decoded_is_refused_before_the_texts_go(
    tmp_path: Path, make_client: MakeClient, service: FakeService
) -> None:
    cut = truncated(sample(tmp_path, "whole.mkv"), tmp_path / "cut.mkv", fraction=0.3)
    client = make_client(service)
    with pytest.raises(CorruptMediaError, match="no frame between 20 s and 25 s"):
        client.embed(["a", "b", Video(cut, start=20, end=25)])
    assert service.seen == []


def test_a_pil_image_is_checked_now_and_encoded_only_when_sent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    encoded: list[int] = []
    real = imaging.encode_pil

    def counting(image: PILImage.Image) -> tuple[bytes, str]:
        encoded.append(1)
        return real(image)

    monkeypatch.setattr(imaging, "encode_pil", counting)
    prepared = Image(PILImage.new("RGB", (40, 30), (9, 9, 9))).prepare()
    assert encoded == []
    assert str(prepared.load()["image"]).startswith("data:image/png;base64,")
    assert encoded == [1]
    monkeypatch.setattr(imaging, "MAX_DECODE_PIXELS", 100)
    with pytest.raises(UnsupportedMediaError, match="pixel safety limit"):
        Image(PILImage.new("RGB", (40, 30))).prepare()


def test_refusing_an_image_over_the_pixel_limit_leaves_no_file_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "big.png"
    path.write_bytes(_noisy("PNG"))
    monkeypatch.setattr(imaging, "MAX_DECODE_PIXELS", 100)
    with pytest.raises(UnsupportedMediaError):
        imaging.open_image(path, description="big.png")
    gc.collect()  # an unclosed file would be reported here (warnings are errors)


@pytest.mark.parametrize(
    ("brand", "fmt"), [(b"heic", "heif"), (b"mif1", "heif"), (b"avif", "avif")]
)
def test_heif_and_avif_photos_are_images_not_videos(tmp_path: Path, brand: bytes, fmt: str) -> None:
    head = b"\x00\x00\x00\x18ftyp" + brand + b"\x00\x00\x00\x00" + brand + b"mif1" + bytes(40)
    assert sniff_video_format(head) is None
    assert sniff_image_format(head) == fmt
    photo = tmp_path / "photo.mp4"
    photo.write_bytes(head)
    with pytest.raises(UnsupportedMediaError, match="not a video container"):
        Video(photo).prepare()
    with pytest.raises(UnsupportedMediaError, match=fmt.upper()):
        Image(photo).prepare()
