"""TongyiVisionEmbedding with a cache: texts, images and video clips served from it, in a
pipeline as in direct calls, keyed by content (two images with the same caption do not
collide, as they do in LlamaIndex's own IngestionCache)."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path

import pytest
from llama_index.core.ingestion import IngestionPipeline

from tests.llama_index._llama_index_fakes import FakeService, write_image
from tongyi_vision.llama_index import TongyiImageReader, TongyiVisionEmbedding
from tongyi_vision.media.sources import file_uri

MakeEmbedding = Callable[..., TongyiVisionEmbedding]


def test_images_and_texts_are_served_from_the_cache(
    make_embedding: MakeEmbedding, service: FakeService, tmp_path: Path
) -> None:
    red = write_image(tmp_path / "red.png", (220, 20, 20))
    embedding = make_embedding(cache=tmp_path / "cache.sqlite")
    first = [
        embedding.get_text_embedding("a caption"),
        embedding.get_image_embedding(str(red)),
        embedding.get_query_embedding("a question"),
    ]
    sent = len(service.bodies)
    again = [
        embedding.get_text_embedding("a caption"),
        embedding.get_image_embedding(str(red)),
        embedding.get_query_embedding("a question"),
    ]
    assert again == first and len(service.bodies) == sent
    assert embedding.usage.cached == 3


def test_a_pipeline_run_twice_sends_nothing_the_second_time(
    make_embedding: MakeEmbedding, service: FakeService, tmp_path: Path
) -> None:
    folder = tmp_path / "photos"
    write_image(folder / "a.png", (220, 20, 20))
    write_image(folder / "b.png", (20, 220, 20))
    documents = TongyiImageReader().load_data(folder)
    # the same caption on both: only their bytes tell them apart
    for document in documents:
        document.metadata["caption"] = "a square"
    embedding = make_embedding(cache=tmp_path / "cache.sqlite")
    first = IngestionPipeline(transformations=[embedding]).run(documents=documents)
    sent = len(service.bodies)
    second = IngestionPipeline(transformations=[embedding]).run(documents=documents)
    assert len(service.bodies) == sent
    assert [n.embedding for n in second] == [n.embedding for n in first]
    assert first[0].embedding != first[1].embedding


def test_video_clips_are_cached_by_file_and_range(
    make_embedding: MakeEmbedding, service: FakeService, tmp_path: Path
) -> None:
    pytest.importorskip("av")
    from tongyi_vision.samples import generate_sample_video

    video = generate_sample_video(tmp_path / "talk.mp4", seconds=4.0, segment_seconds=2.0)
    uri = file_uri(video)
    embedding = make_embedding(cache=tmp_path / "cache.sqlite")
    first = embedding.get_video_embedding_batch([f"{uri}#t=0,2", f"{uri}#t=2,4"])
    sent = len(service.bodies)
    again = embedding.get_video_embedding_batch([f"{uri}#t=0,2", f"{uri}#t=2,4"])
    assert again == first and len(service.bodies) == sent
    other_range = embedding.get_video_embedding(f"{uri}#t=1,3")
    assert len(service.bodies) == sent + 1 and other_range not in first


def test_a_pickled_model_keeps_its_cache(
    make_embedding: MakeEmbedding,
    service: FakeService,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tests.llama_index._llama_index_fakes import KEY

    monkeypatch.setenv("EMPIRIOLABS_API_KEY", KEY)
    embedding = make_embedding(cache=tmp_path / "cache.sqlite")
    vector = embedding.get_text_embedding("kept")
    copy = pickle.loads(pickle.dumps(embedding))
    assert copy.cache is not None
    assert copy._client.cache is not None
    assert copy._client.cache.get_many(
        [copy._client.cache.key(_text_identity("kept"), copy.model_name, 768) or ""]
    )
    assert vector == embedding.get_text_embedding("kept")


def _text_identity(text: str) -> str:
    from tongyi_vision.media.prepared import prepare_text

    return prepare_text(text).identity()
