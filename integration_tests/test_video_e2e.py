"""Video end to end against a real emulator process: clips found by an image of their moment,
deterministic frame vectors, data URIs in both dialects, and the LangChain and LlamaIndex paths.

The sample video is 30 s: red (0-10 s), a checkerboard (10-20 s), blue (20-30 s),
with a white square sweeping each segment. The emulator's vectors come from
pixels, so an image of a checkerboard frame lands nearest the checkerboard clip.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tongyi_vision import BadRequestError, Client, Image, Video, iter_clips
from tongyi_vision.media.decoding import sample_frames
from tongyi_vision.samples import generate_sample_video

if TYPE_CHECKING:
    from integration_tests.conftest import RunningEmulator

COLOURS = ((200, 40, 40), (40, 160, 60), (40, 70, 200))
CHECKERBOARD_CLIP = (10.0, 20.0)


def cosine(a: list[float], b: list[float]) -> float:
    dot = math.fsum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(math.fsum(x * x for x in a)) * math.sqrt(math.fsum(y * y for y in b)))


@pytest.fixture(scope="module")
def footage(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("footage")
    return generate_sample_video(folder / "moments.mp4", 30.0, colours=COLOURS, patterned={1})


@pytest.fixture(scope="module")
def moment(footage: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A JPEG of one frame from inside the checkerboard segment (at 13 s)."""
    (frame,) = sample_frames(footage, start=12.9, end=13.1, count=1)
    path = tmp_path_factory.mktemp("query") / "moment.jpg"
    path.write_bytes(frame.jpeg)
    return path


@pytest.mark.parametrize("dialect", ["openai", "dashscope"])
def test_an_image_of_a_moment_finds_its_clip(
    client_factory: Callable[..., Client], footage: Path, moment: Path, dialect: str
) -> None:
    client = client_factory(dialect=dialect)
    clips = list(iter_clips(footage, clip_seconds=10.0))
    assert [(c.start_seconds, c.end_seconds) for c in clips] == [
        (0.0, 10.0),
        (10.0, 20.0),
        (20.0, 30.0),
    ]
    vectors = client.embed([clip.part() for clip in clips]).vectors
    (query,) = client.embed([Image(moment)]).vectors
    scores = [cosine(query, v) for v in vectors]
    best = clips[scores.index(max(scores))]
    assert (best.start_seconds, best.end_seconds) == CHECKERBOARD_CLIP
    # Not a near tie: the moment is much closer to its own clip than to the others.
    ranked = sorted(scores, reverse=True)
    assert ranked[0] - ranked[1] > 0.1


def test_frame_vectors_are_deterministic(
    client_factory: Callable[..., Client], footage: Path
) -> None:
    client = client_factory()
    clip = Video(footage, start=20.0, end=30.0)
    first = client.embed([clip]).vectors[0]
    # A fresh part and a fresh client: same frames, same JPEG bytes, same vector.
    again = client_factory().embed([Video(footage.resolve().as_uri() + "#t=20,30")]).vectors[0]
    assert first == again
    other = client.embed([Video(footage, start=0.0, end=10.0)]).vectors[0]
    assert first != other


def test_data_uri_video_in_the_openai_dialect(
    client_factory: Callable[..., Client], footage: Path
) -> None:
    client = client_factory()
    by_path = client.embed([Video(footage, strategy="data_uri")]).vectors[0]
    uri = "data:video/mp4;base64," + base64.b64encode(footage.read_bytes()).decode()
    by_uri = client.embed([Video(uri)]).vectors[0]
    assert by_path == by_uri
    assert len(by_path) == 768


def test_the_native_dialect_refuses_data_uri_video(
    client_factory: Callable[..., Client], footage: Path
) -> None:
    client = client_factory(dialect="dashscope")
    with pytest.raises(BadRequestError, match="base64 video"):
        client.embed([Video(footage, strategy="data_uri")])
    # Frames are images, which both dialects take.
    assert len(client.embed([Video(footage, frames=2)]).vectors) == 1


def test_langchain_store_finds_the_clip_of_an_image(
    emulator: RunningEmulator, footage: Path, moment: Path
) -> None:
    from langchain_core.vectorstores import InMemoryVectorStore

    from tongyi_vision.langchain import TongyiVideoLoader, TongyiVisionEmbeddings

    embeddings = TongyiVisionEmbeddings(api_key=emulator.api_key, base_url=emulator.base_url)
    store = InMemoryVectorStore(embeddings)
    with embeddings:
        store.add_documents(TongyiVideoLoader(footage, clip_seconds=10.0).load())
        (query,) = embeddings.embed_image([str(moment)])
    (found,) = store.similarity_search_by_vector(query, k=1)
    assert (found.metadata["start_seconds"], found.metadata["end_seconds"]) == CHECKERBOARD_CLIP
    assert found.page_content == footage.resolve().as_uri() + "#t=10,20"


def test_llama_index_retrieves_the_clip_of_an_image(
    emulator: RunningEmulator, footage: Path, moment: Path, tmp_path: Path
) -> None:
    from tongyi_vision.llama_index import TongyiVisionEmbedding

    embedding = TongyiVisionEmbedding(api_key=emulator.api_key, base_url=emulator.base_url)
    try:
        _search_and_reload(embedding, footage, moment, tmp_path)
    finally:
        embedding.close()


def _search_and_reload(embedding: Any, footage: Path, moment: Path, tmp_path: Path) -> None:
    from llama_index.core import StorageContext, load_index_from_storage
    from llama_index.core.indices import MultiModalVectorStoreIndex

    from tongyi_vision.llama_index import TongyiVideoReader

    reader = TongyiVideoReader(embedding, clip_seconds=10.0, thumbnails_dir=tmp_path / "thumbs")
    documents = reader.load_data(footage)
    index = MultiModalVectorStoreIndex.from_documents(
        documents, embed_model=embedding, image_embed_model=embedding
    )
    retriever = index.as_retriever(image_similarity_top_k=1)
    (hit,) = retriever.image_to_image_retrieve(str(moment))
    found = hit.node.metadata
    assert (found["start_seconds"], found["end_seconds"]) == CHECKERBOARD_CLIP
    assert Path(found["thumbnail_path"]).is_file()

    # Persisted and reloaded, the clip vectors are still the ones searched.
    index.storage_context.persist(tmp_path / "index")
    context = StorageContext.from_defaults(persist_dir=str(tmp_path / "index"))
    reloaded = load_index_from_storage(context, embed_model=embedding, image_embed_model=embedding)
    assert isinstance(reloaded, MultiModalVectorStoreIndex)
    (again,) = reloaded.as_retriever(image_similarity_top_k=1).image_to_image_retrieve(str(moment))
    assert again.node.metadata["start_seconds"] == CHECKERBOARD_CLIP[0]


async def test_async_client_embeds_clips_like_the_sync_one(
    emulator: RunningEmulator, client_factory: Callable[..., Client], footage: Path
) -> None:
    from tongyi_vision import AsyncClient

    clips = list(iter_clips(footage, clip_seconds=10.0))
    expected = client_factory().embed([clip.part() for clip in clips]).vectors
    async with AsyncClient(api_key=emulator.api_key, base_url=emulator.base_url) as client:
        result = await client.embed([clip.part() for clip in clips])
    assert result.vectors == expected
