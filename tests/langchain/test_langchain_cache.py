"""TongyiVisionEmbeddings with a cache: images keyed by their bytes, not their URI; every
method cached, any LangChain ByteStore as the backend."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from langchain_core.stores import InMemoryByteStore

from tests.langchain._langchain_fakes import FakeGateway, write_image
from tongyi_vision import EmbeddingCache
from tongyi_vision.langchain import TongyiImageLoader, TongyiVisionEmbeddings
from tongyi_vision.media.sources import file_uri

Make = Callable[..., TongyiVisionEmbeddings]


def test_every_method_is_served_from_the_cache(
    make_embeddings: Make, gateway: FakeGateway, tmp_path: Path
) -> None:
    red = write_image(tmp_path / "red.png", (220, 30, 40))
    embeddings = make_embeddings(cache=tmp_path / "cache.sqlite", read_query_files=True)
    calls: list[Callable[[], object]] = [
        lambda: embeddings.embed_documents(["a note", file_uri(red)]),
        lambda: embeddings.embed_query("a question"),
        lambda: embeddings.embed_image([str(red)]),
    ]
    first = [call() for call in calls]
    sent = len(gateway.requests)
    again = [call() for call in calls]
    assert again == first
    assert len(gateway.requests) == sent  # nothing sent the second time
    # embed_image of the file the documents' URI names was a hit already the first time
    assert embeddings.usage.cached == 1 + 4


def test_an_image_redrawn_in_place_is_embedded_again(
    make_embeddings: Make, gateway: FakeGateway, tmp_path: Path
) -> None:
    # CacheBackedEmbeddings keys on the document's text, the file:// URI: it would return
    # the old picture's vector. This cache keys on the bytes.
    picture = write_image(tmp_path / "photos" / "p.png", (220, 30, 40))
    embeddings = make_embeddings(cache=tmp_path / "cache.sqlite")
    (before,) = TongyiImageLoader(tmp_path / "photos").load()
    old = embeddings.embed_documents([before.page_content])
    write_image(picture, (30, 30, 200))
    (after,) = TongyiImageLoader(tmp_path / "photos").load()
    assert after.page_content == before.page_content  # the same URI...
    assert after.metadata["sha256"] != before.metadata["sha256"]  # ...other content
    new = embeddings.embed_documents([after.page_content])
    assert new != old
    assert embeddings.usage.cached == 0


@pytest.mark.parametrize("kind", ["in-memory", "local-file"])
def test_a_langchain_byte_store_is_a_backend(
    make_embeddings: Make, gateway: FakeGateway, tmp_path: Path, kind: str
) -> None:
    if kind == "in-memory":
        store: object = InMemoryByteStore()
    else:
        from langchain_classic.storage import LocalFileStore

        store = LocalFileStore(tmp_path / "store")
    embeddings = make_embeddings(cache=store)
    vectors = embeddings.embed_documents(["one", "two"])
    twin = make_embeddings(cache=EmbeddingCache(store))  # type: ignore[arg-type]
    assert twin.embed_documents(["one", "two"]) == vectors
    assert twin.usage.cached == 2
    assert len(gateway.requests) == 1


def test_the_cache_is_not_serialized(make_embeddings: Make, tmp_path: Path) -> None:
    from langchain_core.load import dumps

    embeddings = make_embeddings(cache=tmp_path / "cache.sqlite")
    assert "cache" not in dumps(embeddings)
