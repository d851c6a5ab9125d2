"""Fixtures of the LangChain unit tests: a fake gateway behind ``httpx.MockTransport`` and
embeddings wired to it. Nothing here opens a socket."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests._service_fakes import MockHttpClients
from tests.langchain._langchain_fakes import KEY, FakeGateway
from tongyi_vision.langchain import TongyiVisionEmbeddings


@pytest.fixture
def gateway() -> FakeGateway:
    return FakeGateway()


@pytest.fixture
def make_embeddings(gateway: FakeGateway) -> Iterator[Callable[..., TongyiVisionEmbeddings]]:
    """``make_embeddings(**fields)``: embeddings whose sync and async HTTP go to ``gateway``."""
    clients = MockHttpClients(gateway)

    def make(**fields: Any) -> TongyiVisionEmbeddings:
        fields.setdefault("api_key", KEY)
        http, ahttp = clients.pair()
        return TongyiVisionEmbeddings(http_client=http, http_async_client=ahttp, **fields)

    yield make
    clients.close()
