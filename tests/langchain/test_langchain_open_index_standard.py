"""LangChain's standard vector store tests (langchain-tests) against ``TongyiIndexStore``: a
fresh index table per test, embedded by the suite's own deterministic fake embeddings."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from langchain_tests.integration_tests import VectorStoreIntegrationTests
from langchain_tests.integration_tests.vectorstores import EMBEDDING_SIZE

from tongyi_vision.index import IndexInfo, IndexTable
from tongyi_vision.langchain import TongyiIndexStore


class TestTongyiIndexStoreStandard(VectorStoreIntegrationTests):
    @pytest.fixture
    def vectorstore(self, tmp_path: Path) -> Iterator[TongyiIndexStore]:
        table = IndexTable.create(
            tmp_path / "index", IndexInfo("fake-model", EMBEDDING_SIZE, "openai"), consistent=True
        )
        with TongyiIndexStore(table, self.get_embeddings()) as store:
            yield store
