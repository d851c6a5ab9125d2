"""Fixtures of the LlamaIndex unit tests: a fake service behind ``httpx.MockTransport`` and
embedding models wired to it. Nothing here opens a socket."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from _llama_index_fakes import KEY, FakeService

from tongyi_vision.llama_index import TongyiVisionEmbedding


@pytest.fixture
def service() -> FakeService:
    return FakeService()


@pytest.fixture
def make_embedding(service: FakeService) -> Iterator[Callable[..., TongyiVisionEmbedding]]:
    """``make_embedding(**fields)``: a model whose sync and async requests go to ``service``."""
    made: list[tuple[httpx.Client, httpx.AsyncClient]] = []

    def make(**fields: Any) -> TongyiVisionEmbedding:
        fields.setdefault("api_key", KEY)
        http = httpx.Client(transport=httpx.MockTransport(service.answer))
        ahttp = httpx.AsyncClient(transport=httpx.MockTransport(service.answer_async))
        made.append((http, ahttp))
        return TongyiVisionEmbedding(http_client=http, http_async_client=ahttp, **fields)

    yield make
    for http, ahttp in made:
        http.close()
        # MockTransport holds no connections, so closing on a fresh loop is safe.
        asyncio.run(ahttp.aclose())
