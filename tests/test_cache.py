"""The embedding cache: what a hit sends (nothing), what it is keyed by (content, model, size;
never a path or a URL alone), what a damaged entry does (a miss and a warning), and stores."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import pickle
import shutil
import sqlite3
import warnings
from pathlib import Path
from typing import Any

import pytest

from tests._core_fakes import (
    FakeService,
    MakeAsyncClient,
    MakeClient,
    error_response,
    png_bytes,
    vector_for,
)
from tongyi_vision import (
    APIStatusError,
    CacheWarning,
    ConfigurationError,
    EmbeddingCache,
    Image,
    MultiImage,
    SQLiteStore,
)
from tongyi_vision.engine.cache import Entry, as_float32, decode, encode
from tongyi_vision.media.sources import data_uri
from tongyi_vision.wire.limits import media_price

RED = png_bytes(8, 6, (200, 30, 30))
BLUE = png_bytes(8, 6, (30, 30, 200))


class DictStore:
    """The smallest store: a dict behind LangChain's ByteStore methods."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}
        self.reads = 0

    def mget(self, keys: list[str]) -> list[bytes | None]:
        self.reads += 1
        return [self.data.get(k) for k in keys]

    def mset(self, pairs: list[tuple[str, bytes]]) -> None:
        self.data.update(pairs)


@pytest.fixture
def cache_path(tmp_path: Path) -> Path:
    return tmp_path / "cache" / "embeddings.sqlite"


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_a_second_call_sends_nothing_and_returns_the_same_vectors(
    make_client: MakeClient, service: FakeService, cache_path: Path, tmp_path: Path
) -> None:
    red = write(tmp_path / "red.png", RED)
    parts: list[Any] = [
        "a red square",
        Image(red),
        Image(BLUE),
        MultiImage([Image(RED), Image(BLUE)]),
    ]
    client = make_client(service, cache=cache_path)
    first = client.embed(parts)
    sent = len(service.seen)
    again = client.embed(parts)
    assert len(service.seen) == sent  # nothing sent
    assert again.vectors == first.vectors
    assert again.usage.requests == 0 and again.usage.total_tokens == 0
    assert again.usage.cached == 4
    assert again.usage.saved_usd == pytest.approx(first.usage.cost_usd)
    assert first.usage.cached == 0
    # a miss returns the numbers a hit would: the float32 the cache keeps
    assert first.vectors[0] == as_float32(vector_for({"text": "a red square"}))


def test_only_the_misses_are_sent_and_duplicates_once(
    make_client: MakeClient, service: FakeService, cache_path: Path
) -> None:
    client = make_client(service, cache=cache_path)
    client.embed(["one", "two"])
    service.seen.clear()
    result = client.embed(["two", "three", "three", "one", "four"])
    assert [c["text"] for c in service.parts_sent] == ["three", "four"]
    assert result.usage.cached == 2
    assert result.vectors[1] == result.vectors[2]


def test_content_not_its_name_is_the_key(
    make_client: MakeClient, service: FakeService, cache_path: Path, tmp_path: Path
) -> None:
    client = make_client(service, cache=cache_path)
    picture = write(tmp_path / "picture.png", RED)
    client.embed([Image(picture)])
    # the same bytes under another name, or given as bytes or a data URI: a hit
    copy = shutil.copy(picture, tmp_path / "copy.png")
    service.seen.clear()
    result = client.embed([Image(copy), Image(RED), Image(data_uri("image/png", RED))])
    assert service.seen == [] and result.usage.cached == 3
    # redrawn in place: a miss, and the new picture's vector
    write(picture, BLUE)
    redrawn = client.embed([Image(picture)])
    assert redrawn.usage.cached == 0
    assert redrawn.vectors[0] == as_float32(vector_for({"image": data_uri("image/png", BLUE)}))


@pytest.mark.parametrize(
    "other",
    [
        {"model": "tongyi-embedding-vision-plus", "dimension": None},
        {"dialect": "dashscope", "dimension": 256},
    ],
)
def test_another_model_or_size_is_another_key(
    make_client: MakeClient, cache_path: Path, other: dict[str, Any]
) -> None:
    dialect = other.get("dialect", "openai")
    make_client(FakeService(), cache=cache_path).embed(["hello"])
    size = other["dimension"] or 1152
    service = FakeService(dialect=dialect, dimension=size)
    result = make_client(service, cache=cache_path, **other).embed(["hello"])
    assert result.usage.cached == 0 and len(service.seen) == 1
    assert len(result.vectors[0]) == size


def test_urls_are_not_cached_unless_asked(
    make_client: MakeClient, service: FakeService, cache_path: Path
) -> None:
    url = Image("https://example.com/cat.png")
    client = make_client(service, cache=cache_path)
    client.embed([url])
    client.embed([url])
    assert len(service.seen) == 2  # what is behind a URL can change
    trusting = make_client(service, cache=EmbeddingCache(cache_path, cache_urls=True))
    trusting.embed([url])
    service.seen.clear()
    assert trusting.embed([url]).usage.cached == 1 and service.seen == []


def test_a_damaged_entry_is_a_miss_and_a_warning(
    make_client: MakeClient, service: FakeService
) -> None:
    store = DictStore()
    client = make_client(service, cache=store)
    good = client.embed(["hello", "world"]).vectors
    (key, value), (other_key, _) = sorted(store.data.items())
    store.data[key] = value[:-3] + bytes(3)  # a flipped checksum
    store.data[other_key] = b"not an entry"
    service.seen.clear()
    with pytest.warns(CacheWarning, match="damaged"):
        again = client.embed(["hello", "world"])
    assert again.vectors == good  # never a wrong vector
    assert len(service.parts_sent) == 2
    # and the entries were written anew
    assert all(decode(v) is not None for v in store.data.values())


def test_a_failing_store_is_a_warning_not_a_failed_call(
    make_client: MakeClient, service: FakeService
) -> None:
    class Broken:
        def mget(self, keys: list[str]) -> list[bytes | None]:
            raise OSError("disk gone")

        def mset(self, pairs: list[tuple[str, bytes]]) -> None:
            raise OSError("disk gone")

    client = make_client(service, cache=Broken())
    with pytest.warns(CacheWarning) as caught:
        result = client.embed(["hello"])
    assert result.vectors == [as_float32(vector_for({"text": "hello"}))]
    assert {"read", "written"} <= {w for m in caught for w in str(m.message).split()}


def test_what_a_failed_call_finished_is_cached(
    make_client: MakeClient, service: FakeService, cache_path: Path
) -> None:
    service.script[2] = lambda seen: error_response(403, code="AccessDenied")
    client = make_client(service, cache=cache_path, max_parts_per_request=1, max_concurrency=1)
    with pytest.raises(APIStatusError):
        client.embed(["one", "two", "three"])
    service.seen.clear()
    service.script.clear()
    result = client.embed(["one", "two", "three"])
    assert [c["text"] for c in service.parts_sent] == ["two", "three"]
    assert result.usage.cached == 1


def test_the_pieces_of_a_long_text_are_cached(
    make_client: MakeClient, service: FakeService, cache_path: Path
) -> None:
    text = " ".join(f"sentence {i} about rivers and bridges" for i in range(800))
    client = make_client(service, cache=cache_path)
    first = client.embed([text])
    sent = len(service.seen)
    assert first.usage.pieces > 1
    again = client.embed([text])
    assert len(service.seen) == sent
    assert again.vectors == first.vectors and again.usage.cached == first.usage.pieces


def test_a_hit_needs_no_decoding(
    make_client: MakeClient,
    service: FakeService,
    cache_path: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tongyi_vision.media import image

    picture = write(tmp_path / "p.png", RED)
    client = make_client(service, cache=cache_path)
    client.embed([Image(picture)])

    def no_decoding(*_: object, **__: object) -> None:
        raise AssertionError("a hit decoded the image")

    monkeypatch.setattr(image, "_check_decodes", no_decoding)
    assert client.embed([Image(picture)]).usage.cached == 1


def test_the_async_client_uses_the_cache_alike(
    make_async_client: MakeAsyncClient, service: FakeService, cache_path: Path
) -> None:
    async def run() -> tuple[list[list[float]], list[list[float]], int]:
        client = make_async_client(service, cache=cache_path)
        first = (await client.embed(["a", "b"])).vectors
        again = await client.embed(["a", "b"])
        return first, again.vectors, again.usage.cached

    first, again, cached = asyncio.run(run())
    assert first == again and cached == 2
    assert len(service.seen) == 1


def test_clients_share_a_file_across_processes(cache_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    with context.Pool(2) as pool:
        pool.map(_fill, [(str(cache_path), range(i, 400, 2)) for i in range(2)])
    store = SQLiteStore(cache_path)
    assert len(store) == 400
    assert all(decode(v) is not None for v in store.mget([f"k{i}" for i in range(400)]) if v)


def _fill(job: tuple[str, range]) -> None:
    path, keys = job
    cache = EmbeddingCache(path)
    for i in keys:
        cache.store.mset([(f"k{i}", encode(Entry([float(i)] * 8, 1, False)))])


@pytest.mark.parametrize("bad", [42, object(), ["a path"]])
def test_a_cache_of_the_wrong_kind_is_refused(make_client: MakeClient, bad: object) -> None:
    with pytest.raises(ConfigurationError, match="cache must be"):
        make_client(FakeService(), cache=bad)


def test_a_path_that_is_not_a_database_is_refused(tmp_path: Path) -> None:
    (tmp_path / "folder").mkdir()
    with pytest.raises(ConfigurationError, match="not a file"):
        EmbeddingCache(tmp_path / "folder")
    (tmp_path / "notes.txt").write_text("these are my notes, not a database" * 100)
    with pytest.raises(ConfigurationError, match="cannot be used as an SQLite database"):
        EmbeddingCache(tmp_path / "notes.txt")


def test_a_cache_pickles_by_its_path(cache_path: Path) -> None:
    cache = EmbeddingCache(cache_path, cache_urls=True)
    cache.put_many([("k", Entry([0.5, 0.25], 3, True))])
    copy = pickle.loads(pickle.dumps(cache))
    assert copy.cache_urls and copy.get_many(["k"])["k"] == Entry([0.5, 0.25], 3, True)


def test_entries_round_trip_and_refuse_bad_numbers() -> None:
    entry = Entry(as_float32([0.1, -0.2, 0.3]), 7, False)
    assert decode(encode(entry)) == entry
    nan = encode(Entry([float("nan"), 0.0], 1, False))
    assert decode(nan) is None
    assert decode(b"") is None


def test_sqlite_keeps_many_threads_writing(make_client: MakeClient, cache_path: Path) -> None:
    service = FakeService()
    client = make_client(service, cache=cache_path, max_parts_per_request=1, max_concurrency=8)
    texts = [f"text {i}" for i in range(64)]
    client.embed(texts)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert client.embed(texts).usage.cached == 64
    with sqlite3.connect(cache_path) as connection:
        (mode,) = connection.execute("PRAGMA journal_mode").fetchone()
    assert mode == "wal"


def test_saved_dollars_follow_the_modality_prices(
    make_client: MakeClient, service: FakeService, cache_path: Path
) -> None:
    client = make_client(service, cache=cache_path)
    client.embed(["words", Image(RED)])
    text_price, image_price = media_price("tongyi-embedding-vision-flash")
    again = client.embed(["words", Image(RED)])
    # the fake bills 10 tokens a part, each request apart (texts and media never mix)
    assert again.usage.saved_usd == pytest.approx(10 * (text_price + image_price) / 1e6)


def test_no_cache_is_the_default(make_client: MakeClient, service: FakeService) -> None:
    client = make_client(service)
    assert client.cache is None
    client.embed(["x"])
    client.embed(["x"])
    assert len(service.seen) == 2
    assert not any(p.suffix == ".sqlite" for p in Path(os.getcwd()).iterdir())
