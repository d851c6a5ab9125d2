"""Sent request bodies are freed when their request is done, not at the next GC cycle."""

from __future__ import annotations

import gc
import io
import json
import random
import tracemalloc
from collections.abc import Iterator

import httpx
import pytest
from PIL import Image as PILImage

from tongyi_vision import AsyncClient, Client, Image


def _noisy_png(seed: int) -> bytes:
    rng = random.Random(seed)
    pixels = bytes(rng.getrandbits(8) for _ in range(400 * 400))
    buffer = io.BytesIO()
    PILImage.frombytes("L", (400, 400), pixels).save(buffer, "PNG")
    return buffer.getvalue()


def _answer(request: httpx.Request) -> httpx.Response:
    count = len(json.loads(request.content)["input"]["contents"])
    data = [{"index": i, "embedding": [0.5] * 768} for i in range(count)]
    return httpx.Response(200, json={"data": data, "usage": {"prompt_tokens": 1}})


@pytest.fixture
def no_gc() -> Iterator[None]:
    # With the cyclic collector off, only reference counting frees memory: a body kept
    # alive by a reference cycle stays measurable.
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


IMAGES = [_noisy_png(seed) for seed in range(40)]
SENT = sum(len(image) for image in IMAGES) * 4 // 3  # base64 bodies


def test_sync_client_frees_sent_bodies(no_gc: None) -> None:
    http = httpx.Client(transport=httpx.MockTransport(_answer))
    with Client(api_key="k", http_client=http, max_concurrency=1) as client:
        tracemalloc.start()
        try:
            client.embed([Image(data) for data in IMAGES])
            held, _ = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert held < SENT / 4, f"{held:,} bytes still held after sending {SENT:,}"


async def test_async_client_frees_sent_bodies(no_gc: None) -> None:
    http = httpx.AsyncClient(transport=httpx.MockTransport(_answer))
    async with AsyncClient(api_key="k", http_client=http, max_concurrency=1) as client:
        tracemalloc.start()
        try:
            await client.embed([Image(data) for data in IMAGES])
            held, _ = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        await http.aclose()
    assert held < SENT / 4, f"{held:,} bytes still held after sending {SENT:,}"
