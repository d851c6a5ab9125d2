"""LlamaIndex end to end against the emulator process: readers, MultiModalVectorStoreIndex,
retrieval of every kind, persistence, async insertion and retrieval.

The emulator's vectors are not semantic. What they guarantee, and what these
tests rest on: an image is nearest to itself and to a resized copy of itself,
texts sharing words are closer than texts sharing none, and the same input
always gives the same vector.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from llama_index.core import Document, StorageContext, load_index_from_storage
from llama_index.core.indices import MultiModalVectorStoreIndex
from llama_index.core.ingestion import IngestionPipeline
from llama_index.core.node_parser import SentenceSplitter
from llama_index.core.schema import ImageNode, NodeWithScore

from tongyi_vision import CorruptMediaError
from tongyi_vision.llama_index import (
    SkippedFileWarning,
    TongyiImageReader,
    TongyiVisionEmbedding,
)
from tongyi_vision.samples import draw_shape

# Shapes in distinct colours, so that "nearest image" has one right answer.
PICTURES = {
    "red-circle.png": ((220, 30, 40), "circle"),
    "blue-square.png": ((30, 70, 200), "square"),
    "green-triangle.png": ((30, 160, 60), "triangle"),
    "yellow-stripes.png": ((230, 200, 20), "stripes"),
}
TEXTS = [
    "A red bicycle leans against a brick wall in the morning sun.",
    "Blue ocean waves roll onto a quiet sandy beach.",
    "The recipe needs two cups of flour, one egg and a pinch of salt.",
]


@pytest.fixture(scope="module")
def pictures(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of four PNGs; ``queries/`` beside it holds half-size copies of each."""
    root = tmp_path_factory.mktemp("llama-index-media")
    folder, queries = root / "pictures", root / "queries"
    folder.mkdir()
    queries.mkdir()
    for name, (colour, shape) in PICTURES.items():
        draw_shape(shape, colour, 192).save(folder / name)
        draw_shape(shape, colour, 96).save(queries / name)
    return folder


def query_image(pictures: Path, name: str) -> str:
    return str(pictures.parent / "queries" / name)


@pytest.fixture(params=["openai", "dashscope"])
def embedding(request: pytest.FixtureRequest, emulator: object) -> Iterator[TongyiVisionEmbedding]:
    model = TongyiVisionEmbedding(
        api_key=emulator.api_key,  # type: ignore[attr-defined]
        base_url=emulator.base_url,  # type: ignore[attr-defined]
        dialect=request.param,
    )
    yield model
    model.close()


def build_index(
    embedding: TongyiVisionEmbedding, pictures: Path, storage: StorageContext | None = None
) -> MultiModalVectorStoreIndex:
    documents = [*TongyiImageReader().load_data(pictures), *(Document(text=t) for t in TEXTS)]
    # One instance for both roles: text and images share one vector space.
    return MultiModalVectorStoreIndex.from_documents(
        documents,
        embed_model=embedding,
        image_embed_model=embedding,
        storage_context=storage or StorageContext.from_defaults(),
    )


def file_names(results: list[NodeWithScore]) -> list[str]:
    return [r.node.metadata["file_name"] for r in results]


def summary(results: list[NodeWithScore]) -> list[tuple[str, float]]:
    return [(r.node.node_id, round(r.score or 0.0, 9)) for r in results]


def test_retrieve_finds_texts_by_shared_words_and_returns_images(
    embedding: TongyiVisionEmbedding, pictures: Path
) -> None:
    index = build_index(embedding, pictures)
    retriever = index.as_retriever(similarity_top_k=2, image_similarity_top_k=2)

    results = retriever.retrieve("a red bicycle against a brick wall")

    texts = [r for r in results if not isinstance(r.node, ImageNode)]
    images = [r for r in results if isinstance(r.node, ImageNode)]
    assert texts[0].node.get_content() == TEXTS[0]
    assert len(images) == 2
    for result in images:
        assert isinstance(result.node, ImageNode)
        assert result.node.image_path is not None
        assert Path(result.node.image_path).parent == pictures.resolve()
        assert result.node.metadata["mime_type"] == "image/png"
        assert result.node.metadata["width"] == result.node.metadata["height"] == 192


def test_text_to_image_retrieve_searches_the_images(
    embedding: TongyiVisionEmbedding, pictures: Path
) -> None:
    index = build_index(embedding, pictures)
    retriever = index.as_retriever(image_similarity_top_k=4)

    first = retriever.text_to_image_retrieve("a blue square")
    again = retriever.text_to_image_retrieve("a blue square")

    assert sorted(file_names(first)) == sorted(PICTURES)
    assert summary(first) == summary(again)  # same query, same vector, same ranking


@pytest.mark.parametrize("name", sorted(PICTURES))
def test_image_to_image_retrieve_finds_the_original_of_a_resized_copy(
    embedding: TongyiVisionEmbedding, pictures: Path, name: str
) -> None:
    index = build_index(embedding, pictures)

    results = index.as_retriever(image_similarity_top_k=2).image_to_image_retrieve(
        query_image(pictures, name)
    )

    assert file_names(results)[0] == name
    assert (results[0].score or 0.0) > (results[1].score or 0.0)


def test_persisted_index_reloads_and_retrieves_the_same(
    embedding: TongyiVisionEmbedding, pictures: Path, tmp_path: Path
) -> None:
    index = build_index(embedding, pictures)
    retriever = index.as_retriever(similarity_top_k=2, image_similarity_top_k=2)
    query = "blue ocean waves on a beach"
    before = summary(retriever.retrieve(query))
    before_image = summary(
        retriever.image_to_image_retrieve(query_image(pictures, "green-triangle.png"))
    )
    index.storage_context.persist(persist_dir=str(tmp_path / "store"))

    reloaded = load_index_from_storage(
        StorageContext.from_defaults(persist_dir=str(tmp_path / "store")),
        embed_model=embedding,
        image_embed_model=embedding,
    )
    assert isinstance(reloaded, MultiModalVectorStoreIndex)
    again = reloaded.as_retriever(similarity_top_k=2, image_similarity_top_k=2)

    assert summary(again.retrieve(query)) == before
    assert summary(again.image_to_image_retrieve(query_image(pictures, "green-triangle.png"))) == (
        before_image
    )
    assert file_names(again.image_to_image_retrieve(query_image(pictures, "green-triangle.png")))[
        0
    ] == ("green-triangle.png")


async def test_async_retrieve_matches_sync_retrieve(
    embedding: TongyiVisionEmbedding, pictures: Path
) -> None:
    index = build_index(embedding, pictures)
    retriever = index.as_retriever(similarity_top_k=2, image_similarity_top_k=2)
    try:
        sync_results = retriever.retrieve("a pinch of salt and flour")
        async_results = await retriever.aretrieve("a pinch of salt and flour")
        async_images = await retriever.aimage_to_image_retrieve(
            query_image(pictures, "red-circle.png")
        )
    finally:
        await embedding.aclose()

    assert summary(async_results) == summary(sync_results)
    assert async_results[0].node.get_content() == TEXTS[2]
    assert file_names(async_images)[0] == "red-circle.png"


# MultiModalVectorStoreIndex (llama-index-core 0.14) marks its image store empty after an
# insert that holds no image, and its text store after one that holds no text, and never
# clears the mark: so each test below searches only the kind it inserted.


async def test_async_insert_of_an_image_then_image_retrieval(
    embedding: TongyiVisionEmbedding, pictures: Path, tmp_path: Path
) -> None:
    index = build_index(embedding, pictures)
    draw_shape("circle", (130, 40, 170), 160).save(tmp_path / "purple-ring.png")
    draw_shape("circle", (130, 40, 170), 80).save(tmp_path / "purple-small.png")
    (document,) = TongyiImageReader().load_data(tmp_path / "purple-ring.png")
    try:
        await index.ainsert(document)
        nearest = await index.as_retriever(image_similarity_top_k=1).aimage_to_image_retrieve(
            str(tmp_path / "purple-small.png")
        )
    finally:
        await embedding.aclose()

    assert file_names(nearest) == ["purple-ring.png"]


async def test_async_insert_of_a_text_then_text_retrieval(
    embedding: TongyiVisionEmbedding, pictures: Path
) -> None:
    index = build_index(embedding, pictures)
    try:
        await index.ainsert(Document(text="Purple kites drift above the windy hill."))
        found = await index.as_retriever(similarity_top_k=1).aretrieve("purple kites on a hill")
    finally:
        await embedding.aclose()

    assert found[0].node.get_content() == "Purple kites drift above the windy hill."


async def test_async_insert_of_both_kinds_together_keeps_both_searchable(
    embedding: TongyiVisionEmbedding, pictures: Path, tmp_path: Path
) -> None:
    index = build_index(embedding, pictures)
    draw_shape("circle", (130, 40, 170), 160).save(tmp_path / "purple-ring.png")
    draw_shape("circle", (130, 40, 170), 80).save(tmp_path / "purple-small.png")
    documents = [
        *TongyiImageReader().load_data(tmp_path / "purple-ring.png"),
        Document(text="Purple kites drift above the windy hill."),
    ]
    nodes = SentenceSplitter().get_nodes_from_documents(documents)
    try:
        await index.ainsert_nodes(nodes)
        retriever = index.as_retriever(similarity_top_k=1, image_similarity_top_k=1)
        texts = await retriever.atext_retrieve("purple kites on a hill")
        images = await retriever.aimage_to_image_retrieve(str(tmp_path / "purple-small.png"))
    finally:
        await embedding.aclose()

    assert texts[0].node.get_content() == "Purple kites drift above the windy hill."
    assert file_names(images) == ["purple-ring.png"]


def test_index_built_with_use_async(embedding: TongyiVisionEmbedding, pictures: Path) -> None:
    documents = [*TongyiImageReader().load_data(pictures), *(Document(text=t) for t in TEXTS)]
    index = MultiModalVectorStoreIndex.from_documents(
        documents, embed_model=embedding, image_embed_model=embedding, use_async=True
    )

    results = index.as_retriever(image_similarity_top_k=1).image_to_image_retrieve(
        query_image(pictures, "yellow-stripes.png")
    )

    assert file_names(results) == ["yellow-stripes.png"]


def test_a_bad_image_in_the_folder_is_reported_and_the_rest_indexed(
    embedding: TongyiVisionEmbedding, pictures: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    for name in ("red-circle.png", "blue-square.png"):
        (folder / name).write_bytes((pictures / name).read_bytes())
    whole = (pictures / "green-triangle.png").read_bytes()
    (folder / "cut-short.png").write_bytes(whole[: len(whole) // 3])
    (folder / "not-really.jpg").write_text("a text file with an image's name")
    reader = TongyiImageReader()

    with pytest.warns(SkippedFileWarning):
        documents = reader.load_data(folder)
    index = MultiModalVectorStoreIndex.from_documents(
        documents, embed_model=embedding, image_embed_model=embedding
    )

    assert sorted(e.path.rsplit("/", 1)[-1] for e in reader.errors) == [
        "cut-short.png",
        "not-really.jpg",
    ]
    results = index.as_retriever(image_similarity_top_k=5).text_to_image_retrieve("shapes")
    assert sorted(file_names(results)) == ["blue-square.png", "red-circle.png"]

    with pytest.raises(CorruptMediaError, match=r"cut-short\.png"):
        TongyiImageReader(on_error="raise").load_data(folder)


def test_async_methods_on_fresh_event_loops_close_their_connections(
    embedding: TongyiVisionEmbedding,
) -> None:
    # Each asyncio.run() is a new loop with its own connections; they must be closed when
    # that loop shuts down (an unclosed socket would fail this run: warnings are errors).
    first = asyncio.run(embedding.aget_query_embedding("a red bicycle"))
    second = asyncio.run(embedding.aget_text_embedding_batch(["a red bicycle", "a blue sea"]))

    assert second[0] == first
    assert embedding.usage.requests == 2


def test_an_ingestion_pipeline_embeds_images_as_images_for_the_index(
    embedding: TongyiVisionEmbedding, pictures: Path
) -> None:
    documents = [*TongyiImageReader().load_data(pictures), *(Document(text=t) for t in TEXTS)]
    pipeline = IngestionPipeline(transformations=[SentenceSplitter(), embedding])

    nodes = pipeline.run(documents=documents)
    requests_after_pipeline = embedding.usage.requests
    index = MultiModalVectorStoreIndex(nodes, embed_model=embedding, image_embed_model=embedding)

    assert embedding.usage.requests == requests_after_pipeline  # the index kept those vectors
    results = index.as_retriever(image_similarity_top_k=1).image_to_image_retrieve(
        query_image(pictures, "blue-square.png")
    )
    assert file_names(results) == ["blue-square.png"]
