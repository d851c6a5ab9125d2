"""LangChain recipes, end to end against the emulator, with DEFAULT settings.

Each test is one thing a LangChain user does with nothing but ``api_key`` and
``base_url`` set: split a long document into a vector store (FAISS, Chroma,
Qdrant local, PGVector), size a collection from ``embeddings.dimension``, keep a
folder of images indexed with ``index()`` and a record manager, move Chroma's
image documents into another store, put retrieved pictures into a chat prompt,
embed the content blocks a chat model takes, and reuse, close and copy the
embeddings object.

The emulator's vectors are not semantic: an image is nearest to itself and to a
resized copy of itself, texts sharing words are near each other, and equal inputs
give equal vectors. Every store runs in process (Chroma persisted under
``tmp_path``, Qdrant in memory, PostgreSQL from ``pgserver`` on a unix socket):
no traffic leaves loopback and nothing is downloaded.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import io
import json
import math
import random
import subprocess
import sys
import uuid
import warnings
from collections.abc import Iterator
from operator import itemgetter
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.documents import Document
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.outputs import ChatResult
from langchain_core.runnables import RunnableLambda
from langchain_core.vectorstores import InMemoryVectorStore, VectorStore
from langchain_text_splitters import RecursiveCharacterTextSplitter
from pydantic import Field

from tongyi_vision import InputError, estimate_text_tokens, file_uri
from tongyi_vision.langchain import (
    SkippedMediaWarning,
    TongyiImageLoader,
    TongyiVisionEmbeddings,
    to_content_blocks,
)
from tongyi_vision.media.texts import split_text  # the splitter the client uses, to check means
from tongyi_vision.samples import draw_shape

from .conftest import RunningEmulator

MAX_TEXT_TOKENS = 1024  # the service's limit, as the docs state it

SHAPES = {
    "red-circle": ((220, 30, 40), "circle"),
    "blue-square": ((30, 70, 200), "square"),
    "green-triangle": ((30, 160, 60), "triangle"),
    "yellow-stripes": ((230, 200, 20), "stripes"),
}
CAPTIONS = [
    "Returns are free within thirty days of delivery.",
    "Our shop is closed on public holidays.",
]


# --- helpers ---


def cosine(a: list[float], b: list[float]) -> float:
    dot = math.fsum(x * y for x, y in zip(a, b, strict=True))
    return dot / math.sqrt(math.fsum(x * x for x in a) * math.fsum(y * y for y in b))


def norm(vector: list[float]) -> float:
    return math.sqrt(math.fsum(x * x for x in vector))


def png_bytes(shape: str, colour: tuple[int, int, int], size: int = 160) -> bytes:
    buffer = io.BytesIO()
    draw_shape(shape, colour, size).save(buffer, "PNG")
    return buffer.getvalue()


def stem(document: Document) -> str:
    return Path(document.metadata["source"]).stem


def weighted_mean(vectors: list[list[float]], weights: list[int]) -> list[float]:
    """The token-weighted mean of piece vectors, scaled to unit length (what ``split`` does)."""
    size = len(vectors[0])
    total = [
        math.fsum(w * v[i] for v, w in zip(vectors, weights, strict=True)) for i in range(size)
    ]
    length = norm(total)
    return [x / length for x in total]


_PLACES = [
    "the eastern quay",
    "the north mole",
    "Berth 4",
    "the fish market",
    "the old customs house",
    "the ferry ramp",
    "the marina",
    "the dry dock",
    "the coal wharf",
    "the lifeboat station",
]
_PEOPLE = [
    "the harbour master",
    "the duty engineer",
    "a pilot from the morning shift",
    "the port surveyor",
    "two divers from the contractor",
    "the ferry captain",
    "the night watchman",
    "the council's inspector",
]
_FINDINGS = [
    "found a crack running along the coping stones",
    "measured a scour hole beside the third pile",
    "reported that the fenders had worn through to the steel",
    "noticed rust stains below the bollards",
    "logged a slow leak in the fuel line",
    "saw silt building up against the sill",
    "recorded vibration in the crane rails",
    "photographed loose railings on the walkway",
]
_ACTIONS = [
    "The area was fenced off until the repair crew arrived.",
    "A temporary speed limit was posted for vessels.",
    "The contractor was asked for a quotation within a week.",
    "Nobody was hurt, and traffic resumed by noon.",
    "The finding matches the survey carried out last spring.",
    "A follow-up dive is planned once the water clears.",
    "The budget line for maintenance will have to be raised.",
    "The insurer has been informed in writing.",
]
_WEATHER = [
    "a fresh south-westerly breeze",
    "thick fog until mid-morning",
    "heavy rain with squalls",
    "a flat calm and bright sunshine",
    "a long swell from the north-east",
    "sleet and a falling barometer",
]


def harbour_report(length: int = 20_000, seed: int = 11) -> str:
    """An English inspection report: numbered sections of narrative paragraphs, each followed
    by a list of dated readings (tides, wind, temperatures). Varied, seeded, ``length`` chars."""
    rng = random.Random(seed)
    out: list[str] = []
    section = day = 0
    while sum(map(len, out)) < length:
        section += 1
        out.append(f"## {section}. Inspection of {rng.choice(_PLACES)}\n")
        for _ in range(rng.randint(3, 4)):
            sentences = []
            for _ in range(rng.randint(3, 5)):
                day += rng.randint(1, 4)
                sentences.append(
                    f"On day {day}, under {rng.choice(_WEATHER)}, {rng.choice(_PEOPLE)} "
                    f"{rng.choice(_FINDINGS)} near {rng.choice(_PLACES)}. {rng.choice(_ACTIONS)}"
                )
            out.append(" ".join(sentences) + "\n")
        out.append("Readings taken during the inspection:\n")
        for _ in range(rng.randint(6, 9)):
            out.append(
                f"- 2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d} "
                f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}: "
                f"tide {rng.uniform(0.2, 5.8):.2f} m, wind {rng.randint(2, 38)} kn, "
                f"water {rng.uniform(4, 19):.1f} °C, visibility {rng.randint(1, 20)} km\n"
            )
        out.append("\n")
    return "".join(out)[:length]


_SUBJECTS = [
    "The harbour master",
    "A young engineer",
    "The town council",
    "Our grandmother",
    "The ferry company",
    "A travelling botanist",
    "The night watchman",
    "Local fishermen",
    "The railway surveyor",
    "A visiting journalist",
]
_VERBS = [
    "argued that",
    "wrote in a letter that",
    "noticed that",
    "was convinced that",
    "complained that",
    "remembered years later that",
    "quietly suspected that",
]
_CLAUSES = [
    "the tide had come in earlier than the almanac predicted",
    "the new breakwater would protect the eastern quay from winter storms",
    "nobody had repaired the signal lamp since the previous autumn",
    "the orchards behind the chapel produced the sweetest pears in the county",
    "the old customs house was sinking, slowly but unmistakably, into the marsh",
    "the telegraph line to the capital failed whenever the wind turned north",
    "the children preferred the library to the crowded market square",
    "the mackerel had moved further offshore, following colder water",
]
_TAILS = [
    "",
    " Few people listened at first.",
    " By spring, everyone agreed.",
    " The newspaper printed the story on its second page.",
    " Nobody knows exactly why.",
]


def narrative(length: int = 20_000, seed: int = 7) -> str:
    """Plain English narrative prose in paragraphs, no figures or lists."""
    rng = random.Random(seed)
    paragraphs: list[str] = []
    while sum(len(p) + 2 for p in paragraphs) < length:
        sentences = []
        for _ in range(rng.randint(4, 8)):
            opener = rng.choice(
                ["", "Later that year, ", "Meanwhile, ", "According to the diaries, "]
            )
            subject = rng.choice(_SUBJECTS)
            if opener:
                subject = subject[0].lower() + subject[1:]
            sentences.append(
                f"{opener}{subject} {rng.choice(_VERBS)} "
                f"{rng.choice(_CLAUSES)}.{rng.choice(_TAILS)}"
            )
        paragraphs.append(" ".join(sentences))
    return "\n\n".join(paragraphs)[:length]


def import_quietly(name: str) -> ModuleType:
    """``pytest.importorskip`` for packages that warn when imported: langchain-community says
    it "is being sunset" (a DeprecationWarning at import), pgserver's platformdirs warns that
    XDG_RUNTIME_DIR is unset. Neither is about this project, and pytest turns warnings into
    errors here."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is being sunset", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR", category=UserWarning)
        module: ModuleType = pytest.importorskip(name)
        return module


# --- fixtures ---


@pytest.fixture
def embeddings(emulator: RunningEmulator) -> Iterator[TongyiVisionEmbeddings]:
    """Default settings: only the key and the emulator's URL."""
    model = TongyiVisionEmbeddings(api_key=emulator.api_key, base_url=emulator.base_url)
    yield model
    model.close()


@pytest.fixture(scope="module")
def pictures(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``photos/`` holds four distinct PNGs; ``queries/`` smaller JPEG copies of them."""
    root = tmp_path_factory.mktemp("pictures")
    (root / "photos").mkdir()
    (root / "queries").mkdir()
    for name, (colour, shape) in SHAPES.items():
        (root / "photos" / f"{name}.png").write_bytes(png_bytes(shape, colour))
        draw_shape(shape, colour, 160).resize((96, 96)).save(
            root / "queries" / f"{name}.jpg", "JPEG"
        )
    return root


def photo_paths(pictures: Path) -> list[str]:
    return [str(pictures / "photos" / f"{name}.png") for name in sorted(SHAPES)]


@pytest.fixture
def no_chroma_default_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail, rather than download, if Chroma ever reaches for its own embedding model."""
    onnx = import_quietly("chromadb.utils.embedding_functions.onnx_mini_lm_l6_v2")

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("Chroma tried to use (and download) its default embedding model")

    monkeypatch.setattr(onnx.ONNXMiniLM_L6_V2, "__call__", refuse)
    monkeypatch.setattr(onnx.ONNXMiniLM_L6_V2, "_download_model_if_not_exists", refuse)


def make_chroma(embeddings: TongyiVisionEmbeddings, directory: Path) -> Any:
    chromadb = import_quietly("chromadb")
    langchain_chroma = import_quietly("langchain_chroma")
    return langchain_chroma.Chroma(
        collection_name=f"recipes-{uuid.uuid4().hex[:12]}",
        embedding_function=embeddings,  # always ours: Chroma's own default would download
        persist_directory=str(directory),
        client_settings=chromadb.config.Settings(anonymized_telemetry=False),
    )


@pytest.fixture(scope="module")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A PostgreSQL with pgvector, started by pgserver on a unix socket; stopped at the end."""
    pgserver = import_quietly("pgserver")
    import_quietly("langchain_postgres")
    import_quietly("psycopg")
    try:
        server = pgserver.get_server(str(tmp_path_factory.mktemp("pg")), cleanup_mode="stop")
    except Exception as exc:  # e.g. refused as root, no useradd, no shared memory
        pytest.skip(f"pgserver could not start PostgreSQL here: {type(exc).__name__}: {exc}")
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def pg_engine(pg_server: Any) -> Iterator[Any]:
    """A SQLAlchemy engine on a database of its own: langchain-postgres keeps every collection
    in one ``langchain_pg_embedding`` table per database, sized when it is first created."""
    sqlalchemy = import_quietly("sqlalchemy")
    name = f"recipes_{uuid.uuid4().hex[:12]}"
    pg_server.psql(f"CREATE DATABASE {name};")
    uri: str = pg_server.get_uri(name)  # postgresql://postgres:@/NAME?host=/path/to/socket
    engine = sqlalchemy.create_engine("postgresql+psycopg://" + uri.split("://", 1)[1])
    yield engine
    engine.dispose()  # else psycopg warns about connections deleted while open


def make_pgvector(embeddings: TongyiVisionEmbeddings, engine: Any) -> Any:
    langchain_postgres = import_quietly("langchain_postgres")
    return langchain_postgres.PGVector(
        embeddings=embeddings,
        connection=engine,
        collection_name=f"recipes-{uuid.uuid4().hex[:12]}",
        embedding_length=embeddings.dimension,  # sizes the column (see the recipe-2 test)
        use_jsonb=True,
    )


# --- 1. a long English document, default splitter, four stores ---


STORES = ["faiss", "chroma", "qdrant", "pgvector"]


def build_store(
    kind: str, documents: list[Document], embeddings: TongyiVisionEmbeddings, request: Any
) -> VectorStore:
    if kind == "faiss":
        import_quietly("faiss")
        faiss_module = import_quietly("langchain_community.vectorstores")
        store: VectorStore = faiss_module.FAISS.from_documents(documents, embeddings)
    elif kind == "chroma":
        request.getfixturevalue("no_chroma_default_model")
        store = make_chroma(embeddings, request.getfixturevalue("tmp_path") / "chroma")
        store.add_documents(documents)
    elif kind == "qdrant":
        langchain_qdrant = import_quietly("langchain_qdrant")
        store = langchain_qdrant.QdrantVectorStore.from_documents(
            documents, embeddings, location=":memory:", collection_name="report"
        )
    else:
        store = make_pgvector(embeddings, request.getfixturevalue("pg_engine"))
        store.add_documents(documents)
    return store


@pytest.mark.parametrize("kind", STORES)
def test_a_long_report_split_by_the_default_splitter_goes_into_every_store(
    kind: str, embeddings: TongyiVisionEmbeddings, request: pytest.FixtureRequest
) -> None:
    text = harbour_report()
    chunks = RecursiveCharacterTextSplitter().split_text(text)  # 4,000 characters, defaults
    documents = [Document(page_content=c, metadata={"chunk": i}) for i, c in enumerate(chunks)]
    over = [c for c in chunks if estimate_text_tokens(c) > MAX_TEXT_TOKENS]
    assert len(text) == 20_000
    # The claim the default relies on: such chunks can be over the limit by the estimate.
    assert over, [estimate_text_tokens(c) for c in chunks]

    store = build_store(kind, documents, embeddings, request)
    found = store.similarity_search("scour hole beside the third pile, divers", k=3)

    assert len(found) == 3
    assert all(d.page_content in chunks for d in found)
    # Each over-limit chunk was embedded in pieces, and every piece billed.
    assert embeddings.usage.pieces == sum(len(split_text(c)) for c in over) > 0
    assert embeddings.usage.pieces >= 2 * len(over)


def test_an_over_limit_chunk_is_the_token_weighted_mean_of_its_pieces(
    embeddings: TongyiVisionEmbeddings,
) -> None:
    chunks = RecursiveCharacterTextSplitter().split_text(harbour_report())
    long_chunk = max(chunks, key=estimate_text_tokens)
    pieces = split_text(long_chunk)
    assert estimate_text_tokens(long_chunk) > MAX_TEXT_TOKENS
    assert len(pieces) >= 2 and all(estimate_text_tokens(p) <= MAX_TEXT_TOKENS for p in pieces)

    (whole,) = embeddings.embed_documents([long_chunk])
    piece_vectors = embeddings.embed_documents(pieces)
    truncating = TongyiVisionEmbeddings(
        api_key=embeddings.api_key, base_url=embeddings.base_url, long_text="truncate"
    )
    (truncated,) = truncating.embed_documents([long_chunk])
    truncating.close()

    assert whole == pytest.approx(
        weighted_mean(piece_vectors, [estimate_text_tokens(p) for p in pieces]), abs=1e-6
    )
    assert norm(whole) == pytest.approx(1.0)
    assert embeddings.usage.pieces == len(pieces)
    assert cosine(whole, truncated) < 0.9999  # the end of the chunk counts too


def test_default_chunks_of_plain_narrative_prose_fit_the_limit_and_need_no_pieces(
    embeddings: TongyiVisionEmbeddings,
) -> None:
    # Plain prose runs 4.3 to 5 characters a token by the estimate: a 4,000-character chunk
    # is 800 to 930 tokens, so the default splitter's chunks of it are NOT over the limit
    # (figures, lists and Markdown are denser: see the report above).
    chunks = RecursiveCharacterTextSplitter().split_text(narrative())
    estimates = [estimate_text_tokens(c) for c in chunks]
    assert len(chunks) >= 5
    assert max(estimates) <= MAX_TEXT_TOKENS, estimates

    vectors = embeddings.embed_documents(chunks)

    assert len(vectors) == len(chunks)
    assert embeddings.usage.pieces == 0


# --- 2. collections sized from embeddings.dimension ---


def test_dimension_is_the_resolved_read_only_vector_size(
    embeddings: TongyiVisionEmbeddings,
) -> None:
    size = len(embeddings.embed_query("x"))

    assert embeddings.dimension == size
    with pytest.raises(ValueError, match="frozen"):
        embeddings.dimension = 512
    assert embeddings.dimension == size


def test_a_qdrant_collection_created_from_embeddings_dimension(
    embeddings: TongyiVisionEmbeddings,
) -> None:
    qdrant_client = import_quietly("qdrant_client")
    langchain_qdrant = import_quietly("langchain_qdrant")
    models = qdrant_client.models
    client = qdrant_client.QdrantClient(location=":memory:")
    assert embeddings.dimension is not None
    client.create_collection(
        "captions",
        vectors_config=models.VectorParams(
            size=embeddings.dimension, distance=models.Distance.COSINE
        ),
    )
    store = langchain_qdrant.QdrantVectorStore(
        client=client, collection_name="captions", embedding=embeddings
    )

    store.add_texts(CAPTIONS)
    found = store.similarity_search("when are returns free?", k=1)

    assert found[0].page_content == CAPTIONS[0]
    size = client.get_collection("captions").config.params.vectors.size
    assert size == embeddings.dimension == len(embeddings.embed_query("x"))
    client.close()


_COLUMN_TYPE = (
    "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
    "WHERE attrelid = 'langchain_pg_embedding'::regclass AND attname = 'embedding'"
)

# Run in a fresh interpreter: langchain-postgres builds its table classes once per process,
# at the first PGVector, and every later PGVector reuses them whatever its embedding_length.
_PGVECTOR_SIZED = f"""
import json, sys
import sqlalchemy
from langchain_postgres import PGVector
from tongyi_vision.langchain import TongyiVisionEmbeddings

base_url, api_key, url = sys.argv[1:4]
with TongyiVisionEmbeddings(api_key=api_key, base_url=base_url) as embeddings:
    engine = sqlalchemy.create_engine(url)
    store = PGVector(
        embeddings=embeddings,
        connection=engine,
        collection_name="sized",
        embedding_length=embeddings.dimension,
    )
    store.add_texts(["a first caption", "a second caption"])
    with engine.connect() as connection:
        column = connection.execute(sqlalchemy.text({_COLUMN_TYPE!r})).scalar_one()
        sizes = connection.execute(
            sqlalchemy.text("SELECT DISTINCT vector_dims(embedding) FROM langchain_pg_embedding")
        ).scalars().all()
    engine.dispose()
    print(json.dumps({{"dimension": embeddings.dimension, "column": column, "sizes": sizes,
                      "query": len(embeddings.embed_query("x"))}}))
"""


def test_a_pgvector_collection_created_from_embeddings_dimension(
    embeddings: TongyiVisionEmbeddings, emulator: RunningEmulator, pg_engine: Any
) -> None:
    url = pg_engine.url.render_as_string(hide_password=False)
    run = subprocess.run(
        [sys.executable, "-c", _PGVECTOR_SIZED, emulator.base_url, emulator.api_key, url],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    sized = json.loads(run.stdout)
    store = make_pgvector(embeddings, pg_engine)  # in this process too: same table, same size
    store.add_texts(CAPTIONS)
    found = store.similarity_search("when are returns free?", k=1)

    assert sized["column"] == f"vector({embeddings.dimension})"
    assert sized["sizes"] == [sized["dimension"]]
    assert sized["dimension"] == sized["query"] == embeddings.dimension
    assert embeddings.dimension == len(embeddings.embed_query("x"))
    assert found[0].page_content == CAPTIONS[0]


# --- 3. index() and a record manager over a folder of images ---


def test_index_replaces_an_image_redrawn_in_place(
    embeddings: TongyiVisionEmbeddings, tmp_path: Path
) -> None:
    indexes = import_quietly("langchain_classic.indexes")
    import_quietly("sqlalchemy")
    folder = tmp_path / "photos"
    folder.mkdir()
    for name, (colour, shape) in SHAPES.items():
        (folder / f"{name}.png").write_bytes(png_bytes(shape, colour))
    manager = indexes.SQLRecordManager(
        "tongyi/photos", db_url=f"sqlite:///{tmp_path / 'records.sqlite'}"
    )
    manager.create_schema()
    store = InMemoryVectorStore(embeddings)
    options: dict[str, Any] = {
        "cleanup": "incremental",
        "source_id_key": "source",
        # The default, sha1, makes langchain-core warn about SHA-1 collisions.
        "key_encoder": "sha256",
    }

    first = indexes.index(TongyiImageLoader(folder), manager, store, **options)
    again = indexes.index(TongyiImageLoader(folder), manager, store, **options)
    redrawn = folder / "blue-square.png"
    (old_vector,) = embeddings.embed_image([str(redrawn)])
    (old_document,) = TongyiImageLoader(redrawn).load()
    redrawn.write_bytes(png_bytes("ring", (130, 40, 170)))  # same name, another picture
    after = indexes.index(TongyiImageLoader(folder), manager, store, **options)

    assert first == {"num_added": 4, "num_updated": 0, "num_skipped": 0, "num_deleted": 0}
    assert again == {"num_added": 0, "num_updated": 0, "num_skipped": 4, "num_deleted": 0}
    assert after == {"num_added": 1, "num_updated": 0, "num_skipped": 3, "num_deleted": 1}
    entries = [e for e in store.store.values() if e["metadata"]["source"] == str(redrawn)]
    assert len(store.store) == 4 and len(entries) == 1
    (new_vector,) = embeddings.embed_image([str(redrawn)])
    assert entries[0]["vector"] == pytest.approx(new_vector)
    assert cosine(new_vector, old_vector) < 0.99
    # The content digest is what made the record manager see a new document under the old name.
    assert entries[0]["metadata"]["sha256"] != old_document.metadata["sha256"]


# --- 4. Chroma's add_images, and its base64 documents in another store ---


@pytest.mark.usefixtures("no_chroma_default_model")
def test_chroma_image_documents_move_into_other_stores_as_the_same_image_vectors(
    embeddings: TongyiVisionEmbeddings, pictures: Path, tmp_path: Path
) -> None:
    paths = photo_paths(pictures)
    chroma = make_chroma(embeddings, tmp_path / "chroma")
    ids = chroma.add_images(uris=paths, metadatas=[{"source": p} for p in paths])
    stored = chroma.get(ids=ids, include=["documents", "metadatas", "embeddings"])
    by_id = dict(zip(stored["ids"], stored["documents"], strict=True))
    texts = [by_id[i] for i in ids]  # raw base64, as Chroma keeps images
    expected = embeddings.embed_image(paths)

    memory = InMemoryVectorStore(embeddings)
    memory_ids = memory.add_texts(texts)
    faiss_module = import_quietly("langchain_community.vectorstores")
    import_quietly("faiss")
    faiss_store = faiss_module.FAISS.from_texts(texts, embeddings)
    hits = chroma.similarity_search_by_image(str(pictures / "queries" / "green-triangle.jpg"), k=2)

    assert [base64.b64decode(t) for t in texts] == [Path(p).read_bytes() for p in paths]
    for index, memory_id in enumerate(memory_ids):
        assert memory.store[memory_id]["vector"] == pytest.approx(expected[index])
        assert list(faiss_store.index.reconstruct(index)) == pytest.approx(
            expected[index], abs=1e-6
        )
    chroma_vectors = dict(zip(stored["ids"], stored["embeddings"], strict=True))
    for id_, vector in zip(ids, expected, strict=True):
        assert list(chroma_vectors[id_]) == pytest.approx(vector, abs=1e-6)
    assert stem(hits[0]) == "green-triangle"
    assert base64.b64decode(hits[0].page_content) == Path(hits[0].metadata["source"]).read_bytes()
    # Chroma's raw base64 hits become image blocks for a chat prompt as they are.
    assert to_content_blocks(hits) == [
        {"type": "image", "base64": hit.page_content, "mime_type": "image/png"} for hit in hits
    ]
    # The moved documents come back from an image query in the other store too.
    (query,) = embeddings.embed_image([str(pictures / "queries" / "red-circle.jpg")])
    best = memory.similarity_search_by_vector(query, k=1)[0]
    assert (
        base64.b64decode(best.page_content) == (pictures / "photos" / "red-circle.png").read_bytes()
    )
    chroma.delete_collection()


def test_raw_base64_in_embed_documents_is_the_image(
    embeddings: TongyiVisionEmbeddings, pictures: Path
) -> None:
    path = pictures / "photos" / "yellow-stripes.png"
    raw = base64.b64encode(path.read_bytes()).decode("ascii")

    by_text, word = embeddings.embed_documents([raw, "stripes"])
    (by_image,) = embeddings.embed_image([raw])
    (by_file,) = embeddings.embed_image([str(path)])

    assert by_text == pytest.approx(by_file)
    assert by_image == pytest.approx(by_file)
    assert cosine(by_text, word) < 0.5


# --- 5. OpenAI-style aliases ---


def test_dimensions_and_request_timeout_aliases(emulator: RunningEmulator) -> None:
    model = TongyiVisionEmbeddings(
        api_key=emulator.api_key, base_url=emulator.base_url, dimensions=768, request_timeout=30
    )

    vectors = model.embed_documents(["a harbour at dawn", "a harbour at dusk"])
    model.close()

    assert model.dimension == 768
    assert model.timeout == 30
    assert [len(v) for v in vectors] == [768, 768]
    assert model.usage.requests == 1


# --- 6. a mixed folder: one warning, every skip in .errors ---


def test_a_mixed_folder_gives_one_warning_and_lists_every_skip(tmp_path: Path) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    for name, (colour, shape) in list(SHAPES.items())[:3]:
        (folder / f"{name}.png").write_bytes(png_bytes(shape, colour))
    skipped = {
        "notes.txt": b"Remember to photograph the north mole.\n",
        "readings.csv": b"date,tide\n2024-03-01,3.2\n",
        "README.md": b"# Photos\n\nShots from the inspection.\n",
        "empty.jpg": b"",
        "broken.png": b"\x89PNG\r\n\x1a\n" + b"\x00" * 8,  # a PNG signature, then nothing
        "archive.zip": b"PK\x03\x04" + b"\x00" * 40,
    }
    for name, data in skipped.items():
        (folder / name).write_bytes(data)
    loader = TongyiImageLoader(folder)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        documents = loader.load()

    assert sorted(stem(d) for d in documents) == sorted(list(SHAPES)[:3])
    for document in documents:
        digest = hashlib.sha256(Path(document.metadata["source"]).read_bytes()).hexdigest()
        assert document.metadata["sha256"] == digest
    assert [w.category for w in caught] == [SkippedMediaWarning]
    message = str(caught[0].message)
    assert f"skipped {len(skipped)} files" in message
    assert ".errors" in message
    assert sorted(Path(e.path).name for e in loader.errors) == sorted(skipped)
    assert all(str(e.error.reason) for e in loader.errors)


# --- 7. image hits in a RAG chain, as content blocks ---


class RecordingChatModel(GenericFakeChatModel):
    """A fake chat model that keeps the messages it was given.

    (Not a callback handler: ``on_chat_model_start`` sees the messages as formatted for
    tracing, standard image blocks turned into OpenAI ``image_url`` blocks.)
    """

    received: list[list[BaseMessage]] = Field(default_factory=list)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        self.received.append(list(messages))
        return super()._generate(messages, stop=stop, run_manager=run_manager, **kwargs)


def test_image_hits_reach_a_chat_model_as_image_blocks(
    embeddings: TongyiVisionEmbeddings, pictures: Path
) -> None:
    store = InMemoryVectorStore(embeddings)
    store.add_documents(TongyiImageLoader(pictures / "photos").load())
    store.add_documents([Document(page_content=c, metadata={"source": "faq"}) for c in CAPTIONS])
    retriever = store.as_retriever(search_kwargs={"k": len(SHAPES) + len(CAPTIONS)})
    model = RecordingChatModel(messages=iter([AIMessage(content="A blue square.")]))

    def prompt(inputs: dict[str, Any]) -> list[BaseMessage]:
        question = {"type": "text", "text": inputs["question"]}
        return [HumanMessage(content=[question, *to_content_blocks(inputs["docs"])])]

    chain = (
        {"docs": itemgetter("query") | retriever, "question": itemgetter("question")}
        | RunnableLambda(prompt)
        | model
        | StrOutputParser()
    )
    query_jpeg = (pictures / "queries" / "blue-square.jpg").read_bytes()
    query = "data:image/jpeg;base64," + base64.b64encode(query_jpeg).decode("ascii")

    answer = chain.invoke({"question": "What does the closest picture show?", "query": query})

    assert answer == "A blue square."
    ((message,),) = model.received
    assert isinstance(message, HumanMessage)
    assert isinstance(message.content, list)
    first, *blocks = message.content
    assert first == {"type": "text", "text": "What does the closest picture show?"}
    images = [b for b in blocks if isinstance(b, dict) and b["type"] == "image"]
    texts = [b for b in blocks if isinstance(b, dict) and b["type"] == "text"]
    photos = {(pictures / "photos" / f"{n}.png").read_bytes(): n for n in SHAPES}
    assert len(images) == len(SHAPES) and len(texts) == len(CAPTIONS)
    assert photos[base64.b64decode(images[0]["base64"])] == "blue-square"  # the best hit first
    assert sorted(photos[base64.b64decode(b["base64"])] for b in images) == sorted(SHAPES)
    assert all(b["mime_type"] == "image/png" for b in images)
    assert sorted(b["text"] for b in texts) == sorted(CAPTIONS)
    seen = [b for b in message.content_blocks if b["type"] == "image"]
    assert len(seen) == len(SHAPES)
    assert all(b.get("mime_type") == "image/png" and b.get("base64") for b in seen)


def test_a_file_uri_query_is_refused_unless_read_query_files(
    embeddings: TongyiVisionEmbeddings, emulator: RunningEmulator, pictures: Path
) -> None:
    store = InMemoryVectorStore(embeddings)
    store.add_documents(TongyiImageLoader(pictures / "photos").load())
    query = file_uri(str(pictures / "queries" / "red-circle.jpg"))

    with pytest.raises(InputError, match="read_query_files=True"):
        store.as_retriever().invoke(query)
    reading = TongyiVisionEmbeddings(
        api_key=emulator.api_key, base_url=emulator.base_url, read_query_files=True
    )
    (vector,) = embeddings.embed_image([str(pictures / "queries" / "red-circle.jpg")])
    by_reference = reading.embed_query(query)
    reading.close()

    assert by_reference == pytest.approx(vector)
    assert stem(store.similarity_search_by_vector(by_reference, k=1)[0]) == "red-circle"


# --- 8. the dicts a chat model takes can be embedded ---


def test_content_blocks_embed_as_what_they_hold(
    embeddings: TongyiVisionEmbeddings, pictures: Path
) -> None:
    path = pictures / "photos" / "red-circle.png"
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    image_block = {"type": "image", "base64": data, "mime_type": "image/png"}
    url_block = {"type": "image", "url": "data:image/png;base64," + data}
    text = "a red circle on a white background"
    text_block = {"type": "text", "text": text}

    # embed_documents is typed list[str] (LangChain's signature); blocks need an ignore.
    vectors = embeddings.embed_documents([image_block, text_block, url_block])  # type: ignore[list-item]
    by_image_method = embeddings.embed_image([image_block, url_block])  # type: ignore[list-item]
    expected = [embeddings.embed_image([str(path)])[0], embeddings.embed_query(text)]

    assert vectors[0] == pytest.approx(expected[0])
    assert vectors[1] == pytest.approx(expected[1])
    assert vectors[2] == pytest.approx(expected[0])
    assert by_image_method[0] == pytest.approx(expected[0])
    assert by_image_method[1] == pytest.approx(expected[0])
    assert cosine(vectors[0], vectors[1]) < 0.5
    # The blocks to_content_blocks makes from retrieved documents embed back the same way.
    documents = [*TongyiImageLoader(path).load(), Document(page_content=text)]
    again = embeddings.embed_documents(to_content_blocks(documents))  # type: ignore[arg-type]
    assert len(again) == 2
    assert again[0] == pytest.approx(expected[0])
    assert again[1] == pytest.approx(expected[1])


# --- 9. connections reopen after close ---


def test_embed_query_works_after_close(embeddings: TongyiVisionEmbeddings) -> None:
    before = embeddings.embed_query("a lighthouse")
    embeddings.close()

    after = embeddings.embed_query("a lighthouse")

    assert after == before
    assert embeddings.usage.requests == 2


def test_the_object_works_after_its_with_block(emulator: RunningEmulator) -> None:
    with TongyiVisionEmbeddings(api_key=emulator.api_key, base_url=emulator.base_url) as model:
        inside = model.embed_documents(["a ferry", "a tugboat"])

    outside = model.embed_documents(["a ferry", "a tugboat"])
    model.close()

    assert outside == inside
    assert model.usage.requests == 2


async def test_aembed_query_works_after_aclose(emulator: RunningEmulator) -> None:
    model = TongyiVisionEmbeddings(api_key=emulator.api_key, base_url=emulator.base_url)
    before = await model.aembed_query("a crane on the quay")
    await model.aclose()

    after = await model.aembed_query("a crane on the quay")
    async with model:
        inside = await model.aembed_query("a crane on the quay")
    last = await model.aembed_query("a crane on the quay")
    await model.aclose()

    assert before == after == inside == last
    assert model.usage.requests == 4


# --- 10. deepcopy ---


def test_a_deep_copy_embeds_alike_with_its_own_client(
    embeddings: TongyiVisionEmbeddings, pictures: Path
) -> None:
    path = str(pictures / "photos" / "green-triangle.png")
    original_text = embeddings.embed_query("a green triangle")
    original_image = embeddings.embed_image([path])

    twin = copy.deepcopy(embeddings)

    assert twin is not embeddings
    assert twin.api_key is not None and embeddings.api_key is not None
    assert twin.api_key.get_secret_value() == embeddings.api_key.get_secret_value()
    assert (twin.base_url, twin.model, twin.dimension) == (
        embeddings.base_url,
        embeddings.model,
        embeddings.dimension,
    )
    assert twin.usage.requests == 0  # its own client and counters
    assert twin.embed_query("a green triangle") == original_text
    assert twin.embed_image([path]) == original_image
    assert twin.usage.requests == 2
    twin.close()
    assert embeddings.embed_query("a green triangle") == original_text  # the original unharmed
    assert embeddings.usage.requests == 3
