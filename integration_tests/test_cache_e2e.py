"""The embedding cache against the emulator process, through the core and both adapters:
a second run over unchanged content sends nothing, a changed image is the one part sent,
and LangChain's ByteStores serve as backends."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from integration_tests.conftest import RunningEmulator
from tongyi_vision import Client, Image
from tongyi_vision.samples import draw_shape

Make = Callable[..., bytes]


@pytest.fixture
def pictures(tmp_path: Path, make_image: Make) -> Path:
    folder = tmp_path / "pictures"
    folder.mkdir()
    for seed in range(6):
        (folder / f"p{seed}.jpg").write_bytes(make_image(seed))
    return folder


@pytest.fixture
def server(start_emulator: Callable[..., RunningEmulator]) -> Iterator[RunningEmulator]:
    # An emulator of its own: its counters then tell this test's requests only.
    yield start_emulator()


def billed(server: RunningEmulator) -> int:
    return server.stats()["billed_parts"]


def test_the_core_client_pays_once(server: RunningEmulator, pictures: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache.sqlite"
    parts = [Image(p) for p in sorted(pictures.iterdir())] + ["a note about the pictures"]
    with Client(server.api_key, base_url=server.base_url, cache=cache) as client:
        first = client.embed(parts)
    assert billed(server) == 7
    # a new client, as a re-run of a script would make: the cache is the file
    with Client(server.api_key, base_url=server.base_url, cache=cache) as client:
        again = client.embed(parts)
        assert again.vectors == first.vectors
        assert again.usage.requests == 0 and again.usage.cached == 7
        assert billed(server) == 7
        # one picture redrawn in place: that one part is sent
        draw_shape("circle", (200, 40, 40), 128).save(pictures / "p3.jpg")
        changed = client.embed(parts)
    assert billed(server) == 8
    assert changed.usage.cached == 6
    assert changed.vectors[3] != first.vectors[3]
    assert [v for i, v in enumerate(changed.vectors) if i != 3] == [
        v for i, v in enumerate(first.vectors) if i != 3
    ]


def test_langchain_stores_built_twice_pay_once(
    server: RunningEmulator, pictures: Path, tmp_path: Path
) -> None:
    from langchain_classic.storage import LocalFileStore
    from langchain_core.vectorstores import InMemoryVectorStore

    from tongyi_vision.langchain import TongyiImageLoader, TongyiVisionEmbeddings

    def build(cache: object) -> InMemoryVectorStore:
        embeddings = TongyiVisionEmbeddings(
            api_key=server.api_key, base_url=server.base_url, cache=cache
        )
        store = InMemoryVectorStore(embeddings)
        store.add_documents(TongyiImageLoader(pictures).load())
        store.add_texts(["pictures of a garden"])
        embeddings.close()
        return store

    for cache in (tmp_path / "lc.sqlite", LocalFileStore(tmp_path / "lc-files")):
        before = billed(server)
        first = build(cache)
        assert billed(server) == before + 7
        second = build(cache)
        assert billed(server) == before + 7  # the second build sent nothing
        vectors = sorted(tuple(d["vector"]) for d in second.store.values())
        assert vectors == sorted(tuple(d["vector"]) for d in first.store.values())


def test_llama_index_pipelines_run_twice_pay_once(
    server: RunningEmulator, pictures: Path, tmp_path: Path
) -> None:
    from llama_index.core import Document
    from llama_index.core.ingestion import IngestionPipeline

    from tongyi_vision.llama_index import TongyiImageReader, TongyiVisionEmbedding

    def run() -> list[list[float] | None]:
        embedding = TongyiVisionEmbedding(
            api_key=server.api_key, base_url=server.base_url, cache=tmp_path / "li.sqlite"
        )
        documents = [*TongyiImageReader().load_data(pictures), Document(text="a garden")]
        nodes = IngestionPipeline(transformations=[embedding]).run(documents=documents)
        embedding.close()
        return [n.embedding for n in nodes]

    first = run()
    assert billed(server) == 7
    assert run() == first
    assert billed(server) == 7
