"""LangChain's standard integration tests for embeddings (langchain-tests), against the emulator."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from langchain_tests.integration_tests import EmbeddingsIntegrationTests

from tongyi_vision.langchain import TongyiVisionEmbeddings


class TestTongyiVisionEmbeddingsIntegration(EmbeddingsIntegrationTests):
    @property
    def embeddings_class(self) -> type[TongyiVisionEmbeddings]:
        return TongyiVisionEmbeddings

    @pytest.fixture
    async def model(self, emulator: Any) -> AsyncIterator[TongyiVisionEmbeddings]:
        # The emulator's address is known only at run time, so the fixture builds the model;
        # it is async so that the connections of the async tests close on their own loop.
        embeddings = TongyiVisionEmbeddings(api_key=emulator.api_key, base_url=emulator.base_url)
        yield embeddings
        await embeddings.aclose()
