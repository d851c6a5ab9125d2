"""The official ``openai`` package against the emulator: a client nobody here wrote."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import TYPE_CHECKING

import openai
import pytest

from tongyi_vision import estimate_text_tokens

if TYPE_CHECKING:
    from integration_tests.conftest import RunningEmulator

FLASH = "tongyi-embedding-vision-flash"


@pytest.fixture
def client(emulator: RunningEmulator) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=emulator.base_url + "/v1", api_key=emulator.api_key) as client:
        yield client


def test_one_string(client: openai.OpenAI) -> None:
    response = client.embeddings.create(model=FLASH, input="a red bicycle")
    assert len(response.data) == 1
    vector = response.data[0].embedding
    assert len(vector) == 768
    assert math.isclose(sum(x * x for x in vector), 1.0, rel_tol=1e-5)
    assert response.model == FLASH
    assert response.usage.prompt_tokens == estimate_text_tokens("a red bicycle")


def test_list_of_strings_in_order(client: openai.OpenAI) -> None:
    texts = ["first", "second text", "third, a little longer text"]
    response = client.embeddings.create(model=FLASH, input=texts)
    assert [d.index for d in response.data] == [0, 1, 2]
    alone = client.embeddings.create(model=FLASH, input=texts[1], encoding_format="float")
    # The default request asks for base64 float32, so compare at float32 precision.
    assert (
        max(
            abs(a - b)
            for a, b in zip(response.data[1].embedding, alone.data[0].embedding, strict=True)
        )
        < 1e-6
    )
    assert response.usage.total_tokens == sum(estimate_text_tokens(t) for t in texts)


def test_plus_model(client: openai.OpenAI) -> None:
    response = client.embeddings.create(
        model="tongyi-embedding-vision-plus", input=["x"], encoding_format="float"
    )
    assert len(response.data[0].embedding) == 1152


def test_errors_map_to_openai_exceptions(emulator: RunningEmulator) -> None:
    url = emulator.base_url + "/v1"
    wrong_key = openai.OpenAI(base_url=url, api_key="wrong", max_retries=0)
    with wrong_key, pytest.raises(openai.AuthenticationError) as auth:
        wrong_key.embeddings.create(model=FLASH, input="x")
    assert auth.value.code == "InvalidApiKey"
    with openai.OpenAI(base_url=url, api_key=emulator.api_key) as right_key:
        with pytest.raises(openai.NotFoundError):
            right_key.embeddings.create(model="no-such-model", input="x")
        with pytest.raises(openai.BadRequestError):
            right_key.embeddings.create(model=FLASH, input="")


def test_async_openai_client(emulator: RunningEmulator) -> None:
    import asyncio

    async def main() -> int:
        async with openai.AsyncOpenAI(
            base_url=emulator.base_url + "/v1", api_key=emulator.api_key
        ) as client:
            response = await client.embeddings.create(model=FLASH, input=["a", "b"])
            return len(response.data)

    assert asyncio.run(main()) == 2
