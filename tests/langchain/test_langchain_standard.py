"""LangChain's standard unit tests for embeddings (langchain-tests), with sockets blocked."""

from __future__ import annotations

from typing import Any

from langchain_tests.unit_tests import EmbeddingsUnitTests

from tongyi_vision import FLASH
from tongyi_vision.langchain import TongyiVisionEmbeddings


class TestTongyiVisionEmbeddingsStandard(EmbeddingsUnitTests):
    @property
    def embeddings_class(self) -> type[TongyiVisionEmbeddings]:
        return TongyiVisionEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return {"api_key": "sk-standard-unit", "model": FLASH}

    @property
    def init_from_env_params(self) -> tuple[dict[str, str], dict[str, Any], dict[str, Any]]:
        return (
            {
                "EMPIRIOLABS_API_KEY": "sk-from-env",
                "TONGYI_VISION_BASE_URL": "http://127.0.0.1:9/",
            },
            {"model": FLASH},
            {
                "api_key": "sk-from-env",
                "base_url": "http://127.0.0.1:9",
                "model": FLASH,
                "dialect": "openai",
            },
        )
