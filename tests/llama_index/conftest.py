"""Fixtures of the LlamaIndex unit tests: a fake service behind ``httpx.MockTransport`` and
embedding models wired to it. Nothing here opens a socket."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests._service_fakes import MockHttpClients
from tests.llama_index._llama_index_fakes import KEY, FakeService
from tongyi_vision.llama_index import TongyiVisionEmbedding


@pytest.fixture
def service() -> FakeService:
    return FakeService()


@pytest.fixture
def make_embedding(service: FakeService) -> Iterator[Callable[..., TongyiVisionEmbedding]]:
    """``make_embedding(**fields)``: a model whose sync and async requests go to ``service``."""
    clients = MockHttpClients(service)

    def make(**fields: Any) -> TongyiVisionEmbedding:
        fields.setdefault("api_key", KEY)
        http, ahttp = clients.pair()
        return TongyiVisionEmbedding(http_client=http, http_async_client=ahttp, **fields)

    yield make
    clients.close()
