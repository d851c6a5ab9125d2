"""2,000 parts through an emulator that fails 10% of requests and throttles: nothing lost,
nothing out of order, nothing paid twice."""

from __future__ import annotations

import asyncio
import io
import random
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

from tongyi_vision import AsyncClient, Client, EmbedResult, Image, Part, Video, estimate_text_tokens
from tongyi_vision.emulator._vectors import pixel_vector, text_vector, thumbnail
from tongyi_vision.wire.limits import image_tokens_for_pixels

if TYPE_CHECKING:
    from integration_tests.conftest import RunningEmulator

TEXTS = 1_800
IMAGES = 200
FLAGS = (
    "--fail-rate", "0.1",
    "--throttle-rate", "0.03",
    "--drop-rate", "0.02",
    "--max-concurrency", "4",
    "--retry-after", "0.01",
    "--seed", "7",
)  # fmt: skip


def _tiny_png(seed: int) -> bytes:
    from PIL import Image as PILImage

    rng = random.Random(seed)
    picture = PILImage.new("RGB", (24, 18))
    picture.putdata([(rng.randrange(256), rng.randrange(256), rng.randrange(256))] * (24 * 18))
    picture.putpixel((rng.randrange(24), rng.randrange(18)), (0, 0, 0))
    buffer = io.BytesIO()
    picture.save(buffer, "PNG")
    return buffer.getvalue()


def _parts() -> tuple[list[Part], list[bytes]]:
    rng = random.Random(2000)
    words = ("red", "green", "blue", "bicycle", "harbour", "river", "lantern", "market", "tea")
    texts = []
    for i in range(TEXTS):
        texts.append(f"{i}: " + " ".join(rng.choice(words) for _ in range(rng.randint(1, 12))))
    images = [_tiny_png(i) for i in range(IMAGES)]
    parts: list[Part] = list(texts)
    # Spread the images through the call so text and media requests interleave.
    for position, data in enumerate(images):
        parts.insert(position * 10 + 5, Image(data))
    return parts, images


def _check(result: EmbedResult, parts: list[Part], server: RunningEmulator) -> None:
    assert len(result.vectors) == len(parts) == TEXTS + IMAGES
    # Every vector is the one the emulator makes for that part, in the part's place.
    for index, part in enumerate(parts):
        if isinstance(part, str):
            expected = text_vector(part, 768)
        else:
            assert isinstance(part, (Image, Video)) and isinstance(part.source, bytes)
            expected = pixel_vector(thumbnail(part.source, 10**8)[2], 768)
        assert result.vectors[index] == expected, f"part {index} has the wrong vector"

    expected_tokens = sum(estimate_text_tokens(p) for p in parts if isinstance(p, str)) + (
        IMAGES * image_tokens_for_pixels(24, 18)
    )
    stats = server.stats()
    # Each part billed once: by the client's own account and by the server's.
    assert result.usage.prompt_tokens == expected_tokens
    assert stats["billed_parts"] == TEXTS + IMAGES
    assert stats["billed_tokens"] == expected_tokens
    # ... and the faults did happen.
    assert stats["failed"] > 0
    assert stats["throttled"] > 0
    assert stats["dropped"] > 0
    assert result.usage.retries > 0
    assert stats["requests"] == result.usage.requests


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_2000_parts_with_faults(start_emulator: Callable[..., RunningEmulator], mode: str) -> None:
    server = start_emulator(*FLAGS)
    parts, _ = _parts()
    options = {
        "base_url": server.base_url,
        "max_concurrency": 8,
        "max_retries": 10,
        "max_parts_per_request": 5,
    }
    if mode == "sync":
        with Client(server.api_key, **options) as client:  # type: ignore[arg-type]
            # Backoff runs at 1/50 speed: the test is about bookkeeping, not waiting.
            client._sleep = lambda seconds: time.sleep(seconds / 50)
            result = client.embed(parts)
    else:

        async def main() -> EmbedResult:
            async with AsyncClient(server.api_key, **options) as client:  # type: ignore[arg-type]
                client._sleep = lambda seconds: asyncio.sleep(seconds / 50)
                return await client.embed(parts)

        result = asyncio.run(main())
    _check(result, parts, server)
