"""``open_index``: an index's LanceDB table as a ``MultiModalVectorStoreIndex``: text-to-text,
text-to-image, image-to-image and clips over rows written here, nodes inserted as rows,
filters as the table's SQL, deletes, async twins, and no LlamaIndex ``Settings`` defaults.

The table is made in ``tmp_path`` with rows whose vectors are the fake service's answers
for known queries, so the row a query should find comes first with similarity 1."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from llama_index.core import Document, Settings
from llama_index.core.indices import MultiModalVectorStoreIndex
from llama_index.core.llms import LLMMetadata, MockLLM
from llama_index.core.node_parser import SentenceSplitter
from llama_index.core.schema import ImageNode, MetadataMode, NodeWithScore, QueryBundle, TextNode
from llama_index.core.vector_stores.types import (
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
)

from tests._service_fakes import DIMENSION, MockHttpClients
from tests.llama_index._llama_index_fakes import KEY, FakeService, write_image
from tongyi_vision import InputError
from tongyi_vision.index import (
    IndexBusyError,
    IndexInfo,
    IndexTable,
    NotAnIndexError,
    Row,
    WriteLock,
)
from tongyi_vision.llama_index import TongyiIndexVectorStore, TongyiVisionEmbedding, open_index
from tongyi_vision.media.sources import data_uri, file_uri

FLASH = "tongyi-embedding-vision-flash"
MakeEmbedding = Callable[..., TongyiVisionEmbedding]


def spread_vector(content: dict[str, Any], dimension: int = DIMENSION) -> list[float]:
    """A pseudo-random vector of a part's content: unrelated contents are near orthogonal,
    so the row whose vector is a query's own comes first, with similarity 1."""
    digest = hashlib.shake_256(json.dumps(content, sort_keys=True).encode()).digest(dimension)
    return [byte - 127.5 for byte in digest]


@dataclass
class SpreadService(FakeService):
    """The fake service of this suite, answering :func:`spread_vector`."""

    def vector(self, content: dict[str, Any], dimension: int) -> list[float]:
        return spread_vector(content, dimension)


@pytest.fixture
def service() -> SpreadService:
    return SpreadService()


def text_vector(text: str) -> list[float]:
    return spread_vector({"text": text})


def image_vector(path: Path) -> list[float]:
    return spread_vector({"image": data_uri("image/png", path.read_bytes())})


@dataclass
class Built:
    """An index folder written here, and what is in it."""

    path: Path
    notes: Path
    red: Path
    blue: Path
    video: Path


@pytest.fixture
def built(tmp_path: Path) -> Built:
    """Rows as ``tongyi-vision embed`` writes them: two text chunks, two images, a clip."""
    files = tmp_path / "files"
    red = write_image(files / "red.png", (220, 20, 20))
    blue = write_image(files / "blue.png", (20, 20, 220))
    notes, video = files / "notes.txt", files / "talk.mp4"
    table = IndexTable.create(tmp_path / "photos.index", IndexInfo(FLASH, 768, "openai"))
    table.add(
        [
            Row(
                f"{notes}#chunk=0",
                str(notes),
                "text",
                "n" * 64,
                "A red bicycle leans against a wall.",
                text_vector("red bicycle"),
                {"file_name": "notes.txt", "chunk": 0, "chunks": 2},
            ),
            Row(
                f"{notes}#chunk=1",
                str(notes),
                "text",
                "n" * 64,
                "Rain over the harbour.",
                text_vector("harbour"),
                {"file_name": "notes.txt", "chunk": 1, "chunks": 2},
            ),
            Row(
                str(red),
                str(red),
                "image",
                "r" * 64,
                file_uri(red),
                image_vector(red),
                {"file_name": "red.png", "mime_type": "image/png", "width": 32, "height": 24},
            ),
            Row(
                str(blue),
                str(blue),
                "image",
                "b" * 64,
                file_uri(blue),
                # the vector a text query "blue sky" gets: text-to-image finds this row
                text_vector("blue sky"),
                {"file_name": "blue.png", "mime_type": "image/png", "width": 32, "height": 24},
            ),
            Row(
                f"{video}#t=10,20",
                str(video),
                "video",
                "v" * 64,
                file_uri(video) + "#t=10,20",
                text_vector("a slide with a chart"),
                {"file_name": "talk.mp4", "mime_type": "video/mp4", "duration": 10.0},
                start_seconds=10.0,
                end_seconds=20.0,
            ),
        ]
    )
    return Built(tmp_path / "photos.index", notes, red, blue, video)


@pytest.fixture
def no_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """LlamaIndex's Settings without an embed model or an LLM: a default built from them
    would be OpenAI's."""
    monkeypatch.setattr(Settings, "_embed_model", None)
    monkeypatch.setattr(Settings, "_llm", None)
    yield
    assert Settings._embed_model is None, "open_index resolved Settings.embed_model"
    assert Settings._llm is None, "open_index resolved Settings.llm"


def ids(found: list[NodeWithScore]) -> list[str]:
    return [hit.node.node_id for hit in found]


def rows_of(path: Path) -> dict[str, Row]:
    table = IndexTable.open(path)
    return {row.id: row for row in table.get(list(table.state()), vectors=True)}


@pytest.mark.usefixtures("no_settings")
def test_text_to_image_finds_images_and_clips_only(
    built: Built, make_embedding: MakeEmbedding, service: FakeService
) -> None:
    embedding = make_embedding()
    index = open_index(built.path, embedding)
    assert isinstance(index, MultiModalVectorStoreIndex)
    assert index._embed_model is embedding and index.image_embed_model is embedding

    found = index.as_retriever(image_similarity_top_k=3).text_to_image_retrieve("blue sky")

    assert ids(found)[0] == str(built.blue) and found[0].score == pytest.approx(1.0)
    assert sorted(ids(found)) == sorted([str(built.red), str(built.blue), f"{built.video}#t=10,20"])
    scores = [hit.score or 0.0 for hit in found]
    assert scores == sorted(scores, reverse=True)
    image = found[0].node
    assert isinstance(image, ImageNode)
    assert (image.image_path, image.image_mimetype) == (str(built.blue), "image/png")
    assert image.metadata == {
        "file_name": "blue.png",
        "mime_type": "image/png",
        "width": 32,
        "height": 24,
        "id": str(built.blue),
        "source": str(built.blue),
        "kind": "image",
        "sha256": "b" * 64,
    }
    assert image.ref_doc_id == str(built.blue)
    assert service.contents == [{"text": "blue sky"}]  # one query, nothing re-embedded


@pytest.mark.usefixtures("no_settings")
def test_image_to_image_finds_the_twin_of_the_query_image(
    built: Built, make_embedding: MakeEmbedding, service: FakeService, tmp_path: Path
) -> None:
    twin = tmp_path / "query" / "same-red.png"
    twin.parent.mkdir()
    shutil.copyfile(built.red, twin)
    index = open_index(built.path, make_embedding())

    found = index.as_retriever(image_similarity_top_k=2).image_to_image_retrieve(str(twin))

    assert ids(found)[0] == str(built.red) and found[0].score == pytest.approx(1.0)
    assert len(found) == 2 and all(hit.node.metadata["kind"] != "text" for hit in found)
    assert service.kinds == ["image"]


@pytest.mark.usefixtures("no_settings")
def test_text_to_text_finds_text_chunks_as_text_nodes(
    built: Built, make_embedding: MakeEmbedding
) -> None:
    index = open_index(built.path, make_embedding())
    retriever = index.as_retriever(similarity_top_k=5)

    found = retriever.text_retrieve("red bicycle")

    assert ids(found) == [f"{built.notes}#chunk=0", f"{built.notes}#chunk=1"]
    node = found[0].node
    assert type(node) is TextNode
    assert node.get_content() == "A red bicycle leans against a wall."
    assert node.metadata["chunk"] == 0 and node.metadata["source"] == str(built.notes)
    assert node.ref_doc_id == str(built.notes)
    # the LLM is shown the text and where it came from, not the bookkeeping
    shown = node.get_content(metadata_mode="llm")  # type: ignore[arg-type]
    assert "notes.txt" in shown and "sha256" not in shown and "chunks" not in shown


@pytest.mark.usefixtures("no_settings")
def test_retrieve_returns_the_top_texts_then_the_top_media(
    built: Built, make_embedding: MakeEmbedding, service: FakeService
) -> None:
    index = open_index(built.path, make_embedding())

    found = index.as_retriever(similarity_top_k=1, image_similarity_top_k=2).retrieve(
        "a slide with a chart"
    )

    assert len(found) == 3
    assert found[0].node.metadata["kind"] == "text"
    assert ids(found)[1] == f"{built.video}#t=10,20"
    assert {hit.node.metadata["kind"] for hit in found[1:]} <= {"image", "video"}


@pytest.mark.usefixtures("no_settings")
def test_a_clip_comes_back_with_its_reference_and_times(
    built: Built, make_embedding: MakeEmbedding
) -> None:
    index = open_index(built.path, make_embedding())

    clip = index.as_retriever(image_similarity_top_k=1).text_to_image_retrieve(
        "a slide with a chart"
    )[0]

    reference = file_uri(built.video) + "#t=10,20"
    assert clip.node.get_content() == reference
    assert clip.node.metadata["clip_uri"] == reference
    assert (clip.node.metadata["start_seconds"], clip.node.metadata["end_seconds"]) == (10.0, 20.0)
    assert clip.node.metadata["kind"] == "video" and clip.node.ref_doc_id == str(built.video)


@pytest.mark.usefixtures("no_settings")
def test_inserted_nodes_become_rows_and_are_found(
    built: Built, make_embedding: MakeEmbedding, service: FakeService, tmp_path: Path
) -> None:
    green = write_image(tmp_path / "new" / "green.png", (20, 200, 20))
    index = open_index(built.path, make_embedding())
    note = TextNode(id_="note-1", text="a green kite", metadata={"topic": "kites"})

    index.insert_nodes([note])
    # an insert with no image in it must not stop the image store being asked
    assert ids(index.as_retriever().text_to_image_retrieve("blue sky"))[0] == str(built.blue)
    index.insert_nodes([ImageNode(id_="kite-photo", image_path=str(green))])

    rows = rows_of(built.path)
    assert len(rows) == 7
    assert (rows["note-1"].kind, rows["note-1"].content) == ("text", "a green kite")
    assert rows["note-1"].metadata == {"topic": "kites"}
    # embedded as LlamaIndex embeds a text node: its metadata, then its text
    embedded = note.get_content(metadata_mode=MetadataMode.EMBED)
    assert embedded == "topic: kites\n\na green kite"
    assert list(rows["note-1"].vector) == pytest.approx(text_vector(embedded))
    photo = rows["kite-photo"]
    assert (photo.kind, photo.content, photo.source) == ("image", file_uri(green), str(green))
    assert list(photo.vector) == pytest.approx(image_vector(green))
    retriever = index.as_retriever(similarity_top_k=1, image_similarity_top_k=1)
    assert ids(retriever.text_retrieve(embedded)) == ["note-1"]
    assert ids(retriever.image_to_image_retrieve(str(green))) == ["kite-photo"]
    # a second index over the folder (another process) sees them too
    again = open_index(built.path, make_embedding()).as_retriever(similarity_top_k=1)
    assert ids(again.text_retrieve(embedded)) == ["note-1"]


@pytest.mark.usefixtures("no_settings")
def test_inserting_a_node_again_replaces_its_row(
    built: Built, make_embedding: MakeEmbedding
) -> None:
    index = open_index(built.path, make_embedding())
    index.insert_nodes([TextNode(id_="note", text="first words")])
    index.insert_nodes([TextNode(id_="note", text="second words")])

    rows = rows_of(built.path)
    assert len(rows) == 6 and rows["note"].content == "second words"


@pytest.mark.usefixtures("no_settings")
def test_an_inserted_document_is_deleted_by_its_id(
    built: Built, make_embedding: MakeEmbedding
) -> None:
    index = open_index(
        built.path,
        make_embedding(),
        transformations=[SentenceSplitter(chunk_size=64, chunk_overlap=8)],
    )
    document = Document(text="Kites fly over the harbour. " * 20, metadata={"file_name": "k.md"})

    index.insert(document)

    added = {i: r for i, r in rows_of(built.path).items() if r.metadata.get("file_name") == "k.md"}
    assert len(added) > 1
    assert {r.metadata["ref_doc_id"] for r in added.values()} == {document.doc_id}
    found = index.as_retriever(similarity_top_k=10).text_retrieve("kites")
    assert {hit.node.ref_doc_id for hit in found if hit.node.node_id in added} == {document.doc_id}

    index.delete_ref_doc(document.doc_id)

    assert set(rows_of(built.path)) == {
        f"{built.notes}#chunk=0",
        f"{built.notes}#chunk=1",
        str(built.red),
        str(built.blue),
        f"{built.video}#t=10,20",
    }


def test_deleting_a_source_file_as_a_document_removes_its_rows(built: Built) -> None:
    store = TongyiIndexVectorStore(built.path, kinds=("text",))
    store.delete(str(built.notes))
    assert str(built.notes) + "#chunk=0" not in rows_of(built.path)
    assert len(rows_of(built.path)) == 3


@pytest.mark.usefixtures("no_settings")
def test_index_delete_nodes_removes_images_too(built: Built, make_embedding: MakeEmbedding) -> None:
    # VectorStoreIndex.delete_nodes asks the text store only: an id names one row of the table
    index = open_index(built.path, make_embedding())
    index.delete_nodes([str(built.red), f"{built.notes}#chunk=1"])
    assert sorted(rows_of(built.path)) == sorted(
        [f"{built.notes}#chunk=0", str(built.blue), f"{built.video}#t=10,20"]
    )


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        (
            MetadataFilters(filters=[MetadataFilter(key="kind", value="video")]),
            ["video"],
        ),
        (
            MetadataFilters(
                filters=[
                    MetadataFilter(key="file_name_is_not_a_column", value="x"),
                ]
            ),
            None,
        ),
        (
            MetadataFilters(
                filters=[
                    MetadataFilter(
                        key="source", value="red.png", operator=FilterOperator.TEXT_MATCH
                    )
                ]
            ),
            ["red"],
        ),
        (
            MetadataFilters(
                filters=[
                    MetadataFilter(key="kind", value="video"),
                    MetadataFilter(key="source", value="blue", operator=FilterOperator.TEXT_MATCH),
                ],
                condition=FilterCondition.OR,
            ),
            ["blue", "video"],
        ),
        (
            MetadataFilters(
                filters=[MetadataFilter(key="kind", value="video")],
                condition=FilterCondition.NOT,
            ),
            ["blue", "red"],
        ),
        (
            MetadataFilters(
                filters=[
                    MetadataFilter(key="start_seconds", value=5, operator=FilterOperator.GTE),
                    MetadataFilter(key="end_seconds", value=20.0, operator=FilterOperator.LTE),
                ]
            ),
            ["video"],
        ),
        (
            MetadataFilters(
                filters=[
                    MetadataFilter(
                        key="sha256", value=["r" * 64, "v" * 64], operator=FilterOperator.NIN
                    )
                ]
            ),
            ["blue"],
        ),
        (
            MetadataFilters(
                filters=[
                    MetadataFilter(
                        key="start_seconds", value=None, operator=FilterOperator.IS_EMPTY
                    )
                ]
            ),
            ["blue", "red"],
        ),
        (
            # _ is a LIKE wildcard: matched literally, it finds nothing here
            MetadataFilters(
                filters=[
                    MetadataFilter(
                        key="source", value="red_png", operator=FilterOperator.TEXT_MATCH
                    )
                ]
            ),
            [],
        ),
    ],
)
def test_metadata_filters_run_as_sql_on_the_row_columns(
    built: Built, filters: MetadataFilters, expected: list[str] | None
) -> None:
    store = TongyiIndexVectorStore(built.path, kinds=("image", "video"))
    query = VectorStoreQuery(
        query_embedding=text_vector("blue sky"), similarity_top_k=10, filters=filters
    )
    if expected is None:
        with pytest.raises(InputError, match="columns id, source, kind, sha256"):
            store.query(query)
        return
    found = store.query(query).nodes or []
    labels = {str(built.red): "red", str(built.blue): "blue", f"{built.video}#t=10,20": "video"}
    assert sorted(labels[node.node_id] for node in found) == expected


def test_get_nodes_by_id_and_by_filter(built: Built) -> None:
    store = TongyiIndexVectorStore(built.path, kinds=("text",))
    by_id = store.get_nodes([str(built.blue), f"{built.notes}#chunk=1", "missing"])
    assert [node.node_id for node in by_id] == [str(built.blue), f"{built.notes}#chunk=1"]
    assert isinstance(by_id[0], ImageNode)
    chunk = MetadataFilters(filters=[MetadataFilter(key="id", value=f"{built.notes}#chunk=0")])
    assert [node.node_id for node in store.get_nodes(filters=chunk)] == [f"{built.notes}#chunk=0"]
    # a filter selects among this store's kinds only
    red = MetadataFilters(filters=[MetadataFilter(key="id", value=str(built.red))])
    assert store.get_nodes(filters=red) == []


def test_clear_empties_only_the_stores_kinds(built: Built) -> None:
    TongyiIndexVectorStore(built.path, kinds=("image", "video")).clear()
    assert sorted(rows_of(built.path)) == [f"{built.notes}#chunk=0", f"{built.notes}#chunk=1"]


def test_a_node_without_a_vector_is_refused(built: Built) -> None:
    store = TongyiIndexVectorStore(built.path)
    with pytest.raises(InputError, match="node 'bare': has no embedding"):
        store.add([TextNode(id_="bare", text="no vector")])
    assert len(rows_of(built.path)) == 5


def test_adding_while_the_cli_writes_is_refused(built: Built) -> None:
    store = TongyiIndexVectorStore(built.path)
    node = TextNode(id_="late", text="late", embedding=text_vector("late"))
    with WriteLock(built.path), pytest.raises(IndexBusyError, match="another tongyi-vision run"):
        store.add([node])
    assert store.add([node]) == ["late"]


def test_a_captioned_image_node_is_one_image_row(built: Built, tmp_path: Path) -> None:
    green = write_image(tmp_path / "green.png", (20, 200, 20))
    node = ImageNode(
        id_="captioned", image_path=str(green), text="a green square", embedding=[0.5] * 768
    )
    assert TongyiIndexVectorStore(built.path, kinds=("text",)).add([node]) == []
    assert TongyiIndexVectorStore(built.path, kinds=("image", "video")).add([node]) == ["captioned"]
    row = rows_of(built.path)["captioned"]
    assert (row.kind, row.content) == ("image", file_uri(green))


def test_a_text_that_is_a_media_reference_is_an_image_row(built: Built) -> None:
    node = TextNode(id_="ref", text=file_uri(built.red), embedding=image_vector(built.red))
    TongyiIndexVectorStore(built.path, kinds=("text",)).add([node])
    row = rows_of(built.path)["ref"]
    assert (row.kind, row.source) == ("image", str(built.red))


@pytest.mark.usefixtures("no_settings")
async def test_async_retrieval_and_insert(
    built: Built, make_embedding: MakeEmbedding, service: FakeService, tmp_path: Path
) -> None:
    twin = tmp_path / "twin.png"
    shutil.copyfile(built.red, twin)
    index = open_index(built.path, make_embedding())
    retriever = index.as_retriever(similarity_top_k=1, image_similarity_top_k=1)

    assert ids(await retriever.atext_to_image_retrieve("blue sky")) == [str(built.blue)]
    assert ids(await retriever.aimage_to_image_retrieve(str(twin))) == [str(built.red)]
    await index.ainsert_nodes([TextNode(id_="async-note", text="an async note")])
    assert ids(await retriever.atext_retrieve("an async note")) == ["async-note"]
    found = await retriever.aretrieve("red bicycle")
    assert ids(found)[0] == f"{built.notes}#chunk=0" and len(found) == 2


class ChatMockLLM(MockLLM):
    """LlamaIndex's mock LLM as a chat model (multimodal synthesis asks for one)."""

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(num_output=self.max_tokens or -1, is_chat_model=True)


@pytest.mark.usefixtures("no_settings")
async def test_a_query_engine_answers_with_the_llm_it_is_given(
    built: Built, make_embedding: MakeEmbedding
) -> None:
    # aquery: LlamaIndex's sync query runs a coroutine on an event loop it never closes
    engine = open_index(built.path, make_embedding()).as_query_engine(
        llm=ChatMockLLM(max_tokens=None), similarity_top_k=1, image_similarity_top_k=1
    )
    found = engine.retrieve(QueryBundle("blue sky"))
    assert ids(found)[1] == str(built.blue)
    answer = await engine.aquery("blue sky")
    assert [hit.node.node_id for hit in answer.source_nodes] == ids(found)
    # the mock answers with its prompt: the retrieved text is the context
    assert found[0].node.get_content() in str(answer)


@pytest.mark.usefixtures("no_settings")
def test_the_default_embedding_is_the_indexs_model_size_and_dialect(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DASHSCOPE_API_KEY", KEY)
    IndexTable.create(tmp_path / "small", IndexInfo(FLASH, 512, "dashscope"))
    IndexTable.create(
        tmp_path / "plus", IndexInfo("tongyi-embedding-vision-plus", 1152, "dashscope")
    )

    small = open_index(tmp_path / "small")
    plus = open_index(tmp_path / "plus")

    model = small._embed_model
    assert isinstance(model, TongyiVisionEmbedding) and small.image_embed_model is model
    assert (model.model_name, model.dimension, model.dialect) == (FLASH, 512, "dashscope")
    assert model.client.dimension == 512
    other = plus._embed_model
    assert isinstance(other, TongyiVisionEmbedding)
    assert (other.model_name, other.dimension) == ("tongyi-embedding-vision-plus", 1152)
    assert KEY not in repr(model) and KEY not in repr(small.vector_store)


@pytest.mark.usefixtures("no_settings")
def test_options_go_to_the_model_it_makes_and_to_the_index(
    built: Built, service: SpreadService, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TONGYI_VISION_DIALECT", "dashscope")
    clients = MockHttpClients(service)
    http, ahttp = clients.pair()
    splitter = SentenceSplitter(chunk_size=64, chunk_overlap=8)
    try:
        index = open_index(
            built.path,
            api_key=KEY,
            http_client=http,
            http_async_client=ahttp,
            max_retries=0,
            transformations=[splitter],
        )
        model = index.image_embed_model
        assert isinstance(model, TongyiVisionEmbedding)
        assert (model.dialect, model.max_retries) == ("dashscope", 0)  # the environment's
        assert index._transformations == [splitter]
        found = index.as_retriever(image_similarity_top_k=1).text_to_image_retrieve("blue sky")
        assert ids(found) == [str(built.blue)]
        assert service.requests[0].url.path.endswith("/multimodal-embedding")
        assert service.requests[0].headers["authorization"] == f"Bearer {KEY}"
    finally:
        clients.close()


def test_options_for_the_model_and_a_model_are_not_both_taken(
    built: Built, make_embedding: MakeEmbedding
) -> None:
    with pytest.raises(TypeError, match=r"either embed_model or options .*\(api_key\)"):
        open_index(built.path, make_embedding(), api_key=KEY)


def test_an_embedding_of_another_size_is_refused(
    built: Built, make_embedding: MakeEmbedding
) -> None:
    other = make_embedding(model_name="tongyi-embedding-vision-plus")
    with pytest.raises(InputError, match=r"768-dimensional vectors .* makes 1152-dimensional"):
        open_index(built.path, other)


def test_a_text_only_embed_model_needs_an_image_model(built: Built) -> None:
    from llama_index.core.embeddings import MockEmbedding

    with pytest.raises(InputError, match="embeds no images"):
        open_index(built.path, MockEmbedding(embed_dim=768))


def test_a_folder_that_is_no_index_is_named(tmp_path: Path) -> None:
    with pytest.raises(NotAnIndexError, match="no such index"):
        open_index(tmp_path / "nowhere")


@pytest.mark.parametrize("kinds", [(), ("text", "audio")])
def test_store_kinds_are_checked(built: Built, kinds: tuple[str, ...]) -> None:
    with pytest.raises(ValueError, match="kinds must be some of text, image, video"):
        TongyiIndexVectorStore(built.path, kinds=kinds)


def test_an_image_given_as_base64_round_trips_as_a_data_uri(built: Built) -> None:
    payload = base64.b64encode(built.red.read_bytes()).decode()
    store = TongyiIndexVectorStore(built.path, kinds=("image", "video"))
    store.add([ImageNode(id_="inline", image=payload, embedding=image_vector(built.red))])

    row = rows_of(built.path)["inline"]
    assert (row.kind, row.content) == ("image", f"data:image/png;base64,{payload}")
    (node,) = store.get_nodes(["inline"])
    assert isinstance(node, ImageNode)
    assert (node.image, node.image_mimetype, node.image_path) == (payload, "image/png", None)
