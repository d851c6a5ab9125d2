"""Tests against the real service. They run only when a key is set and are skipped otherwise.

``EMPIRIOLABS_API_KEY`` enables the openai-dialect (gateway) tests,
``DASHSCOPE_API_KEY`` the native ones. They send a few small requests
(fractions of a cent) and check the contract the emulator copies.
"""

from __future__ import annotations

import io
import math
import os

import pytest

from tongyi_vision import Client, Image

pytestmark = pytest.mark.live

GATEWAY_KEY = os.environ.get("EMPIRIOLABS_API_KEY")
NATIVE_KEY = os.environ.get("DASHSCOPE_API_KEY")

needs_gateway = pytest.mark.skipif(
    not GATEWAY_KEY, reason="live API test: set EMPIRIOLABS_API_KEY to run it against the gateway"
)
needs_native = pytest.mark.skipif(
    not NATIVE_KEY, reason="live API test: set DASHSCOPE_API_KEY to run it against Model Studio"
)


def _png() -> bytes:
    from PIL import Image as PILImage

    buffer = io.BytesIO()
    PILImage.new("RGB", (64, 48), (200, 30, 30)).save(buffer, "PNG")
    return buffer.getvalue()


def _check(client: Client) -> None:
    result = client.embed(["a red square", Image(_png())])
    assert len(result.vectors) == 2
    assert all(len(v) == client.dimension for v in result.vectors)
    assert all(math.isfinite(x) for v in result.vectors for x in v)
    assert result.usage.prompt_tokens > 0


@needs_gateway
def test_gateway_text_and_image() -> None:
    with Client(GATEWAY_KEY, dialect="openai") as client:
        _check(client)


@needs_native
def test_native_text_and_image() -> None:
    with Client(NATIVE_KEY, dialect="dashscope") as client:
        _check(client)


@needs_native
def test_native_dimension() -> None:
    with Client(NATIVE_KEY, dialect="dashscope", dimension=256) as client:
        assert len(client.embed(["short"]).vectors[0]) == 256


@needs_gateway
def test_gateway_with_openai_package() -> None:
    import openai

    assert GATEWAY_KEY is not None
    from tongyi_vision.engine.config import DIALECT_DEFAULTS

    gateway = DIALECT_DEFAULTS["openai"][1]
    with openai.OpenAI(base_url=gateway + "/v1", api_key=GATEWAY_KEY) as client:
        response = client.embeddings.create(model="tongyi-embedding-vision-flash", input=["a", "b"])
    assert [d.index for d in response.data] == [0, 1]
