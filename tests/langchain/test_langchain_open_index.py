"""``open_index`` and ``TongyiIndexStore`` on index tables made here, with queries embedded
through a fake gateway behind ``httpx.MockTransport`` (no socket is opened).

The fake's vectors are lexical: a text is a bag of its words, an image a spike at a bucket
named by its bytes, so texts sharing words are near, and an image is near only itself.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings

from tests._service_fakes import DIMENSION, FakeEmbeddingService, MockHttpClients
from tests.langchain._langchain_fakes import KEY, png_bytes, write_image
from tongyi_vision import FLASH, PLUS, Image, InputError, MediaNotFoundError, file_uri
from tongyi_vision.index import (
    IndexBusyError,
    IndexInfo,
    IndexTable,
    NotAnIndexError,
    Row,
    WriteLock,
)
from tongyi_vision.langchain import (
    TongyiImageLoader,
    TongyiIndexStore,
    TongyiVisionEmbeddings,
    open_index,
)

MEDIUM_DIMENSIONS = {"text": 0, "image": 1, "video": 2}
WORDS_FROM = 8


def bucket(value: str, dimension: int) -> int:
    digest = hashlib.sha256(value.encode()).digest()
    return WORDS_FROM + int.from_bytes(digest[:4], "big") % (dimension - WORDS_FROM)


def lexical(content: dict[str, Any], dimension: int = DIMENSION) -> list[float]:
    """The fake's vector of one part: a marker of its medium, then its words or its bytes."""
    ((medium, value),) = content.items()
    vector = [0.0] * dimension
    vector[MEDIUM_DIMENSIONS[medium]] = 1.0
    if medium == "text":
        for word in re.findall(r"[a-z0-9]+", str(value).lower()):
            vector[bucket(word, dimension)] += 1.0
    else:
        vector[bucket(json.dumps(value), dimension)] += 4.0
    return vector


@dataclass
class LexicalGateway(FakeEmbeddingService):
    def vector(self, content: dict[str, Any], dimension: int) -> list[float]:
        return lexical(content, dimension)


@pytest.fixture
def gateway() -> LexicalGateway:
    """This module's gateway (``make_embeddings`` of conftest.py sends to it)."""
    return LexicalGateway()


@pytest.fixture
def http_pair(gateway: LexicalGateway) -> Iterator[Callable[[], dict[str, Any]]]:
    """``http_pair()``: the http_client/http_async_client options of embeddings that send to
    the gateway, for ``open_index``'s own embeddings."""
    clients = MockHttpClients(gateway)

    def pair() -> dict[str, Any]:
        http, ahttp = clients.pair()
        return {"http_client": http, "http_async_client": ahttp}

    yield pair
    clients.close()


NOTES = [
    "a red bicycle leaning on a wall",
    "the harbour at night with fishing boats",
]


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    return write_image(tmp_path / "photos" / "red.png", (220, 30, 40))


@pytest.fixture
def index(
    tmp_path: Path,
    photo: Path,
    gateway: LexicalGateway,
    make_embeddings: Callable[..., TongyiVisionEmbeddings],
) -> Path:
    """An index shaped as ``tongyi-vision embed`` writes it: a text file's two chunks and an
    image, with the vectors the gateway gives them. The gateway's log is then emptied."""
    path = tmp_path / "photos.index"
    table = IndexTable.create(path, IndexInfo(FLASH, DIMENSION, "openai"))
    notes = str(tmp_path / "notes.txt")
    rows = [
        Row(
            id=f"{notes}#chunk={n}",
            source=notes,
            kind="text",
            sha256="ab" * 32,
            content=text,
            vector=lexical({"text": text}),
            metadata={"file_name": "notes.txt", "chunk": n, "chunks": 2},
        )
        for n, text in enumerate(NOTES)
    ]
    image_vector = make_embeddings().embed_image([str(photo)])[0]
    rows.append(
        Row(
            id=str(photo),
            source=str(photo),
            kind="image",
            sha256="cd" * 32,
            content=file_uri(photo),
            vector=image_vector,
            metadata={"file_name": "red.png", "mime_type": "image/png", "bytes": 99},
        )
    )
    with WriteLock(path):
        table.add(rows)
    gateway.requests.clear()
    gateway.bodies.clear()
    return path


@pytest.fixture
def store(
    index: Path, make_embeddings: Callable[..., TongyiVisionEmbeddings]
) -> Iterator[TongyiIndexStore]:
    with open_index(index, make_embeddings()) as opened:
        yield opened


class Vectors(Embeddings):
    """Embeddings that answer vectors fixed by the test (for scores and MMR)."""

    def __init__(self, vectors: dict[str, list[float]]) -> None:
        self.vectors = vectors

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self.vectors[text] for text in texts]

    def embed_query(self, text: str) -> list[float]:
        return self.vectors[text]


def fixed_store(tmp_path: Path, vectors: dict[str, list[float]]) -> TongyiIndexStore:
    dimension = len(next(iter(vectors.values())))
    table = IndexTable.create(tmp_path / "fixed.index", IndexInfo("fixed", dimension, "openai"))
    return TongyiIndexStore(table, Vectors(vectors))


def ids_of(documents: list[Document]) -> list[str | None]:
    return [doc.id for doc in documents]


# --- opening ---


def test_open_index_embeds_queries_with_the_index_model(
    index: Path, gateway: LexicalGateway, http_pair: Callable[[], dict[str, Any]]
) -> None:
    with open_index(index, api_key=KEY, **http_pair()) as store:
        assert isinstance(store.embeddings, TongyiVisionEmbeddings)
        assert (store.embeddings.model, store.embeddings.dimension) == (FLASH, DIMENSION)
        found = store.similarity_search("red bicycle", k=1)
    assert [doc.page_content for doc in found] == [NOTES[0]]
    (body,) = gateway.bodies
    assert body["model"] == FLASH
    assert body["input"] == ["red bicycle"]
    assert gateway.requests[0].headers["authorization"] == f"Bearer {KEY}"


def test_open_index_takes_the_key_from_the_environment(
    index: Path,
    gateway: LexicalGateway,
    http_pair: Callable[[], dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EMPIRIOLABS_API_KEY", "sk-from-the-environment")
    with open_index(index, **http_pair()) as store:
        store.similarity_search("boats", k=1)
        assert "sk-from-the-environment" not in repr(store.embeddings)
    assert gateway.requests[0].headers["authorization"] == "Bearer sk-from-the-environment"


def test_open_index_follows_the_dialect_of_the_environment(
    index: Path,
    gateway: LexicalGateway,
    http_pair: Callable[[], dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TONGYI_VISION_DIALECT", "dashscope")
    with open_index(index, api_key=KEY, **http_pair()) as store:
        assert store.similarity_search("red bicycle", k=1)[0].page_content == NOTES[0]
    assert gateway.requests[0].url.path.endswith("/multimodal-embedding")
    assert gateway.bodies[0]["model"] == FLASH


def test_open_index_refuses_a_folder_without_an_index(tmp_path: Path) -> None:
    with pytest.raises(NotAnIndexError, match="tongyi-vision embed") as caught:
        open_index(tmp_path / "missing.index", Vectors({}))
    assert str(tmp_path / "missing.index") in str(caught.value)


def test_open_index_takes_embeddings_or_options_not_both(
    index: Path, make_embeddings: Callable[..., TongyiVisionEmbeddings]
) -> None:
    with pytest.raises(TypeError, match="cache"):
        open_index(index, make_embeddings(), cache="cache.sqlite")


def test_embeddings_of_another_model_are_refused(
    index: Path, gateway: LexicalGateway, make_embeddings: Callable[..., TongyiVisionEmbeddings]
) -> None:
    with pytest.raises(InputError, match=PLUS) as caught:
        open_index(index, make_embeddings(model=PLUS))
    assert FLASH in str(caught.value) and str(index) in str(caught.value)
    assert gateway.requests == []


# --- what the CLI wrote, as documents ---


def test_rows_the_cli_wrote_come_back_with_their_columns_in_metadata(
    store: TongyiIndexStore, index: Path, photo: Path
) -> None:
    notes = str(index.parent / "notes.txt")
    (doc,) = store.similarity_search("fishing boats at night", k=1)
    assert doc == Document(
        id=f"{notes}#chunk=1",
        page_content=NOTES[1],
        metadata={
            "id": f"{notes}#chunk=1",
            "source": notes,
            "kind": "text",
            "sha256": "ab" * 32,
            "file_name": "notes.txt",
            "chunk": 1,
            "chunks": 2,
        },
    )
    (image,) = store.get_by_ids([str(photo)])
    assert image.page_content == file_uri(photo)
    assert image.metadata["kind"] == "image" and image.metadata["mime_type"] == "image/png"


def test_similarity_search_by_image_finds_the_image_itself(
    store: TongyiIndexStore, photo: Path, gateway: LexicalGateway
) -> None:
    found = store.similarity_search_by_image_with_score(photo, k=3)
    assert found[0][0].id == str(photo)
    assert found[0][1] == pytest.approx(1.0, abs=1e-5)
    assert all(score < 0.5 for _, score in found[1:])
    assert gateway.kinds == ["image"]


def test_similarity_search_by_vector_and_with_score(store: TongyiIndexStore) -> None:
    vector = lexical({"text": NOTES[0]})
    (doc,) = store.similarity_search_by_vector(vector, k=1)
    assert doc.page_content == NOTES[0]
    ((same, score),) = store.similarity_search_with_score_by_vector(vector, k=1)
    assert same == doc and score == pytest.approx(1.0, abs=1e-5)


def test_reads_see_rows_another_process_commits_after_opening(
    store: TongyiIndexStore, index: Path
) -> None:
    later = IndexTable.open(index)
    text = "a lighthouse on the rocks"
    with WriteLock(index):
        later.add([Row("later", "", "text", "", text, lexical({"text": text}))])
    assert ids_of(store.similarity_search("lighthouse rocks", k=1)) == ["later"]


def test_an_empty_index_finds_nothing(
    tmp_path: Path, make_embeddings: Callable[..., TongyiVisionEmbeddings]
) -> None:
    table = IndexTable.create(tmp_path / "empty.index", IndexInfo(FLASH, DIMENSION, "openai"))
    assert TongyiIndexStore(table, make_embeddings()).similarity_search("anything") == []


# --- adding appends ---


def test_add_documents_appends_and_leaves_the_rows_there_intact(
    store: TongyiIndexStore, index: Path, gateway: LexicalGateway
) -> None:
    before = {row.id: row for row in store.table.get(list(store.table.state()), vectors=True)}
    docs = [Document(page_content="a blue kayak on the lake", metadata={"page": 1})]
    first = store.add_documents(docs)
    second = store.add_documents(docs)  # the same document again: another row, not a replace
    assert first != second and all(uuid.UUID(i) for i in first + second)
    assert store.table.count() == len(before) + 2
    after = store.table.get(list(before), vectors=True)
    assert [(r.id, r.content, r.metadata, list(r.vector)) for r in after] == [
        (r.id, r.content, r.metadata, list(r.vector)) for r in before.values()
    ]
    assert gateway.contents == [{"text": "a blue kayak on the lake"}] * 2
    assert docs == [Document(page_content="a blue kayak on the lake", metadata={"page": 1})]
    found = store.similarity_search("blue kayak", k=2)
    assert sorted(doc.id or "" for doc in found) == sorted(first + second)


def test_a_document_with_an_existing_id_replaces_that_row(
    store: TongyiIndexStore, index: Path
) -> None:
    notes = str(index.parent / "notes.txt")
    count = store.table.count()
    (replaced,) = store.add_documents(
        [Document(id=f"{notes}#chunk=0", page_content="a green tram", metadata={"edited": True})]
    )
    assert replaced == f"{notes}#chunk=0"
    assert store.table.count() == count
    (doc,) = store.get_by_ids([replaced])
    assert doc.page_content == "a green tram" and doc.metadata == {"edited": True}
    assert ids_of(store.similarity_search("green tram", k=1)) == [replaced]


def test_ids_given_twice_in_one_call_are_refused_before_anything_is_sent(
    store: TongyiIndexStore, gateway: LexicalGateway
) -> None:
    count = store.table.count()
    with pytest.raises(InputError, match="more than one document") as caught:
        store.add_texts(["one", "two", "three"], ids=["a", "b", "a"])
    assert caught.value.part_index == 2 and "'a'" in str(caught.value)
    assert gateway.requests == [] and store.table.count() == count


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda s: s.add_texts(["one", "two"], [{}]), "1 metadatas for 2 documents"),
        (lambda s: s.add_texts(["one"], ids=["a", "b"]), "2 ids for 1 documents"),
        (lambda s: s.add_texts("one"), r"wrap it: add_texts\(\[text\]\)"),
        (lambda s: s.add_images("red.png"), r"add_images\(\[path\]\)"),
        (lambda s: s.add_texts(["one", 2]), "part 1: add_texts takes strings, not int"),
    ],
)
def test_malformed_additions_are_refused_before_anything_is_sent(
    store: TongyiIndexStore,
    gateway: LexicalGateway,
    call: Callable[[TongyiIndexStore], Any],
    message: str,
) -> None:
    with pytest.raises(InputError, match=message):
        call(store)
    assert gateway.requests == []


def test_adding_nothing_sends_nothing(store: TongyiIndexStore, gateway: LexicalGateway) -> None:
    assert store.add_documents([]) == []
    assert gateway.requests == []


def test_metadata_comes_back_as_it_went_in_even_under_column_names(
    store: TongyiIndexStore,
) -> None:
    metadata = {"id": 7, "source": "field notes", "kind": "memo", "page": 3, "tags": ["a"]}
    (row_id,) = store.add_texts(["a memo about the harbour"], [metadata])
    (doc,) = store.get_by_ids([row_id])
    assert doc == Document(id=row_id, page_content="a memo about the harbour", metadata=metadata)
    (row,) = store.table.get([row_id])
    # The columns hold the row's own values: what it was embedded as, and the source given.
    assert (row.id, row.kind, row.source) == (row_id, "text", "field notes")


# --- kinds: what a document is embedded as ---


def test_loader_documents_become_image_rows(
    store: TongyiIndexStore, tmp_path: Path, gateway: LexicalGateway
) -> None:
    picture = write_image(tmp_path / "more" / "blue.png", (30, 70, 200))
    (loaded,) = TongyiImageLoader(tmp_path / "more").load()
    (row_id,) = store.add_documents([loaded])
    (row,) = store.table.get([row_id])
    assert (row.kind, row.content, row.source) == ("image", file_uri(picture), str(picture))
    assert gateway.kinds == ["image"]
    assert store.table.count("kind = 'image'") == 2
    assert ids_of(store.similarity_search_by_image(picture, k=1)) == [row_id]
    assert store.get_by_ids([row_id]) == [Document(id=row_id, **_content(loaded))]


def _content(doc: Document) -> dict[str, Any]:
    return {"page_content": doc.page_content, "metadata": doc.metadata}


def test_data_uris_are_image_rows_and_plain_text_is_text(store: TongyiIndexStore) -> None:
    uri = "data:image/png;base64," + base64.b64encode(png_bytes((1, 2, 3))).decode()
    image_id, text_id = store.add_texts([uri, "see /tmp/red.png for the picture"])
    kinds = {row.id: (row.kind, row.source) for row in store.table.get([image_id, text_id])}
    assert kinds == {image_id: ("image", ""), text_id: ("text", "")}


def test_a_reference_to_a_missing_file_is_refused_naming_it(
    store: TongyiIndexStore, tmp_path: Path, gateway: LexicalGateway
) -> None:
    gone = file_uri(tmp_path / "gone.png")
    with pytest.raises(MediaNotFoundError) as caught:
        store.add_texts(["fine", gone])
    assert caught.value.part_index == 1 and "gone.png" in str(caught.value)
    assert gateway.requests == []


def test_without_media_references_a_file_uri_is_a_text_row(
    index: Path, photo: Path, make_embeddings: Callable[..., TongyiVisionEmbeddings]
) -> None:
    with open_index(index, make_embeddings(embed_media_references=False)) as store:
        (row_id,) = store.add_texts([file_uri(photo)], [{"kind": "image"}])
        assert store.table.get([row_id])[0].kind == "text"  # embedded as text, so a text row
        assert store.get_by_ids([row_id])[0].metadata == {"kind": "image"}


def test_other_embeddings_keep_the_kind_the_metadata_says(tmp_path: Path) -> None:
    store = fixed_store(tmp_path, {"file:///x.png": [1.0, 0.0], "note": [0.0, 1.0]})
    image_id, text_id = store.add_texts(["file:///x.png", "note"], [{"kind": "image"}, {}])
    kinds = {row.id: row.kind for row in store.table.get([image_id, text_id])}
    assert kinds == {image_id: "image", text_id: "text"}


def test_add_images_embeds_them_as_images(
    store: TongyiIndexStore, tmp_path: Path, gateway: LexicalGateway
) -> None:
    green = write_image(tmp_path / "green.png", (30, 160, 60))
    url = "https://example.com/cat.jpg"
    local_id, url_id = store.add_images([green, url], [{"caption": "green"}, {}])
    rows = {row.id: row for row in store.table.get([local_id, url_id])}
    assert (rows[local_id].content, rows[local_id].kind) == (file_uri(green), "image")
    assert (rows[url_id].content, rows[url_id].kind) == (url, "image")
    assert gateway.kinds == ["image", "image"]
    assert gateway.contents[1] == {"image": url}
    assert store.get_by_ids([local_id])[0].metadata == {"caption": "green"}


def test_image_methods_need_embeddings_that_have_them(tmp_path: Path, photo: Path) -> None:
    store = fixed_store(tmp_path, {"x": [1.0, 0.0]})
    with pytest.raises(InputError, match="embed_image"):
        store.similarity_search_by_image("query.png")
    with pytest.raises(InputError, match="embed_video"):
        store.similarity_search_by_video("clip.mp4")
    with pytest.raises(InputError, match="embed_image"):
        store.add_images([photo])
    assert store.table.count() == 0


class ImageVectors(Vectors):
    """Other embeddings with an image method (as OpenCLIP's in langchain-experimental)."""

    def embed_image(self, uris: list[str]) -> list[list[float]]:
        return [self.vectors["image"] for _ in uris]


def test_add_images_with_other_embeddings_makes_image_rows(tmp_path: Path, photo: Path) -> None:
    table = IndexTable.create(tmp_path / "clip.index", IndexInfo("clip", 2, "openai"))
    store = TongyiIndexStore(table, ImageVectors({"image": [0.0, 1.0]}))
    (row_id,) = store.add_images([photo])
    (row,) = table.get([row_id])
    assert (row.kind, row.content, row.source) == ("image", file_uri(photo), str(photo))
    assert ids_of(store.similarity_search_by_vector([0.0, 1.0], k=1)) == [row_id]


# --- filters ---


@pytest.mark.parametrize(
    ("filter", "kinds"),
    [
        ({"kind": "image"}, ["image"]),
        ({"kind": ["text", "video"]}, ["text", "text"]),
        ("kind = 'image'", ["image"]),
        ("kind != 'image' AND source LIKE '%notes.txt'", ["text", "text"]),
        ({"kind": []}, []),
        ({"start_seconds": None, "kind": "text"}, ["text", "text"]),
        (None, ["image", "text", "text"]),
    ],
)
def test_filters_apply_before_the_search(
    store: TongyiIndexStore, filter: Any, kinds: list[str]
) -> None:
    found = store.similarity_search("red bicycle", k=10, filter=filter)
    assert sorted(doc.metadata["kind"] for doc in found) == kinds


@pytest.mark.parametrize(
    ("filter", "message"),
    [
        ({"page": 3}, "not 'page'"),
        ({"kind": True}, "not True"),
        (lambda doc: True, "not function"),
        ("kind = = 'image'", "not a valid LanceDB SQL filter"),
    ],
)
def test_bad_filters_are_refused_with_what_to_do(
    store: TongyiIndexStore, gateway: LexicalGateway, filter: Any, message: str
) -> None:
    with pytest.raises(InputError, match=message):
        store.similarity_search_by_vector(lexical({"text": "x"}), k=2, filter=filter)
    with pytest.raises(InputError, match=message):
        store.similarity_search("x", k=2, filter=filter)


def test_a_bad_dict_filter_sends_no_query(store: TongyiIndexStore, gateway: LexicalGateway) -> None:
    with pytest.raises(InputError):
        store.similarity_search("x", filter={"page": 3})
    assert gateway.requests == []


@pytest.mark.parametrize("k", [0, -1, 2.5])
def test_k_must_be_a_positive_count(store: TongyiIndexStore, k: Any) -> None:
    with pytest.raises(InputError, match=f"not {k!r}"):
        store.similarity_search_by_vector(lexical({"text": "x"}), k=k)


def test_retriever_with_a_kind_filter(store: TongyiIndexStore, photo: Path) -> None:
    retriever = store.as_retriever(search_kwargs={"k": 3, "filter": {"kind": "image"}})
    assert ids_of(retriever.invoke("red bicycle")) == [str(photo)]
    mmr = store.as_retriever(search_type="mmr", search_kwargs={"k": 1, "filter": "kind = 'text'"})
    assert [doc.page_content for doc in mmr.invoke("red bicycle")] == [NOTES[0]]


# --- scores and MMR ---


def test_relevance_scores_are_cosine_clipped_to_zero_and_one(tmp_path: Path) -> None:
    store = fixed_store(
        tmp_path,
        {"query": [1.0, 0.0], "same": [2.0, 0.0], "half": [1.0, math.sqrt(3)], "away": [-1, 0.1]},
    )
    store.add_texts(["same", "half", "away"])
    raw = store.similarity_search_with_score("query", k=3)
    assert [(doc.page_content, round(score, 4)) for doc, score in raw] == [
        ("same", 1.0),
        ("half", 0.5),
        ("away", round(-1 / math.sqrt(1.01), 4)),
    ]
    relevance = store.similarity_search_with_relevance_scores("query", k=3)
    assert [round(score, 4) for _, score in relevance] == [1.0, 0.5, 0.0]
    kept = store.similarity_search_with_relevance_scores("query", k=3, score_threshold=0.4)
    assert [doc.page_content for doc, _ in kept] == ["same", "half"]


def test_mmr_prefers_a_different_document_to_a_near_copy(tmp_path: Path) -> None:
    store = fixed_store(
        tmp_path,
        {
            "query": [1.0, 0.0, 0.0],
            "near": [1.0, 0.05, 0.0],
            "near copy": [1.0, 0.06, 0.0],
            "other": [0.7, 0.0, 0.7],
        },
    )
    store.add_texts(["near", "near copy", "other"])
    plain = store.similarity_search("query", k=2)
    assert [doc.page_content for doc in plain] == ["near", "near copy"]
    diverse = store.max_marginal_relevance_search("query", k=2, fetch_k=3, lambda_mult=0.3)
    assert [doc.page_content for doc in diverse] == ["near", "other"]
    by_vector = store.max_marginal_relevance_search_by_vector([1.0, 0.0, 0.0], k=2, fetch_k=3)
    assert [doc.page_content for doc in by_vector] == ["near", "other"]


# --- get_by_ids and delete ---


def test_get_by_ids_keeps_the_order_asked_leaves_out_missing_and_repeats(
    store: TongyiIndexStore, index: Path, photo: Path
) -> None:
    notes = str(index.parent / "notes.txt")
    found = store.get_by_ids([str(photo), "missing", f"{notes}#chunk=0", str(photo)])
    assert ids_of(found) == [str(photo), f"{notes}#chunk=0"]


def test_delete_removes_those_rows_only(store: TongyiIndexStore, photo: Path) -> None:
    count = store.table.count()
    assert store.delete([str(photo), "not there"]) is True
    assert store.table.count() == count - 1
    assert store.get_by_ids([str(photo)]) == []
    assert store.delete([]) is True and store.table.count() == count - 1


def test_delete_without_ids_does_not_empty_the_index(store: TongyiIndexStore) -> None:
    count = store.table.count()
    with pytest.raises(InputError, match="delete needs the ids"):
        store.delete()
    assert store.table.count() == count


def test_writing_while_another_writer_holds_the_index_sends_nothing(
    store: TongyiIndexStore, index: Path, gateway: LexicalGateway
) -> None:
    with WriteLock(index), pytest.raises(IndexBusyError, match=str(index)):
        store.add_texts(["a new note"])
    assert gateway.requests == []
    assert len(store.add_texts(["a new note"])) == 1  # the lock was let go


# --- async ---


async def test_async_methods_use_the_async_client(
    store: TongyiIndexStore, photo: Path, gateway: LexicalGateway
) -> None:
    count = store.table.count()
    (added,) = await store.aadd_documents([Document(page_content="yellow submarine")])
    assert store.table.count() == count + 1
    found = await store.asimilarity_search("yellow submarine", k=1)
    assert ids_of(found) == [added]
    (scored,) = await store.asimilarity_search_with_score("yellow submarine", k=1)
    assert scored[1] == pytest.approx(1.0, abs=1e-5)
    by_image = await store.asimilarity_search_by_image(photo, k=1, filter={"kind": "image"})
    assert ids_of(by_image) == [str(photo)]
    mmr = await store.amax_marginal_relevance_search("yellow submarine", k=1)
    assert ids_of(mmr) == [added]
    retriever = store.as_retriever(search_kwargs={"k": 1, "filter": {"kind": "text"}})
    assert ids_of(await retriever.ainvoke("yellow submarine")) == [added]
    assert [doc.id for doc in await store.aget_by_ids([added])] == [added]
    assert await store.adelete([added]) is True
    assert store.table.count() == count
    assert gateway.max_in_flight >= 1  # the requests went through the async transport
    assert len(gateway.requests) == 6


async def test_aadd_images(store: TongyiIndexStore, tmp_path: Path) -> None:
    green = write_image(tmp_path / "green.png", (30, 160, 60))
    (added,) = await store.aadd_images([green])
    assert ids_of(await store.asimilarity_search_by_image(green, k=1)) == [added]


# --- from_texts ---


def test_from_texts_makes_an_index_the_cli_can_open(
    tmp_path: Path, make_embeddings: Callable[..., TongyiVisionEmbeddings]
) -> None:
    path = tmp_path / "new.index"
    store = TongyiIndexStore.from_texts(["a red kite"], make_embeddings(), index=path)
    reopened = IndexTable.open(path)
    assert (reopened.info.model, reopened.info.dimension) == (FLASH, DIMENSION)
    assert reopened.count() == 1
    again = TongyiIndexStore.from_texts(["a blue kite"], make_embeddings(), index=path)
    assert again.table.count() == 2 and store.table.count() == 2


def test_from_texts_needs_a_place_and_embeddings_that_say_their_size(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="index=PATH"):
        TongyiIndexStore.from_texts(["x"], Vectors({"x": [1.0]}))
    with pytest.raises(InputError, match="TongyiVisionEmbeddings, not Vectors"):
        TongyiIndexStore.from_texts(["x"], Vectors({"x": [1.0]}), index=tmp_path / "i")


def test_close_leaves_embeddings_it_did_not_make_open(
    index: Path, make_embeddings: Callable[..., TongyiVisionEmbeddings]
) -> None:
    embeddings = make_embeddings()
    with open_index(index, embeddings):
        pass
    assert len(embeddings.embed_query("still open")) == DIMENSION


def test_a_captioned_image_reference_is_a_row_of_its_image(
    store: TongyiIndexStore, photo: Path
) -> None:
    # The loaders' caption= documents are embedded fused, but their row is the image's.
    from tongyi_vision.media.references import captioned_reference

    part = store._part(captioned_reference(file_uri(photo), "a red bicycle"), image=False)
    assert isinstance(part, Image)
    assert store._part("a red bicycle", image=False) == "a red bicycle"
