"""The embedding cache on a real ``redis-server`` against the emulator process: a second
client, and a second process given the pickled cache, send nothing for what the first paid
for; another model or size misses; a damaged entry is a warning and a miss; a server that is
down, goes away or never answers is a warning, not a failed or hung call; the password is
never shown."""

from __future__ import annotations

import multiprocessing
import socket
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from integration_tests._redis import redis_url, running_redis
from integration_tests.conftest import RunningEmulator
from tongyi_vision import CacheWarning, Client, EmbeddingCache, Image, RedisStore
from tongyi_vision.engine.cache import as_float32, decode

__all__ = ["redis_url"]  # a fixture, used by name

Make = Callable[..., bytes]
MakeClient = Callable[..., Client]
SECRET = "s3cret-of-the-test"


def sent(emulator: RunningEmulator) -> int:
    return emulator.stats()["requests"]


@pytest.fixture
def parts(tmp_path: Path, make_image: Make) -> list[Any]:
    folder = tmp_path / "pictures"
    folder.mkdir()
    pictures: list[Any] = []
    for seed in range(4):
        path = folder / f"p{seed}.jpg"
        path.write_bytes(make_image(100 + seed))
        pictures.append(Image(path))
    return [*pictures, "a garden in the rain", "a bicycle by a wall"]


def raw(url: str) -> redis.Redis:
    return redis.Redis.from_url(url)


def test_a_second_client_and_a_second_process_send_nothing(
    emulator: RunningEmulator, client_factory: MakeClient, redis_url: str, parts: list[Any]
) -> None:
    before = sent(emulator)
    first = client_factory(cache=redis_url).embed(parts)
    assert first.usage.cached == 0 and sent(emulator) > before
    paid = sent(emulator)
    # a new client, as a re-run would make: the entries are on the server
    again = client_factory(cache=redis_url).embed(parts)
    assert again.vectors == first.vectors
    assert again.usage.cached == len(parts) and again.usage.requests == 0
    assert sent(emulator) == paid
    # another process, given the cache pickled (as a Ray actor is): it connects there
    cache = EmbeddingCache(RedisStore(redis_url))
    job = (emulator.base_url, emulator.api_key, cache, parts)
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        vectors, cached, requests = pool.apply(_embed_elsewhere, (job,))
    assert vectors == first.vectors and cached == len(parts) and requests == 0
    assert sent(emulator) == paid
    assert len(list(RedisStore(redis_url).yield_keys())) == len(parts)


def _embed_elsewhere(
    job: tuple[str, str, EmbeddingCache, list[Any]],
) -> tuple[list[list[float]], int, int]:
    base_url, api_key, cache, parts = job
    with Client(api_key, base_url=base_url, cache=cache) as client:
        result = client.embed(parts)
    return result.vectors, result.usage.cached, result.usage.requests


def test_another_model_or_size_misses(
    emulator: RunningEmulator, client_factory: MakeClient, redis_url: str
) -> None:
    client_factory(cache=redis_url).embed(["hello"])
    before = sent(emulator)
    plus = client_factory(cache=redis_url, model="tongyi-embedding-vision-plus").embed(["hello"])
    assert plus.usage.cached == 0 and sent(emulator) == before + 1
    smaller = client_factory(dialect="dashscope", dimension=256, cache=redis_url).embed(["hello"])
    assert smaller.usage.cached == 0 and sent(emulator) == before + 2
    assert len(smaller.vectors[0]) == 256
    # and each of them is now kept: the three come back without a request
    for options in ({}, {"model": "tongyi-embedding-vision-plus"}):
        assert client_factory(cache=redis_url, **options).embed(["hello"]).usage.cached == 1
    again = client_factory(dialect="dashscope", dimension=256, cache=redis_url).embed(["hello"])
    assert again.usage.cached == 1 and sent(emulator) == before + 2


def test_a_damaged_entry_is_a_warning_and_a_miss(
    emulator: RunningEmulator, client_factory: MakeClient, redis_url: str
) -> None:
    client = client_factory(cache=redis_url)
    good = client.embed(["hello", "world"]).vectors
    store = RedisStore(redis_url)
    key, other = sorted(store.yield_keys())
    server = raw(redis_url)
    value = server.get("tongyi-vision:" + key)
    assert isinstance(value, bytes)
    server.set("tongyi-vision:" + key, value[:-3] + bytes(3))  # a broken checksum
    before = sent(emulator)
    with pytest.warns(CacheWarning) as caught:
        again = client.embed(["hello", "world"])
    assert [str(w.message) for w in caught if "damaged" in str(w.message)]
    assert again.vectors == good  # never a wrong vector
    assert again.usage.cached == 1 and sent(emulator) == before + 1
    assert all(v is not None and decode(v) is not None for v in store.mget([key, other]))


def test_prefix_ttl_and_removal(
    emulator: RunningEmulator, client_factory: MakeClient, redis_url: str
) -> None:
    store = RedisStore(redis_url, prefix="job-7:", ttl=3600)
    client = client_factory(cache=EmbeddingCache(store))
    client.embed(["one", "two", "three"])
    server = raw(redis_url)
    names = sorted(n.decode() for n in server.scan_iter(match="*") if isinstance(n, bytes))
    assert len(names) == 3 and all(n.startswith("job-7:") for n in names)
    assert all(0 < server.pttl(n) <= 3_600_000 for n in names)
    # the store is a full ByteStore: entries can be listed and removed
    keys = list(store.yield_keys())
    assert sorted("job-7:" + k for k in keys) == names
    assert list(store.yield_keys(prefix=keys[0][:10])) == [keys[0]]
    store.mdelete(keys[:1])
    before = sent(emulator)
    assert client.embed(["one", "two", "three"]).usage.cached == 2
    assert sent(emulator) == before + 1
    # a prefix with glob characters lists its own entries only
    odd = RedisStore(redis_url, prefix="job-[7]*:")
    odd.mset([("k", b"v")])
    assert list(odd.yield_keys()) == ["k"] and odd.mget(["k", "x"]) == [b"v", None]
    assert len(list(store.yield_keys())) == 3


def test_many_threads_share_one_store(
    emulator: RunningEmulator, client_factory: MakeClient, redis_url: str
) -> None:
    texts = [f"text number {i}" for i in range(48)]
    options = {"cache": redis_url, "max_parts_per_request": 1, "max_concurrency": 8}
    first = client_factory(**options).embed(texts)
    before = sent(emulator)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = client_factory(**options).embed(texts)
    assert again.vectors == first.vectors and again.usage.cached == 48
    assert sent(emulator) == before


def test_a_server_that_is_down_or_goes_away_is_a_warning(
    emulator: RunningEmulator, client_factory: MakeClient, parts: list[Any]
) -> None:
    expected = [as_float32(v) for v in client_factory().embed(parts).vectors]
    with running_redis() as url:
        client = client_factory(cache=url)
        client.embed(parts)
        assert client.embed(parts).usage.cached == len(parts)
    # the server is gone (connection refused): the same client, then a new one, embed anew
    for _ in range(2):
        before = sent(emulator)
        with pytest.warns(CacheWarning) as caught:
            result = client.embed(parts)
        assert result.vectors == expected and result.usage.cached == 0
        assert sent(emulator) > before
        messages = " ".join(str(w.message) for w in caught)
        assert "could not be read" in messages and "refused" in messages
        client = client_factory(cache=url)


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A port that takes connections (the kernel's backlog) and never answers them."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield f"redis://127.0.0.1:{listener.getsockname()[1]}/0"


def test_a_server_that_never_answers_is_a_warning_not_a_hang(
    emulator: RunningEmulator, client_factory: MakeClient, silent_server: str
) -> None:
    store = RedisStore(silent_server, timeout=0.5)
    client = client_factory(cache=EmbeddingCache(store))
    with pytest.warns(CacheWarning) as caught:
        result = client.embed(["hello", "world"])
    assert len(result.vectors) == 2 and result.usage.cached == 0
    messages = " ".join(str(w.message) for w in caught)
    assert "Timeout" in messages
    # the write that follows does not wait again: the store fails at once for a moment
    assert "tried again in" in messages


def test_the_password_is_never_shown(
    emulator: RunningEmulator, client_factory: MakeClient, redis_url: str
) -> None:
    raw(redis_url).config_set("requirepass", SECRET)
    guarded = redis_url.replace("redis://", f"redis://:{SECRET}@")
    client = client_factory(cache=guarded)
    client.embed(["hello"])
    assert client.embed(["hello"]).usage.cached == 1
    assert SECRET not in repr(client.cache) and ":***@" in repr(client.cache)
    # a wrong password: a warning that says why, without the password, and the call embeds
    wrong = redis_url.replace("redis://", "redis://:wrong-guess-secret@")
    with pytest.warns(CacheWarning) as caught:
        result = client_factory(cache=wrong).embed(["hello"])
    assert result.usage.cached == 0 and len(result.vectors) == 1
    messages = " ".join(str(w.message) for w in caught)
    assert "wrong-guess-secret" not in messages and SECRET not in messages
    assert "password" in messages.lower() or "auth" in messages.lower()
