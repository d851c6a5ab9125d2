"""RedisStore without a server: what a URL becomes, what its repr and errors show (never the
password), how it pickles, and what ``cache="redis://..."`` makes. Nothing here opens a
socket: the stores are made and pickled, and a failing server is a connection class that
refuses. The commands against a real ``redis-server`` are in
``integration_tests/test_cache_redis.py``."""

from __future__ import annotations

import pickle
import subprocess
import sys
import traceback
from pathlib import Path
from typing import Any

import pytest
import redis

from tests._core_fakes import FakeService, MakeClient, vector_for
from tongyi_vision import (
    CacheWarning,
    ConfigurationError,
    EmbeddingCache,
    MissingDependencyError,
    RedisStore,
    SQLiteStore,
)
from tongyi_vision.engine.cache import as_cache, as_float32

SECRET = "hunter2-not-shown"


def settings(store: RedisStore) -> dict[str, Any]:
    kwargs: dict[str, Any] = store._client.connection_pool.connection_kwargs
    return kwargs


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (f"redis://:{SECRET}@cache.example/0", "redis://:***@cache.example/0"),
        (f"redis://alice:{SECRET}@10.0.0.5:6380/2", "redis://alice:***@10.0.0.5:6380/2"),
        (f"rediss://:{SECRET}@cache.example:6380/1", "rediss://:***@cache.example:6380/1"),
        (f"redis://{SECRET}@cache.example/0", "redis://***@cache.example/0"),
        (f"unix://:{SECRET}@/run/redis.sock?db=3", "unix://:***@/run/redis.sock?db=3"),
        (f"redis://cache.example/0?password={SECRET}&db=1", "redis://cache.example/0?password=***&db=1"),
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
    ],
)  # fmt: skip
def test_the_repr_shows_where_and_never_the_password(url: str, shown: str) -> None:
    store = RedisStore(url)
    assert SECRET not in repr(store) and shown in repr(store)
    assert SECRET not in repr(EmbeddingCache(store))


def test_a_url_becomes_its_connection_settings() -> None:
    store = RedisStore("redis://alice:p%40ss%3Aword@10.0.0.5:6380/2", connect_timeout=1.5)
    given = settings(store)
    assert (given["host"], given["port"], given["db"]) == ("10.0.0.5", 6380, 2)
    assert (given["username"], given["password"]) == ("alice", "p@ss:word")
    assert given["socket_connect_timeout"] == 1.5 and given["socket_timeout"] == 5.0
    assert "p@ss:word" not in repr(store) and "p%40ss" not in repr(store)
    tls = RedisStore("rediss://cache.example:6380/0")
    assert tls._client.connection_pool.connection_class is redis.SSLConnection
    local = RedisStore("unix:///run/redis.sock?db=4")
    assert settings(local)["path"] == "/run/redis.sock" and settings(local)["db"] == 4


@pytest.mark.parametrize(
    ("server", "message"),
    [
        (f"http://:{SECRET}@cache.example/0", "must start with redis://"),
        (f"redis://:{SECRET}@cache.example:port/0", "cannot be used"),
        (f"redis://:{SECRET}@cache.example:99999/0", "cannot be used"),
        (f"redis://:{SECRET}@[::1/0", "cannot be used"),
        (42, "not int"),
    ],
)
def test_a_url_that_cannot_be_used_is_refused_without_its_password(
    server: Any, message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message) as caught:
        RedisStore(server)
    assert SECRET not in "".join(traceback.format_exception(caught.value))


@pytest.mark.parametrize(
    "options",
    [{"ttl": 0}, {"ttl": -5}, {"ttl": float("inf")}, {"ttl": True}, {"timeout": 0}, {"prefix": 3}],
)
def test_settings_out_of_range_are_refused(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        RedisStore("redis://127.0.0.1/0", **options)


def test_a_client_that_decodes_responses_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="decode_responses=False"):
        RedisStore(redis.Redis(decode_responses=True))


def test_a_url_store_pickles_by_its_url_and_settings() -> None:
    store = RedisStore(f"redis://:{SECRET}@cache.example:6390/5", prefix="p:", ttl=60, timeout=7)
    copy = pickle.loads(pickle.dumps(store))
    assert isinstance(copy, RedisStore) and copy is not store
    assert (copy.prefix, copy.ttl, copy.timeout, copy.connect_timeout) == ("p:", 60, 7.0, 2.0)
    assert settings(copy)["password"] == SECRET  # it must connect on the other side
    assert (settings(copy)["host"], settings(copy)["port"], settings(copy)["db"]) == (
        "cache.example",
        6390,
        5,
    )
    assert repr(copy) == repr(store)
    cache = pickle.loads(pickle.dumps(EmbeddingCache(store, cache_urls=True)))
    assert isinstance(cache.store, RedisStore) and cache.cache_urls


def test_a_client_store_pickles_by_its_connection_settings() -> None:
    client = redis.Redis(
        host="cache.example", port=6391, db=3, username="bob", password=SECRET, socket_timeout=4
    )
    store = RedisStore(client, ttl=5)
    shown = "RedisStore('redis://bob:***@cache.example:6391/3', prefix='tongyi-vision:', ttl=5)"
    assert repr(store) == shown
    copy = pickle.loads(pickle.dumps(store))
    given = settings(copy)
    assert (given["host"], given["port"], given["db"]) == ("cache.example", 6391, 3)
    assert (given["username"], given["password"], given["socket_timeout"]) == ("bob", SECRET, 4)
    assert copy.ttl == 5 and copy._client is not client
    tls = RedisStore(redis.Redis(host="h", ssl=True, ssl_cert_reqs="none"))
    copy = pickle.loads(pickle.dumps(tls))
    assert copy._client.connection_pool.connection_class is redis.SSLConnection
    assert settings(copy)["ssl_cert_reqs"] == "none"
    assert repr(copy).startswith("RedisStore('rediss://h:6379/0'")
    socket_store = pickle.loads(pickle.dumps(RedisStore(redis.Redis(unix_socket_path="/r.sock"))))
    assert settings(socket_store)["path"] == "/r.sock"


@pytest.mark.parametrize("url", ["redis://127.0.0.1:6379/0", "rediss://h/1", "unix:///r.sock"])
def test_a_redis_url_as_cache_is_a_redis_store(url: str) -> None:
    cache = as_cache(url)
    assert cache is not None and isinstance(cache.store, RedisStore)
    assert isinstance(EmbeddingCache(url, cache_urls=True).store, RedisStore)


def test_a_path_stays_sqlite(tmp_path: Path) -> None:
    for path in (tmp_path / "a.sqlite", str(tmp_path / "b.sqlite"), str(tmp_path / "redis.db")):
        cache = as_cache(path)
        assert cache is not None and isinstance(cache.store, SQLiteStore)


def test_a_client_given_a_redis_url_connects_only_when_it_needs_to(
    make_client: MakeClient, service: FakeService
) -> None:
    client = make_client(service, cache=f"redis://:{SECRET}@cache.example:6379/0")
    assert client.cache is not None and isinstance(client.cache.store, RedisStore)
    assert SECRET not in repr(client.cache)


class Refusing(redis.Connection):
    """A connection that fails as a server that is down does, saying the password (which a
    store must hide); it counts the attempts."""

    attempts = 0

    def connect(self) -> None:
        Refusing.attempts += 1
        raise redis.ConnectionError(f"Error 111 connecting with {self.password}: refused")


@pytest.fixture
def refusing() -> RedisStore:
    Refusing.attempts = 0
    pool = redis.ConnectionPool(connection_class=Refusing, host="h", password=SECRET)
    return RedisStore(redis.Redis(connection_pool=pool))


def test_a_store_that_cannot_connect_says_so_without_the_password(refusing: RedisStore) -> None:
    with pytest.raises(redis.ConnectionError) as caught:
        refusing.mget(["k"])
    text = "".join(traceback.format_exception(caught.value))
    assert SECRET not in text and "refused" in text and "redis://:***@h:6379/0" in text
    assert Refusing.attempts >= 1


def test_a_store_that_could_not_connect_fails_at_once_for_a_moment(
    refusing: RedisStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(redis.ConnectionError):
        refusing.mget(["k"])
    tried = Refusing.attempts
    with pytest.raises(redis.ConnectionError, match="tried again in") as caught:
        refusing.mset([("k", b"v")])
    assert Refusing.attempts == tried and SECRET not in str(caught.value)
    monkeypatch.setattr(refusing, "_down_until", 0.0)  # the moment has passed
    with pytest.raises(redis.ConnectionError, match="failed to write"):
        refusing.mset([("k", b"v")])
    assert Refusing.attempts > tried


def test_a_client_over_a_refusing_store_warns_and_embeds(
    make_client: MakeClient, service: FakeService, refusing: RedisStore
) -> None:
    client = make_client(service, cache=EmbeddingCache(refusing))
    with pytest.warns(CacheWarning) as caught:
        result = client.embed(["hello"])
    assert result.vectors == [as_float32(vector_for({"text": "hello"}))]
    messages = [str(w.message) for w in caught]
    assert messages and all(SECRET not in m for m in messages)
    assert any("could not be read" in m for m in messages)


def test_nothing_to_read_or_write_asks_nothing(refusing: RedisStore) -> None:
    assert refusing.mget([]) == []
    refusing.mset([])
    refusing.mdelete([])
    assert Refusing.attempts == 0


def test_without_redis_py_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)
    with pytest.raises(MissingDependencyError, match=r"tongyi-vision\[redis\]") as caught:
        RedisStore("redis://127.0.0.1/0")
    assert caught.value.extra == "redis"
    with pytest.raises(MissingDependencyError):
        as_cache("redis://127.0.0.1/0")


def test_importing_the_package_does_not_import_redis() -> None:
    code = "import sys, tongyi_vision; print('redis' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
