"""Client and AsyncClient against a real emulator process, in both dialects, every part kind."""

from __future__ import annotations

import asyncio
import base64
import io
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tongyi_vision import (
    AsyncClient,
    BadRequestError,
    Client,
    EmbedResult,
    Image,
    MultiImage,
    Part,
    Video,
    estimate_text_tokens,
)
from tongyi_vision.wire.limits import image_tokens_for_pixels

if TYPE_CHECKING:
    from integration_tests.conftest import RunningEmulator

DIALECTS = ("openai", "dashscope")
MODES = ("sync", "async")
# A valid MP4 header: enough for the emulator's container check.
MP4 = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + bytes(64)

# Tokens the emulator bills (docs/emulator.md, "Usage"): 320x240 -> 12 x 9 patches of 28 px.
TOKENS_320x240 = image_tokens_for_pixels(320, 240)
TOKENS_URL_IMAGE = image_tokens_for_pixels(512, 512)
TOKENS_VIDEO = 10 * image_tokens_for_pixels(448, 448)


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def run_embed(
    server: RunningEmulator, mode: str, dialect: str, parts: Sequence[Part], **options: Any
) -> EmbedResult:
    """Embed with a Client or an AsyncClient (run on its own event loop)."""
    if mode == "sync":
        with Client(server.api_key, base_url=server.base_url, dialect=dialect, **options) as c:
            return c.embed(parts)

    async def main() -> EmbedResult:
        async with AsyncClient(
            server.api_key, base_url=server.base_url, dialect=dialect, **options
        ) as client:
            return await client.embed(parts)

    return asyncio.run(main())


@pytest.fixture
def image_file(tmp_path: Path, make_image: Callable[..., bytes]) -> Path:
    path = tmp_path / "photo.jpg"
    path.write_bytes(make_image(11))
    return path


def data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dialect", DIALECTS)
def test_every_part_kind_in_order(
    emulator: RunningEmulator,
    make_image: Callable[..., bytes],
    image_file: Path,
    mode: str,
    dialect: str,
) -> None:
    red = make_image(1)  # the bytes of http://media.test/red.jpg
    texts = ["a red bicycle leaning on a wall", "一辆红色的自行车"]
    parts: list[Part] = [
        texts[0],
        Image(image_file),
        Image(make_image(12)),
        Image(data_uri(make_image(13, fmt="PNG"), "image/png")),
        Image(emulator.media_url + "red.jpg"),
        Image("https://elsewhere.test/cat.jpg"),
        MultiImage([Image(make_image(14)), Image(make_image(15))]),
        Video("https://elsewhere.test/clip.mp4"),
        texts[1],
        Image(red),
    ]
    result = run_embed(emulator, mode, dialect, parts)

    assert len(result.vectors) == len(parts)
    assert result.dimension == 768
    for vector in result.vectors:
        assert len(vector) == 768
        assert all(type(x) is float for x in vector)
        assert math.isclose(math.fsum(x * x for x in vector), 1.0, rel_tol=1e-9)

    # Order: each vector equals the vector of its part embedded alone.
    for index in (0, 1, 5, 7, 8):
        alone = run_embed(emulator, mode, dialect, [parts[index]])
        assert alone.vectors[0] == result.vectors[index], f"part {index} out of place"
    # A mapped URL is read from the media folder: same pixels, same vector as the bytes.
    assert result.vectors[4] == result.vectors[9]

    # Billing: texts by the estimate, images by the pixel formula, one video of 10 frames.
    # (parts 4 and 9 are different parts to the client, so both are sent and billed.)
    expected = (
        sum(estimate_text_tokens(t) for t in texts)
        + 5 * TOKENS_320x240  # file, bytes, data URI, mapped URL, red bytes ...
        + 2 * TOKENS_320x240  # ... and the two members of the MultiImage
        + TOKENS_URL_IMAGE
        + TOKENS_VIDEO
    )
    assert result.usage.prompt_tokens == expected
    assert result.usage.requests >= 2  # texts and media go in separate requests


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dialect", DIALECTS)
def test_same_input_same_vector_across_calls(
    emulator: RunningEmulator, make_image: Callable[..., bytes], mode: str, dialect: str
) -> None:
    parts: list[Part] = ["deterministic", Image(make_image(21)), Video("https://v.test/a.mp4")]
    first = run_embed(emulator, mode, dialect, parts)
    second = run_embed(emulator, mode, dialect, parts)
    assert first.vectors == second.vectors


@pytest.mark.parametrize("dialect", DIALECTS)
def test_similarity_properties(
    emulator: RunningEmulator, make_image: Callable[..., bytes], dialect: str
) -> None:
    from PIL import Image as PILImage

    original = make_image(31, (640, 480))
    resized = io.BytesIO()
    PILImage.open(io.BytesIO(original)).resize((200, 150)).save(resized, "PNG")
    reencoded = io.BytesIO()
    PILImage.open(io.BytesIO(original)).save(reencoded, "JPEG", quality=40)
    parts: list[Part] = [
        Image(original),
        Image(resized.getvalue()),
        Image(reencoded.getvalue()),
        Image(make_image(32, (640, 480))),
        "a red bicycle in the rain",
        "a red bicycle in the sun",
        "quarterly revenue of the company",
    ]
    v = run_embed(emulator, "sync", dialect, parts).vectors
    assert cosine(v[0], v[1]) > 0.9
    assert cosine(v[0], v[2]) > 0.9
    assert abs(cosine(v[0], v[3])) < 0.5
    assert cosine(v[4], v[5]) > cosine(v[4], v[6]) + 0.3
    assert abs(cosine(v[4], v[6])) < 0.2


@pytest.mark.parametrize("mode", MODES)
def test_native_dimension(emulator: RunningEmulator, mode: str) -> None:
    result = run_embed(
        emulator,
        mode,
        "dashscope",
        ["small vectors", Image("https://x.test/a.png")],
        model="tongyi-embedding-vision-plus",
        dimension=256,
    )
    assert [len(v) for v in result.vectors] == [256, 256]


@pytest.mark.parametrize("dialect", DIALECTS)
def test_plus_model_and_dated_snapshot(emulator: RunningEmulator, dialect: str) -> None:
    plus = run_embed(emulator, "sync", dialect, ["x"], model="tongyi-embedding-vision-plus")
    assert len(plus.vectors[0]) == 1152
    dated = run_embed(
        emulator, "sync", dialect, ["x"], model="tongyi-embedding-vision-flash-2026-03-06"
    )
    assert len(dated.vectors[0]) == 768


@pytest.mark.parametrize("mode", MODES)
def test_video_data_uri_openai_only(emulator: RunningEmulator, mode: str) -> None:
    video = Video(data_uri(MP4, "video/mp4"))
    accepted = run_embed(emulator, mode, "openai", [video])
    assert len(accepted.vectors[0]) == 768
    with pytest.raises(BadRequestError) as caught:
        run_embed(emulator, mode, "dashscope", [video])
    assert caught.value.status == 400
    assert caught.value.part_indexes == (0,)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dialect", DIALECTS)
def test_many_texts_in_order(emulator: RunningEmulator, mode: str, dialect: str) -> None:
    texts = [f"sentence number {i} about topic {i % 7}" for i in range(130)]
    result = run_embed(emulator, mode, dialect, texts)
    single = run_embed(emulator, mode, dialect, [texts[77]])
    assert len(result.vectors) == 130
    assert result.vectors[77] == single.vectors[0]
    assert result.usage.prompt_tokens == sum(estimate_text_tokens(t) for t in texts)


@pytest.mark.parametrize("shape", ["old", "new"])
def test_native_usage_shapes(
    start_emulator: Callable[..., RunningEmulator], make_image: Callable[..., bytes], shape: str
) -> None:
    server = start_emulator("--usage-shape", shape)
    parts: list[Part] = ["two words", Image(make_image(41)), Video("https://v.test/b.mp4")]
    result = run_embed(server, "sync", "dashscope", parts)
    text = estimate_text_tokens("two words")
    assert result.usage.prompt_tokens == text + TOKENS_320x240 + TOKENS_VIDEO
    assert result.usage.text_tokens == text
    assert result.usage.media_tokens == TOKENS_320x240 + TOKENS_VIDEO
