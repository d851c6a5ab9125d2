"""Fixtures of the LangChain unit tests: a fake gateway behind ``httpx.MockTransport`` and
embeddings wired to it. Nothing here opens a socket."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from _langchain_fakes import KEY, FakeGateway

from tongyi_vision.langchain import TongyiVisionEmbeddings


@pytest.fixture
def gateway() -> FakeGateway:
    return FakeGateway()


@pytest.fixture
def make_embeddings(gateway: FakeGateway) -> Iterator[Callable[..., TongyiVisionEmbeddings]]:
    """``make_embeddings(**fields)``: embeddings whose sync and async HTTP go to ``gateway``."""
    made: list[tuple[httpx.Client, httpx.AsyncClient]] = []

    def make(**fields: Any) -> TongyiVisionEmbeddings:
        fields.setdefault("api_key", KEY)
        http = httpx.Client(transport=httpx.MockTransport(gateway.answer))
        ahttp = httpx.AsyncClient(transport=httpx.MockTransport(gateway.answer_async))
        made.append((http, ahttp))
        return TongyiVisionEmbeddings(http_client=http, http_async_client=ahttp, **fields)

    yield make
    for http, _ in made:
        http.close()
