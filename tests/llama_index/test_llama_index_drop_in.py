"""TongyiVisionEmbedding as a drop-in: reader documents embedded as their images through the
text path a plain ``VectorStoreIndex`` uses, queries that read no files, clips that keep their
vectors in a pipeline, copies, ``load_embed_model``, the size in use and long texts."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from llama_index.core import Settings, VectorStoreIndex
from llama_index.core.embeddings.loading import load_embed_model
from llama_index.core.ingestion import IngestionPipeline
from llama_index.core.schema import ImageDocument, MetadataMode
from pydantic import ValidationError

from tests.llama_index._llama_index_fakes import KEY, FakeService, part_vector, write_image
from tongyi_vision import InputError, TextTooLongError, estimate_text_tokens
from tongyi_vision.llama_index import TongyiImageReader, TongyiVisionEmbedding
from tongyi_vision.media.sources import data_uri, file_uri

MakeEmbedding = Callable[..., TongyiVisionEmbedding]


@pytest.fixture
def settings_restored() -> Any:
    saved = Settings._embed_model, Settings._transformations
    yield
    Settings._embed_model, Settings._transformations = saved


@pytest.mark.usefixtures("settings_restored")
def test_an_index_built_with_settings_stores_the_images_own_vectors(
    make_embedding: MakeEmbedding, service: FakeService, tmp_path: Path
) -> None:
    red = write_image(tmp_path / "red.png", (220, 20, 20))
    blue = write_image(tmp_path / "blue.png", (20, 20, 220))
    Settings.embed_model = make_embedding()
    documents = TongyiImageReader().load_data(tmp_path)
    choices: list[list[Any] | None] = [None, []]
    for transformations in choices:
        service.bodies.clear()
        index = VectorStoreIndex.from_documents(documents, transformations=transformations)
        stored = index.vector_store.data.embedding_dict  # type: ignore[attr-defined]
        assert sorted(stored.values()) == sorted(
            part_vector({"image": data_uri("image/png", p.read_bytes())}) for p in (red, blue)
        )
        assert service.kinds == ["image", "image"]  # never the text "file_name: red.png"


@pytest.mark.usefixtures("settings_restored")
def test_a_query_that_is_a_file_uri_is_refused_unless_files_may_be_read(
    make_embedding: MakeEmbedding, service: FakeService, tmp_path: Path
) -> None:
    red = write_image(tmp_path / "red.png", (220, 20, 20))
    uri = file_uri(red)
    embedding = make_embedding()
    with pytest.raises(InputError, match="read_query_files=True"):
        embedding.get_query_embedding(uri)
    assert service.bodies == []
    reading = make_embedding(read_query_files=True)
    assert reading.get_query_embedding(uri) == part_vector(
        {"image": data_uri("image/png", red.read_bytes())}
    )
    # documents (the text path) always read their files: they come from the readers
    assert embedding.get_text_embedding(uri) == reading.get_query_embedding(uri)
    plain = make_embedding(embed_media_references=False)
    assert plain.get_text_embedding(uri) == part_vector({"text": uri})


def test_clips_keep_their_vectors_in_a_pipeline_and_re_embed_from_their_reference(
    make_embedding: MakeEmbedding, service: FakeService, tmp_path: Path
) -> None:
    pytest.importorskip("av")
    from tongyi_vision.samples import generate_sample_video

    video = generate_sample_video(tmp_path / "talk.mp4", seconds=4.0, segment_seconds=2.0)
    embedding = make_embedding()
    clip_uri = file_uri(video) + "#t=0,2"
    kept = ImageDocument(
        text="",
        embedding=[0.5] * 768,
        metadata={"clip_uri": clip_uri, "file_name": "talk.mp4", "start_seconds": 0.0},
    )
    bare = ImageDocument(
        text="", metadata={"clip_uri": clip_uri, "file_name": "talk.mp4", "start_seconds": 0.0}
    )
    # a vector of another size (another model's) is not ours to keep
    foreign = ImageDocument(text="", embedding=[0.1] * 8, metadata={"clip_uri": clip_uri})

    nodes = IngestionPipeline(transformations=[embedding]).run(documents=[kept, bare, foreign])

    assert nodes[0].embedding == [0.5] * 768
    assert [list(c) for c in service.contents] == [["multi_images"]]  # one clip, sent once
    assert nodes[1].embedding == nodes[2].embedding == embedding.get_image_embedding(clip_uri)


def test_a_deep_copy_embeds_alike_with_its_own_client(
    make_embedding: MakeEmbedding, service: FakeService
) -> None:
    original = make_embedding(max_retries=1, long_text="truncate")
    twin = copy.deepcopy(original)
    assert twin._client is not original._client
    assert (twin.model_name, twin.max_retries, twin.long_text) == (
        "tongyi-embedding-vision-flash",
        1,
        "truncate",
    )
    assert twin.get_text_embedding("hi") == original.get_text_embedding("hi")
    twin.close()
    assert original.get_text_embedding("again") == part_vector({"text": "again"})


def test_load_embed_model_knows_the_class(
    make_embedding: MakeEmbedding, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EMPIRIOLABS_API_KEY", KEY)
    original = make_embedding(model_name="tongyi-embedding-vision-plus")
    revived = load_embed_model(original.to_dict())
    assert isinstance(revived, TongyiVisionEmbedding)
    assert (revived.model_name, revived.dimension) == ("tongyi-embedding-vision-plus", 1152)
    assert KEY not in original.to_json()


@pytest.mark.parametrize(
    ("fields", "size"),
    [
        ({}, 768),
        ({"model_name": "tongyi-embedding-vision-plus"}, 1152),
        ({"dialect": "dashscope", "dimensions": 256}, 256),
    ],
)
def test_the_size_in_use_is_exposed_and_read_only(
    make_embedding: MakeEmbedding, fields: dict[str, Any], size: int
) -> None:
    embedding = make_embedding(**fields)
    assert embedding.dimension == size
    with pytest.raises(ValidationError, match="frozen"):
        embedding.dimension = 64


def test_long_texts_from_a_splitter_are_embedded_in_pieces(
    make_embedding: MakeEmbedding, service: FakeService
) -> None:
    text = " ".join(f"Line {i} of a long report about the harbour." for i in range(600))
    assert estimate_text_tokens(text) > 2048
    embedding = make_embedding()
    vector = embedding.get_text_embedding(text)
    assert len(vector) == 768
    assert embedding.usage.pieces == len(service.contents) >= 3
    with pytest.raises(TextTooLongError):
        make_embedding(long_text="error").get_text_embedding(text)


def test_reader_documents_embed_as_their_uri_alone(tmp_path: Path) -> None:
    red = write_image(tmp_path / "red.png", (220, 20, 20))
    (document,) = TongyiImageReader().load_data(red)
    from llama_index.core.node_parser import SentenceSplitter

    (node,) = SentenceSplitter().get_nodes_from_documents([document])
    assert node.get_content(metadata_mode=MetadataMode.EMBED) == file_uri(red.resolve())
