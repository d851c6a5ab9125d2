"""LlamaIndex against the real service; runs only when a key is set, skipped otherwise.

``EMPIRIOLABS_API_KEY`` runs it through the gateway (openai dialect),
``DASHSCOPE_API_KEY`` through Model Studio (dashscope dialect). A handful of
small requests: fractions of a cent.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from llama_index.core import Document
from llama_index.core.indices import MultiModalVectorStoreIndex
from PIL import Image as PILImage
from PIL import ImageDraw

from tongyi_vision.llama_index import TongyiImageReader, TongyiVisionEmbedding

pytestmark = pytest.mark.live

VARIABLES = {"openai": "EMPIRIOLABS_API_KEY", "dashscope": "DASHSCOPE_API_KEY"}
KEYS = {dialect: os.environ.get(variable) for dialect, variable in VARIABLES.items()}


@pytest.fixture(params=sorted(KEYS))
def embedding(request: pytest.FixtureRequest) -> Iterator[TongyiVisionEmbedding]:
    key = KEYS[request.param]
    if not key:
        pytest.skip(f"live API test: set {VARIABLES[request.param]} to run it")
    with TongyiVisionEmbedding(api_key=key, dialect=request.param) as model:
        yield model


def shape(path: Path, colour: tuple[int, int, int], kind: str, size: int) -> Path:
    picture = PILImage.new("RGB", (size, size), (250, 250, 250))
    pen = ImageDraw.Draw(picture)
    box = (size // 6, size // 6, size - size // 6, size - size // 6)
    (pen.ellipse if kind == "circle" else pen.rectangle)(box, fill=colour)
    picture.save(path)
    return path


def test_text_and_image_retrieval_on_the_live_service(
    embedding: TongyiVisionEmbedding, tmp_path: Path
) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    shape(photos / "red-circle.png", (220, 20, 20), "circle", 256)
    shape(photos / "blue-square.png", (20, 40, 220), "square", 256)
    query = shape(tmp_path / "small-red-circle.png", (220, 20, 20), "circle", 96)
    documents = [
        *TongyiImageReader().load_data(photos),
        Document(text="A recipe for bread with flour, water and salt."),
        Document(text="Train timetables for the northern line."),
    ]

    index = MultiModalVectorStoreIndex.from_documents(
        documents, embed_model=embedding, image_embed_model=embedding
    )
    retriever = index.as_retriever(similarity_top_k=1, image_similarity_top_k=2)

    by_image = retriever.image_to_image_retrieve(str(query))
    by_words = retriever.text_to_image_retrieve("a red circle")
    texts = retriever.text_retrieve("how do I bake bread?")

    assert by_image[0].node.metadata["file_name"] == "red-circle.png"
    assert by_words[0].node.metadata["file_name"] == "red-circle.png"
    assert "bread" in texts[0].node.get_content()
    assert embedding.usage.total_tokens > 0
