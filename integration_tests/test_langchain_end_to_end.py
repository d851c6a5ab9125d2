"""LangChain end to end against the emulator: loaders, vector stores, retrievers, chains.

The emulator's vectors are not semantic. What they do guarantee, and what these
tests lean on: an image is nearest to itself and to a resized copy of itself
(pixel features), texts sharing words are closer than texts sharing none
(lexical features), and equal inputs give equal vectors.
"""

from __future__ import annotations

import asyncio
import base64
import math
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.documents import Document
from langchain_core.runnables import RunnableLambda, RunnablePassthrough
from langchain_core.vectorstores import InMemoryVectorStore
from PIL import Image as PILImage

from tongyi_vision import file_uri
from tongyi_vision.langchain import TongyiImageLoader, TongyiVisionEmbeddings
from tongyi_vision.samples import draw_shape

SHAPES = {
    "red-circle": ((220, 30, 40), "circle"),
    "blue-square": ((30, 70, 200), "square"),
    "green-triangle": ((30, 160, 60), "triangle"),
    "yellow-stripes": ((230, 200, 20), "stripes"),
}
CAPTIONS = [
    "a red circle on a white background",
    "a blue square on a white background",
    "a green triangle pointing up",
    "yellow stripes across the picture",
]


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of four distinct pictures, and beside it resized copies to query with."""
    root = tmp_path_factory.mktemp("media")
    (root / "photos").mkdir()
    (root / "queries").mkdir()
    for name, (colour, shape) in SHAPES.items():
        draw_shape(shape, colour, 160).save(root / "photos" / f"{name}.png")
        # A smaller JPEG of the same picture: other bytes, nearly the same pixels.
        draw_shape(shape, colour, 160).resize((96, 96)).save(
            root / "queries" / f"{name}.jpg", "JPEG"
        )
    return root


@pytest.fixture
async def embeddings(emulator: Any) -> AsyncIterator[TongyiVisionEmbeddings]:
    # These tests ask image questions through the text API (a file:// URI as the query),
    # which reads a local file: the opt-in for query text that the application trusts.
    model = TongyiVisionEmbeddings(
        api_key=emulator.api_key, base_url=emulator.base_url, read_query_files=True
    )
    yield model
    await model.aclose()


def stem(document: Document) -> str:
    return Path(document.metadata["source"]).stem


def cosine(a: list[float], b: list[float]) -> float:
    dot = math.fsum(x * y for x, y in zip(a, b, strict=True))
    return dot / math.sqrt(math.fsum(x * x for x in a) * math.fsum(y * y for y in b))


# --- any vector store, through add_documents ---


def test_loaded_images_go_into_a_vector_store_as_image_vectors(
    embeddings: TongyiVisionEmbeddings, media: Path
) -> None:
    store = InMemoryVectorStore(embeddings)
    documents = TongyiImageLoader(media / "photos").load()

    ids = store.add_documents(documents)

    assert [stem(d) for d in documents] == sorted(SHAPES)
    image_vectors = embeddings.embed_image([d.metadata["source"] for d in documents])
    text_vectors = embeddings.embed_documents(
        [d.page_content for d in documents]
    )  # the same URIs: media references again
    uri_as_text = TongyiVisionEmbeddings(
        api_key=embeddings.api_key,
        base_url=embeddings.base_url,
        embed_media_references=False,
    )
    for id_, image_vector, text_vector in zip(ids, image_vectors, text_vectors, strict=True):
        stored = store.store[id_]["vector"]
        assert cosine(stored, image_vector) == pytest.approx(1.0)
        assert cosine(stored, text_vector) == pytest.approx(1.0)
    # Without media references the same strings would have been embedded as text.
    literal = uri_as_text.embed_documents([documents[0].page_content])[0]
    assert cosine(literal, image_vectors[0]) < 0.5
    uri_as_text.close()


def test_a_text_query_brings_image_documents_back(
    embeddings: TongyiVisionEmbeddings, media: Path
) -> None:
    store = InMemoryVectorStore(embeddings)
    store.add_documents(TongyiImageLoader(media / "photos").load())

    found = store.similarity_search("a blue square", k=4)

    assert sorted(stem(d) for d in found) == sorted(SHAPES)
    for document in found:
        assert document.page_content == file_uri(document.metadata["source"])
        assert document.metadata["mime_type"] == "image/png"
        assert (document.metadata["width"], document.metadata["height"]) == (160, 160)


def test_images_and_texts_in_one_store(embeddings: TongyiVisionEmbeddings, media: Path) -> None:
    store = InMemoryVectorStore(embeddings)
    store.add_documents(TongyiImageLoader(media / "photos").load())
    store.add_documents([Document(page_content=c, metadata={"source": c}) for c in CAPTIONS])

    by_text = store.similarity_search("which picture shows a blue square?", k=1)
    by_image = store.similarity_search(file_uri(str(media / "queries" / "green-triangle.jpg")), k=1)

    assert by_text[0].page_content == "a blue square on a white background"
    assert stem(by_image[0]) == "green-triangle"


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_image_to_image_search_finds_the_same_picture_first(
    embeddings: TongyiVisionEmbeddings, media: Path, name: str
) -> None:
    store = InMemoryVectorStore(embeddings)
    store.add_documents(TongyiImageLoader(media / "photos").load())

    (query,) = embeddings.embed_image([str(media / "queries" / f"{name}.jpg")])
    found = store.similarity_search_by_vector(query, k=4)

    assert stem(found[0]) == name
    assert sorted(stem(d) for d in found) == sorted(SHAPES)


async def test_async_add_and_search(embeddings: TongyiVisionEmbeddings, media: Path) -> None:
    store = InMemoryVectorStore(embeddings)
    documents = [d async for d in TongyiImageLoader(media / "photos").alazy_load()]
    await store.aadd_documents(documents)

    (query,) = await embeddings.aembed_image([str(media / "queries" / "red-circle.jpg")])
    found = await store.asimilarity_search_by_vector(query, k=1)
    by_reference = await store.asimilarity_search(
        file_uri(str(media / "queries" / "yellow-stripes.jpg")), k=1
    )

    assert stem(found[0]) == "red-circle"
    assert stem(by_reference[0]) == "yellow-stripes"


def test_async_methods_work_from_one_asyncio_run_to_the_next(emulator: Any) -> None:
    model = TongyiVisionEmbeddings(api_key=emulator.api_key, base_url=emulator.base_url)

    async def embed_and_close() -> list[list[float]]:
        vectors = await model.aembed_documents(["one", "two"])
        await model.aclose()
        return vectors

    first = asyncio.run(embed_and_close())
    second = asyncio.run(embed_and_close())  # a new loop: the old connections cannot serve it

    assert first == second
    assert model.usage.requests == 2


async def test_async_and_sync_calls_agree_over_many_requests(emulator: Any) -> None:
    model = TongyiVisionEmbeddings(
        api_key=emulator.api_key, base_url=emulator.base_url, max_concurrency=4
    )
    texts = [f"caption number {i} of a picture" for i in range(100)]  # five requests

    vectors, sync_vectors = await model.aembed_documents(texts), model.embed_documents(texts)
    await model.aclose()

    assert vectors == sync_vectors
    assert model.usage.requests == 10


# --- Chroma: add_images and similarity_search_by_image ---


@pytest.fixture
def chroma(embeddings: TongyiVisionEmbeddings) -> Iterator[Any]:
    chromadb = pytest.importorskip("chromadb")
    langchain_chroma = pytest.importorskip("langchain_chroma")
    # In memory, and without telemetry: nothing leaves the machine.
    settings = chromadb.config.Settings(anonymized_telemetry=False, is_persistent=False)
    store = langchain_chroma.Chroma(
        collection_name=f"tongyi-{uuid.uuid4().hex}",
        embedding_function=embeddings,
        client_settings=settings,
    )
    yield store
    store.delete_collection()


def test_chroma_add_images_and_search_by_image(chroma: Any, media: Path) -> None:
    paths = [str(media / "photos" / f"{name}.png") for name in sorted(SHAPES)]
    chroma.add_images(paths, metadatas=[{"name": name} for name in sorted(SHAPES)])

    for name in SHAPES:
        found = chroma.similarity_search_by_image(str(media / "queries" / f"{name}.jpg"), k=2)
        assert found[0].metadata["name"] == name
        # Chroma keeps each image as base64 text; it decodes back to the file.
        assert (
            base64.b64decode(found[0].page_content)
            == (media / "photos" / f"{name}.png").read_bytes()
        )


def test_chroma_holds_loaded_images_and_finds_them_by_image(chroma: Any, media: Path) -> None:
    chroma.add_documents(TongyiImageLoader(media / "photos").load())

    found = chroma.similarity_search_by_image(str(media / "queries" / "blue-square.jpg"), k=1)
    # (similarity_search_by_image_with_relevance_score is not used: langchain-chroma 1.1
    # hands it a list of vectors where it wants one vector.)
    (query,) = chroma.embeddings.embed_image([str(media / "queries" / "blue-square.jpg")])
    distances = chroma.similarity_search_by_vector_with_relevance_scores(query, k=4)

    assert stem(found[0]) == "blue-square"
    assert found[0].page_content == file_uri(str(media / "photos" / "blue-square.png"))
    assert stem(distances[0][0]) == "blue-square"
    assert distances[0][1] < distances[1][1]  # Chroma's "scores" here are distances


# --- a retriever inside an LCEL chain ---


def format_docs(documents: list[Document]) -> str:
    return "\n".join(f"- {Path(d.metadata['source']).name}" for d in documents)


def fake_llm(prompt: dict[str, str]) -> str:
    """Stands in for a chat model: answers with the context it was given."""
    return f"Q: {prompt['question']}\nLooked at:\n{prompt['context']}"


@pytest.fixture
def chain_and_store(embeddings: TongyiVisionEmbeddings, media: Path) -> tuple[Any, Any]:
    store = InMemoryVectorStore(embeddings)
    store.add_documents(TongyiImageLoader(media / "photos").load())
    store.add_documents(
        [Document(page_content=c, metadata={"source": f"{i}.txt"}) for i, c in enumerate(CAPTIONS)]
    )
    retriever = store.as_retriever(search_kwargs={"k": 1})
    chain = {
        "context": retriever | format_docs,
        "question": RunnablePassthrough(),
    } | RunnableLambda(fake_llm)
    return chain, store


def test_a_retriever_in_a_chain_answers_image_and_text_questions(
    chain_and_store: tuple[Any, Any], media: Path
) -> None:
    chain, _ = chain_and_store

    by_image = chain.invoke(file_uri(str(media / "queries" / "red-circle.jpg")))
    by_text = chain.invoke("show me the yellow stripes")

    assert by_image.endswith("Looked at:\n- red-circle.png")
    assert by_text.endswith("Looked at:\n- 3.txt")


async def test_the_chain_runs_async(chain_and_store: tuple[Any, Any], media: Path) -> None:
    chain, _ = chain_and_store
    questions = [file_uri(str(media / "queries" / f"{name}.jpg")) for name in sorted(SHAPES)]

    answers = await chain.abatch(questions)

    assert [a.rsplit("- ", 1)[1] for a in answers] == [f"{n}.png" for n in sorted(SHAPES)]


# --- the native dialect ---


async def test_the_native_dialect_with_a_smaller_dimension(emulator: Any, media: Path) -> None:
    model = TongyiVisionEmbeddings(
        api_key=emulator.api_key, base_url=emulator.base_url, dialect="dashscope", dimension=256
    )
    store = InMemoryVectorStore(model)
    await store.aadd_documents(TongyiImageLoader(media / "photos").load())

    (query,) = await model.aembed_image([str(media / "queries" / "blue-square.jpg")])
    found = await store.asimilarity_search_by_vector(query, k=1)
    await model.aclose()

    assert len(query) == 256
    assert stem(found[0]) == "blue-square"


# --- video ---


def test_a_local_video_embeds_the_same_through_embed_video_and_a_reference(
    embeddings: TongyiVisionEmbeddings, tmp_path: Path
) -> None:
    av = pytest.importorskip("av")
    path = tmp_path / "fade.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=5)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        for step in range(15):
            frame = av.VideoFrame.from_image(PILImage.new("RGB", (64, 64), (step * 15, 0, 90)))
            container.mux(stream.encode(frame))
        container.mux(stream.encode())

    (direct,) = embeddings.embed_video([str(path)])
    (by_reference,) = embeddings.embed_documents([file_uri(str(path))])
    (as_text,) = embeddings.embed_documents([str(path)])

    assert len(direct) == 768
    assert cosine(direct, by_reference) == pytest.approx(1.0)
    assert cosine(direct, as_text) < 0.5
