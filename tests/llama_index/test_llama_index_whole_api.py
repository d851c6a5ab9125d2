"""The whole API through ``TongyiVisionEmbedding``: instructions on queries (every retriever,
text-to-image included) and never on documents, the native parameters, regions, fused groups
and captioned reader documents; every request body is checked as it went over the wire."""

from __future__ import annotations

import copy
import io
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from llama_index.core import StorageContext, VectorStoreIndex
from llama_index.core.indices import MultiModalVectorStoreIndex
from llama_index.core.ingestion import IngestionPipeline
from llama_index.core.node_parser import SentenceSplitter
from llama_index.core.schema import Document, ImageNode, MetadataMode
from llama_index.core.vector_stores import SimpleVectorStore

from tests.llama_index._llama_index_fakes import (
    KEY,
    FakeService,
    part_vector,
    png_bytes,
    write_image,
)
from tongyi_vision import FLASH, FLASH_SNAPSHOT, ConfigurationError, Fused, Image, InputError, Video
from tongyi_vision.llama_index import TongyiImageReader, TongyiVisionEmbedding
from tongyi_vision.media.sources import data_uri

MakeEmbedding = Callable[..., TongyiVisionEmbedding]
TASK = "Find images that match the description"
NATIVE_PATH = "/api/v1/services/embeddings/multimodal-embedding/multimodal-embedding"
VIDEO_URL = "https://media.test/keynote.mp4"


def snapshot(**fields: Any) -> dict[str, Any]:
    return {"model_name": FLASH_SNAPSHOT, "dialect": "dashscope", **fields}


def png_uri(data: bytes) -> str:
    return data_uri("image/png", data)


def parameters(service: FakeService) -> list[dict[str, Any] | None]:
    return [b.get("parameters") for b in service.bodies]


# --- instruct: queries only ------------------------------------------------------------


def test_instruct_goes_with_queries_and_never_with_texts(
    make_embedding: MakeEmbedding, service: FakeService
) -> None:
    embedding = make_embedding(**snapshot(instruct=TASK))

    embedding.get_text_embedding_batch(["a red bicycle", "a blue car"])
    embedding.get_text_embedding("a green field")
    query = embedding.get_query_embedding("red bicycle")

    assert service.bodies == [
        {
            "model": FLASH_SNAPSHOT,
            "input": {"contents": [{"text": "a red bicycle"}, {"text": "a blue car"}]},
        },
        {"model": FLASH_SNAPSHOT, "input": {"contents": [{"text": "a green field"}]}},
        {
            "model": FLASH_SNAPSHOT,
            "input": {"contents": [{"text": "red bicycle"}]},
            "parameters": {"instruct": TASK},
        },
    ]
    assert query == part_vector({"text": "red bicycle"})
    assert all(r.url.path == NATIVE_PATH for r in service.requests)


async def test_the_async_methods_split_instruct_the_same_way(
    make_embedding: MakeEmbedding, service: FakeService
) -> None:
    embedding = make_embedding(**snapshot(instruct=TASK))

    await embedding.aget_text_embedding_batch(["a document"])
    await embedding.aget_query_embedding("a query")
    await embedding.aget_agg_embedding_from_queries(["one query", "another"])

    assert parameters(service) == [None] + [{"instruct": TASK}] * 3
    assert service.contents == [
        {"text": "a document"},
        {"text": "a query"},
        {"text": "one query"},
        {"text": "another"},
    ]


def test_image_embeddings_carry_no_instruction(
    make_embedding: MakeEmbedding, service: FakeService, tmp_path: Path
) -> None:
    picture = write_image(tmp_path / "red.png", (200, 0, 0))
    embedding = make_embedding(**snapshot(instruct=TASK))

    embedding.get_image_embedding(str(picture))
    embedding.get_image_embedding_batch([io.BytesIO(picture.read_bytes())])

    assert parameters(service) == [None, None]
    assert service.kinds == ["image", "image"]


def multimodal_index(
    embedding: TongyiVisionEmbedding, documents: list[Any], **options: Any
) -> MultiModalVectorStoreIndex:
    storage = StorageContext.from_defaults(
        vector_store=SimpleVectorStore(), image_store=SimpleVectorStore()
    )
    return MultiModalVectorStoreIndex.from_documents(
        documents,
        storage_context=storage,
        embed_model=embedding,
        image_embed_model=embedding,
        **options,
    )


def test_text_to_image_and_text_retrieval_send_the_instruction_documents_do_not(
    make_embedding: MakeEmbedding, service: FakeService, tmp_path: Path
) -> None:
    write_image(tmp_path / "red.png", (200, 0, 0))
    write_image(tmp_path / "blue.png", (0, 0, 200))
    embedding = make_embedding(**snapshot(instruct=TASK))
    documents = [*TongyiImageReader().load_data(tmp_path), Document(text="a red bicycle")]
    index = multimodal_index(embedding, documents)
    built = len(service.bodies)

    retriever = index.as_retriever(similarity_top_k=1, image_similarity_top_k=1)
    images = retriever.text_to_image_retrieve("something red")
    texts = retriever.text_retrieve("a bicycle")

    assert parameters(service)[:built] == [None] * built  # indexing: documents only
    assert service.bodies[built:] == [
        {
            "model": FLASH_SNAPSHOT,
            "input": {"contents": [{"text": text}]},
            "parameters": {"instruct": TASK},
        }
        for text in ("something red", "a bicycle")
    ]
    assert len(images) == 1 and isinstance(images[0].node, ImageNode)
    assert texts[0].node.get_content() == "a red bicycle"


async def test_async_text_to_image_retrieval_sends_the_instruction(
    make_embedding: MakeEmbedding, service: FakeService, tmp_path: Path
) -> None:
    write_image(tmp_path / "red.png", (200, 0, 0))
    embedding = make_embedding(**snapshot(instruct=TASK))
    index = multimodal_index(embedding, TongyiImageReader().load_data(tmp_path))
    built = len(service.bodies)

    found = await index.as_retriever(image_similarity_top_k=1).atext_to_image_retrieve("red")

    assert len(found) == 1
    assert parameters(service)[built:] == [{"instruct": TASK}]


def test_instruct_is_refused_at_construction_where_the_model_cannot_take_it() -> None:
    with pytest.raises(ConfigurationError, match="does not take instruct"):
        TongyiVisionEmbedding(FLASH, api_key=KEY, dialect="dashscope", instruct=TASK)
    with pytest.raises(ConfigurationError, match="openai dialect"):
        TongyiVisionEmbedding(FLASH_SNAPSHOT, api_key=KEY, instruct=TASK)


# --- native parameters -------------------------------------------------------------------


def test_the_native_parameters_go_in_the_body_with_the_parts_that_take_them(
    make_embedding: MakeEmbedding, service: FakeService, tmp_path: Path
) -> None:
    picture = write_image(tmp_path / "green.png", (0, 200, 0))
    embedding = make_embedding(**snapshot(dimension=256, res_level=3, fps=0.5, max_video_frames=16))

    text = embedding.get_text_embedding("a caption")
    image = embedding.get_image_embedding(str(picture))
    embedding.get_video_embedding(VIDEO_URL)

    assert service.bodies == [
        {
            "model": FLASH_SNAPSHOT,
            "input": {"contents": [{"text": "a caption"}]},
            "parameters": {"dimension": 256},
        },
        {
            "model": FLASH_SNAPSHOT,
            "input": {"contents": [{"image": png_uri(picture.read_bytes())}]},
            "parameters": {"dimension": 256, "res_level": 3},
        },
        {
            "model": FLASH_SNAPSHOT,
            "input": {"contents": [{"video": VIDEO_URL}]},
            "parameters": {"dimension": 256, "fps": 0.5, "max_video_frames": 16},
        },
    ]
    assert (len(text), len(image), embedding.dimension) == (256, 256, 256)


def test_a_snapshot_takes_any_size_in_its_range_and_refuses_others() -> None:
    embedding = TongyiVisionEmbedding(api_key=KEY, **snapshot(dimension=100))
    assert embedding.dimension == 100
    for size in (63, 769):
        with pytest.raises(ConfigurationError, match=f"not {size}"):
            TongyiVisionEmbedding(api_key=KEY, **snapshot(dimension=size))
    with pytest.raises(ConfigurationError, match="not 100"):
        TongyiVisionEmbedding(FLASH, api_key=KEY, dialect="dashscope", dimension=100)
    embedding.close()


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"res_level": -1}, "res_level"),
        ({"fps": -0.1}, "fps"),
        ({"max_video_frames": 0}, "max_video_frames"),
        ({"model_name": FLASH, "res_level": 2}, "does not take res_level"),
        ({"dialect": "openai", "max_video_frames": 8}, "openai dialect"),
    ],
)
def test_parameters_out_of_range_or_for_another_model_are_refused(
    fields: dict[str, Any], words: str
) -> None:
    with pytest.raises(ConfigurationError, match=words):
        TongyiVisionEmbedding(api_key=KEY, **{**snapshot(), **fields})


def test_the_settings_survive_to_dict_pickling_and_copies(
    make_embedding: MakeEmbedding, monkeypatch: pytest.MonkeyPatch
) -> None:
    embedding = make_embedding(
        **snapshot(res_level=2, fps=0.25, max_video_frames=32, instruct=TASK, region="beijing")
    )
    wanted = {
        "res_level": 2,
        "fps": 0.25,
        "max_video_frames": 32,
        "instruct": TASK,
        "region": "beijing",
    }

    saved = embedding.to_dict()
    assert {k: saved[k] for k in wanted} == wanted
    assert KEY not in str(saved)
    monkeypatch.setenv("DASHSCOPE_API_KEY", "sk-in-the-worker")
    for other in (
        TongyiVisionEmbedding.from_dict(saved),
        pickle.loads(pickle.dumps(embedding)),
        copy.deepcopy(embedding),
    ):
        assert {k: getattr(other, k) for k in wanted} == wanted
        assert other.base_url == "https://dashscope.aliyuncs.com"
        assert other.client.instruct == TASK
        other.close()


# --- regions and workspaces --------------------------------------------------------------


def test_a_region_or_workspace_chooses_the_service_root(
    make_embedding: MakeEmbedding, service: FakeService, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TONGYI_VISION_BASE_URL", "http://127.0.0.1:9")
    beijing = make_embedding(**snapshot(region="beijing"))
    workspace = make_embedding(**snapshot(workspace="ws-abc123"))

    beijing.get_text_embedding("hello")
    workspace.get_text_embedding("hello")

    assert [str(r.url) for r in service.requests] == [
        "https://dashscope.aliyuncs.com" + NATIVE_PATH,
        "https://ws-abc123.ap-southeast-1.maas.aliyuncs.com" + NATIVE_PATH,
    ]
    assert beijing.client.region == "beijing"
    with pytest.raises(ConfigurationError, match="dialect='dashscope'"):
        TongyiVisionEmbedding(api_key=KEY, region="beijing")


# --- fused groups ------------------------------------------------------------------------


def test_get_fused_embedding_sends_one_content_object(
    make_embedding: MakeEmbedding, service: FakeService, tmp_path: Path
) -> None:
    picture = write_image(tmp_path / "red.png", (200, 0, 0))
    embedding = make_embedding(**snapshot())

    one = embedding.get_fused_embedding(["a red bicycle", picture])
    batch = embedding.get_fused_embedding_batch(
        [
            [{"type": "text", "text": "a blue sky"}, io.BytesIO(png_bytes((0, 0, 200)))],
            Fused(["the keynote", Video(VIDEO_URL)]),
        ]
    )

    red = {"text": "a red bicycle", "image": png_uri(picture.read_bytes())}
    blue = {"text": "a blue sky", "image": png_uri(png_bytes((0, 0, 200)))}
    keynote = {"text": "the keynote", "video": VIDEO_URL}
    assert service.bodies == [
        {"model": FLASH_SNAPSHOT, "input": {"contents": [red]}},
        {"model": FLASH_SNAPSHOT, "input": {"contents": [blue, keynote]}},
    ]
    assert one == part_vector(red)
    assert batch == [part_vector(blue), part_vector(keynote)]


async def test_the_async_fused_methods_and_their_parameters(
    make_embedding: MakeEmbedding, service: FakeService
) -> None:
    picture = png_bytes((10, 200, 10))
    embedding = make_embedding(**snapshot(res_level=0, instruct=TASK))

    one = await embedding.aget_fused_embedding(["a green field", Image(picture)])
    two = await embedding.aget_fused_embedding_batch([["two pictures", picture, picture]])

    assert service.bodies == [
        {
            "model": FLASH_SNAPSHOT,
            "input": {"contents": [{"text": "a green field", "image": png_uri(picture)}]},
            "parameters": {"res_level": 0},  # a fused document: no instruction
        },
        {
            "model": FLASH_SNAPSHOT,
            "input": {
                "contents": [{"text": "two pictures", "multi_images": [png_uri(picture)] * 2}]
            },
            "parameters": {"res_level": 0},
        },
    ]
    assert one != two[0]


def test_fused_callbacks_see_the_kinds_not_the_data(
    make_embedding: MakeEmbedding, service: FakeService
) -> None:
    from llama_index.core.callbacks import CallbackManager, LlamaDebugHandler

    handler = LlamaDebugHandler()
    embedding = make_embedding(**snapshot(), callback_manager=CallbackManager([handler]))
    picture = png_bytes((5, 5, 5))

    embedding.get_fused_embedding(["a dark square", picture])

    (pair,) = handler.get_event_pairs()
    chunks = pair[1].payload["chunks"]  # type: ignore[index]
    assert chunks == ["<fused: text, Image>"]
    assert len(service.bodies) == 1


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"model_name": FLASH, "dialect": "dashscope"}, "does not fuse"),
        ({"model_name": FLASH_SNAPSHOT, "dialect": "openai"}, "dialect='dashscope'"),
    ],
)
def test_fused_groups_are_refused_before_sending_where_nothing_fuses(
    make_embedding: MakeEmbedding, service: FakeService, fields: dict[str, Any], words: str
) -> None:
    embedding = make_embedding(**fields)

    with pytest.raises(InputError, match=words) as caught:
        embedding.get_fused_embedding(["a red bicycle", png_bytes((200, 0, 0))])

    assert caught.value.part_index == 0
    assert service.bodies == []


def test_a_bad_group_is_named_by_its_position(
    make_embedding: MakeEmbedding, service: FakeService
) -> None:
    embedding = make_embedding(**snapshot())
    picture = png_bytes((1, 2, 3))

    with pytest.raises(InputError, match=r"part 1.*2 videos"):
        embedding.get_fused_embedding_batch(
            [["fine", picture], [Video(VIDEO_URL), Video(VIDEO_URL + "?2")]]
        )
    with pytest.raises(InputError, match="list of groups"):
        embedding.get_fused_embedding_batch("a lone string")
    with pytest.raises(InputError, match="not int"):
        embedding.get_fused_embedding(["a text", 42])  # type: ignore[list-item]
    assert service.bodies == []


# --- captioned reader documents ----------------------------------------------------------


def captioned_documents(folder: Path) -> tuple[Path, Path, list[Document]]:
    red = write_image(folder / "red.png", (200, 0, 0))
    blue = write_image(folder / "blue.png", (0, 0, 200))
    captions = {"red.png": "a red bicycle, 100% steel"}
    reader = TongyiImageReader(caption=lambda path: captions.get(path.name))
    return red, blue, reader.load_data(folder)


def test_the_reader_attaches_a_caption_that_the_llm_sees(tmp_path: Path) -> None:
    red, blue, documents = captioned_documents(tmp_path)
    by_name = {d.metadata["file_name"]: d for d in documents}

    captioned = by_name["red.png"]
    assert captioned.metadata["caption"] == "a red bicycle, 100% steel"
    assert captioned.get_content(metadata_mode=MetadataMode.EMBED) == (
        red.as_uri() + "#caption=a%20red%20bicycle%2C%20100%25%20steel"
    )
    assert "a red bicycle, 100% steel" in captioned.get_content(metadata_mode=MetadataMode.LLM)
    assert by_name["blue.png"].get_content(metadata_mode=MetadataMode.EMBED) == blue.as_uri()
    assert "caption" not in by_name["blue.png"].metadata


def test_a_plain_index_stores_the_fused_vector_of_a_captioned_image(
    make_embedding: MakeEmbedding, service: FakeService, tmp_path: Path
) -> None:
    red, blue, documents = captioned_documents(tmp_path)
    embedding = make_embedding(**snapshot(instruct=TASK))

    index = VectorStoreIndex.from_documents(documents, embed_model=embedding)

    fused = {"text": "a red bicycle, 100% steel", "image": png_uri(red.read_bytes())}
    alone = {"image": png_uri(blue.read_bytes())}
    assert sorted(service.contents, key=len) == [alone, fused]
    assert parameters(service) == [None]
    stored = index.vector_store.data.embedding_dict  # type: ignore[attr-defined]
    assert sorted(stored.values()) == sorted([part_vector(fused), part_vector(alone)])


@pytest.mark.parametrize("run", ["pipeline", "multimodal"])
def test_as_a_transformation_the_model_embeds_captioned_images_fused(
    make_embedding: MakeEmbedding, service: FakeService, tmp_path: Path, run: str
) -> None:
    red, blue, documents = captioned_documents(tmp_path)
    embedding = make_embedding(**snapshot())

    if run == "pipeline":
        nodes = IngestionPipeline(transformations=[embedding]).run(documents=documents)
        vectors = sorted(n.embedding or [] for n in nodes)
    else:
        # a node parser first: it makes the image nodes the index puts in its image store
        splitter = SentenceSplitter()
        index = multimodal_index(embedding, documents, transformations=[splitter, embedding])
        stored = index.image_vector_store.data.embedding_dict  # type: ignore[attr-defined]
        vectors = sorted(stored.values())

    fused = {"text": "a red bicycle, 100% steel", "image": png_uri(red.read_bytes())}
    alone = {"image": png_uri(blue.read_bytes())}
    assert sorted(service.contents, key=len) == [alone, fused]
    assert vectors == sorted([part_vector(fused), part_vector(alone)])


def test_captioned_documents_are_refused_by_a_model_that_does_not_fuse(
    make_embedding: MakeEmbedding, service: FakeService, tmp_path: Path
) -> None:
    _, _, documents = captioned_documents(tmp_path)

    with pytest.raises(InputError, match="does not fuse"):
        VectorStoreIndex.from_documents(
            documents, embed_model=make_embedding(model_name=FLASH, dialect="dashscope")
        )
    assert service.bodies == []


def test_a_caption_function_must_return_a_string(tmp_path: Path) -> None:
    write_image(tmp_path / "red.png", (200, 0, 0))

    with pytest.raises(TypeError, match="returned a int"):
        seven: Any = lambda path: 7  # noqa: E731
        TongyiImageReader(caption=seven).load_data(tmp_path)
    with pytest.raises(TypeError, match="caption must be a function"):
        TongyiImageReader(caption={"red.png": "a red square"})  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["get_fused_embedding", "get_fused_embedding_batch"])
def test_the_sync_and_async_fused_methods_have_the_same_signature(name: str) -> None:
    import inspect

    sync = inspect.signature(getattr(TongyiVisionEmbedding, name))
    asynchronous = inspect.signature(getattr(TongyiVisionEmbedding, "a" + name))
    assert sync.parameters == asynchronous.parameters
    assert sync.return_annotation == asynchronous.return_annotation
