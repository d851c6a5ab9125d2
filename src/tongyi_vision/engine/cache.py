"""The embedding cache: vectors kept by what made them, so the same content is paid for once.

A key is a digest of everything that determines a vector: the model, the
vector size, the native parameters it is sent with, and the content itself (a
text's bytes; an image's or video's bytes, with the rules that re-encode or
sample it; a clip's file digest and time range), as each part's ``identity``
says. Never a path or a URL alone: a file redrawn in place is new content.
Content the service downloads (an http(s) URL) is not cached unless
``cache_urls=True``, since what is behind a URL can change.

Entries live in a store with LangChain's ``ByteStore`` shape (``mget`` and
``mset`` of ``bytes``): :class:`SQLiteStore` (the default, standard library
only, safe for many threads and processes), :class:`RedisStore` (a Redis
server shared by processes and machines: a ``redis://`` URL), or any
``ByteStore`` a user has (``LocalFileStore``...). Each entry holds the vector as float32, the
tokens it cost and a checksum: an entry that does not check out is a miss
and a :class:`CacheWarning`, never a wrong vector.
"""

from __future__ import annotations

import array
import hashlib
import json
import math
import os
import sqlite3
import struct
import sys
import threading
import time
import warnings
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable
from urllib.parse import unquote, urlsplit, urlunsplit

from ..wire.errors import ConfigurationError, MissingDependencyError
from ..wire.results import Vector

if TYPE_CHECKING:
    import redis

_MAGIC = b"TVC1"
_HEADER = struct.Struct("<4sBII")  # magic, modality (0 text, 1 media), tokens, dimension
_CRC = struct.Struct("<I")
_LITTLE = sys.byteorder == "little"
_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
_T = TypeVar("_T")


class CacheWarning(UserWarning):
    """An entry of the embedding cache could not be read or written; the call went on
    without it (a miss, or a vector not kept)."""


@runtime_checkable
class CacheStore(Protocol):
    """Where entries live: LangChain's ``ByteStore`` interface, so any of its stores fits."""

    def mget(self, keys: Sequence[str]) -> list[bytes | None]: ...

    def mset(self, key_value_pairs: Sequence[tuple[str, bytes]]) -> None: ...


class SQLiteStore:
    """A ``ByteStore`` in one SQLite file (standard library): WAL mode, one connection per
    thread, waits for other writers instead of failing, so many threads and processes can
    share it.

    >>> store = SQLiteStore("embeddings.sqlite")
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path).expanduser()
        if self.path.exists() and not self.path.is_file():
            raise ConfigurationError(f"the cache path {str(self.path)!r} is not a file")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._connect()  # refuses a file that is not a database now, not at the first call

    def _connect(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is not None:
            return connection
        try:
            connection = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            connection.execute(
                "CREATE TABLE IF NOT EXISTS entries (key TEXT PRIMARY KEY, value BLOB NOT NULL)"
                " WITHOUT ROWID"
            )
        except sqlite3.DatabaseError as exc:
            raise ConfigurationError(
                f"the cache {str(self.path)!r} cannot be used as an SQLite database ({exc}); "
                "give another path, or remove the file"
            ) from None
        self._local.connection = connection
        return connection

    def mget(self, keys: Sequence[str]) -> list[bytes | None]:
        found: dict[str, bytes] = {}
        connection = self._connect()
        for start in range(0, len(keys), 500):  # SQLite's limit on bound parameters
            chunk = list(keys[start : start + 500])
            marks = ",".join("?" * len(chunk))
            rows = connection.execute(
                f"SELECT key, value FROM entries WHERE key IN ({marks})", chunk
            )
            found.update((key, bytes(value)) for key, value in rows)
        return [found.get(key) for key in keys]

    def mset(self, key_value_pairs: Sequence[tuple[str, bytes]]) -> None:
        if not key_value_pairs:
            return
        connection = self._connect()
        with connection:
            connection.execute("BEGIN IMMEDIATE")
            connection.executemany(
                "INSERT OR REPLACE INTO entries (key, value) VALUES (?, ?)", key_value_pairs
            )

    def __len__(self) -> int:
        row = self._connect().execute("SELECT COUNT(*) FROM entries").fetchone()
        return int(row[0])

    def close(self) -> None:
        """Close this thread's connection (others close when their threads end)."""
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.path)!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (SQLiteStore, (self.path,))


class RedisStore:
    """A ``ByteStore`` on a Redis server (the ``redis`` extra), for a cache shared by many
    processes and machines, such as the actors of a Ray job.

    ``server`` is a URL (``redis://[[user]:password@]host[:port][/db]``, ``rediss://`` for
    TLS, ``unix:///path/to/redis.sock?db=0``) or a ``redis.Redis`` client of your own.
    Keys are ``prefix`` followed by the entry's key; ``ttl`` (seconds) makes entries expire
    that long after they are written (else they stay until Redis evicts them, as its
    ``maxmemory-policy`` says). ``connect_timeout`` and ``timeout`` (seconds) bound
    connecting and each command of a store made from a URL: a server that is down or
    silent fails the lookup, which the cache turns into a warning and a miss, and the store
    then fails at once for a few seconds instead of waiting on every request.

    Safe for many threads (one redis-py connection pool) and processes (the pool starts
    afresh in a forked child). It pickles by its URL, or a client's connection settings
    (address, database, credentials, timeouts, TLS files; not settings that are objects,
    such as a credential provider), and connects again where it is unpickled. Neither its
    repr nor its errors show the password.

    >>> store = RedisStore("redis://127.0.0.1:6379/0", ttl=30 * 86400)
    >>> client = Client(cache=EmbeddingCache(store))  # or Client(cache="redis://...")
    """

    _PAUSE = 5.0  # seconds a store that could not reach its server fails at once
    _CHUNK = 500  # keys per command

    def __init__(
        self,
        server: str | redis.Redis,
        *,
        prefix: str = "tongyi-vision:",
        ttl: float | None = None,
        connect_timeout: float = 2.0,
        timeout: float = 5.0,
    ) -> None:
        module = _import_redis()
        if not isinstance(prefix, str):
            raise ConfigurationError(f"prefix must be a str, not {type(prefix).__name__}")
        if ttl is not None and not _is_seconds(ttl):
            raise ConfigurationError(f"ttl must be a number of seconds above 0, not {ttl!r}")
        for name, value in (("connect_timeout", connect_timeout), ("timeout", timeout)):
            if not _is_seconds(value):
                raise ConfigurationError(f"{name} must be a number of seconds above 0")
        self.prefix = prefix
        self.ttl = ttl
        self.connect_timeout = float(connect_timeout)
        self.timeout = float(timeout)
        self._redis = module
        self._down_until = 0.0
        self._down_reason = ""
        self._url: str | None = None
        if isinstance(server, str):
            self._url = server
            self._where = _mask_url(server)
            self._client = self._from_url(module, server)
            self._owned = True
        elif isinstance(server, module.Redis):
            self._client = server
            self._where = _describe(server.connection_pool)
            self._owned = False
        else:
            raise ConfigurationError(
                "RedisStore takes a redis://, rediss:// or unix:// URL or a redis.Redis client,"
                f" not {type(server).__name__}"
            )
        settings = self._client.connection_pool.connection_kwargs
        if settings.get("decode_responses"):
            raise ConfigurationError(
                "the Redis client of the cache must give bytes: make it with"
                " decode_responses=False (the default)"
            )
        self._secrets = _secrets(self._url, settings.get("password"), settings.get("ssl_password"))

    def _from_url(self, module: ModuleType, url: str) -> redis.Redis:
        if not url.startswith(_REDIS_SCHEMES):
            raise ConfigurationError(
                f"the Redis URL {self._where!r} must start with redis://, rediss:// or unix://"
            )
        try:
            client: redis.Redis = module.Redis.from_url(
                url,
                socket_connect_timeout=self.connect_timeout,
                socket_timeout=self.timeout,
                retry=_retry(module),
            )
        except (ValueError, TypeError) as exc:
            text = _scrub(str(exc), _secrets(url))
            raise ConfigurationError(
                f"the Redis URL {self._where!r} cannot be used ({text}); give one like"
                " redis://host:6379/0"
            ) from None
        return client

    def _call(self, action: str, work: Callable[[redis.Redis], _T]) -> _T:
        """Run ``work`` on the client: redis errors come back without the password, and a
        server that could not be reached is not tried again for a few seconds."""
        errors = self._redis
        left = self._down_until - time.monotonic()
        if left > 0:
            raise errors.ConnectionError(
                f"Redis at {self._where} could not be reached a moment ago"
                f" ({self._down_reason}); it is tried again in {left:.1f} s"
            )
        try:
            return work(self._client)
        except errors.RedisError as exc:
            text = _scrub(str(exc), self._secrets)
            if isinstance(exc, (errors.ConnectionError, errors.TimeoutError)):
                self._down_reason = text
                self._down_until = time.monotonic() + self._PAUSE
            message = f"Redis at {self._where} failed to {action}: {text}"
            try:
                error = type(exc)(message)
            except Exception:  # an error class that wants other arguments
                error = errors.RedisError(message)
            raise error from None

    def mget(self, keys: Sequence[str]) -> list[bytes | None]:
        """The values of ``keys`` (``None`` where there is none), in one round trip."""
        if not keys:
            return []
        names = [self.prefix + key for key in keys]

        def work(client: redis.Redis) -> list[Any]:
            pipe = client.pipeline(transaction=False)
            for start in range(0, len(names), self._CHUNK):
                pipe.mget(names[start : start + self._CHUNK])
            return [value for chunk in pipe.execute() for value in chunk]

        return [None if v is None else bytes(v) for v in self._call("read", work)]

    def mset(self, key_value_pairs: Sequence[tuple[str, bytes]]) -> None:
        """Keep values (with the store's ``ttl``), in one round trip."""
        if not key_value_pairs:
            return
        pairs = [(self.prefix + key, value) for key, value in key_value_pairs]
        expiry = None if self.ttl is None else max(1, round(self.ttl * 1000))

        def work(client: redis.Redis) -> None:
            pipe = client.pipeline(transaction=False)
            if expiry is None:
                for start in range(0, len(pairs), self._CHUNK):
                    pipe.mset(dict(pairs[start : start + self._CHUNK]))
            else:
                for name, value in pairs:
                    pipe.set(name, value, px=expiry)
            pipe.execute()

        self._call("write", work)

    def mdelete(self, keys: Sequence[str]) -> None:
        """Remove entries (LangChain's ``ByteStore.mdelete``)."""
        names = [self.prefix + key for key in keys]

        def work(client: redis.Redis) -> None:
            for start in range(0, len(names), self._CHUNK):
                client.delete(*names[start : start + self._CHUNK])

        if names:
            self._call("delete", work)

    def yield_keys(self, *, prefix: str | None = None) -> Iterator[str]:
        """The keys of this store's entries (without its ``prefix``), those starting with
        ``prefix`` if given (LangChain's ``ByteStore.yield_keys``)."""
        pattern = _glob_escape(self.prefix + (prefix or "")) + "*"

        def page(at: int) -> Callable[[redis.Redis], Any]:
            return lambda client: client.scan(at, match=pattern, count=1000)

        cursor = 0
        while True:
            step = self._call("list keys", page(cursor))
            cursor, found = int(step[0]), step[1]
            for name in found:
                yield bytes(name).decode("utf-8", "surrogateescape")[len(self.prefix) :]
            if cursor == 0:
                return

    def close(self) -> None:
        """Close the connections of a store made from a URL (a client you gave stays open)."""
        if self._owned:
            self._client.close()

    def __repr__(self) -> str:
        ttl = "" if self.ttl is None else f", ttl={self.ttl!r}"
        return f"RedisStore({self._where!r}, prefix={self.prefix!r}{ttl})"

    def __reduce__(self) -> tuple[Any, ...]:
        options = {
            "prefix": self.prefix,
            "ttl": self.ttl,
            "connect_timeout": self.connect_timeout,
            "timeout": self.timeout,
        }
        if self._url is not None:
            return (_redis_from_url, (self._url, options))
        pool = self._client.connection_pool
        simple = (str, bytes, int, float, bool, type(None))
        settings = {
            name: value
            for name, value in pool.connection_kwargs.items()
            if isinstance(value, simple) and not name.startswith("orig_")
        }
        return (_redis_from_settings, (pool.connection_class, settings, options))


def _is_seconds(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < math.inf


def _import_redis() -> ModuleType:
    try:
        import redis
        import redis.backoff
        import redis.retry
    except ImportError as exc:
        raise MissingDependencyError("redis", "redis", "A Redis cache") from exc
    return redis


def _retry(module: ModuleType) -> Any:
    # One retry on a fresh connection, for a pooled one the server closed; none on a
    # timeout, which would only double the wait on a silent server.
    return module.retry.Retry(
        module.backoff.NoBackoff(), 1, supported_errors=(module.ConnectionError,)
    )


def _redis_from_url(url: str, options: dict[str, Any]) -> RedisStore:
    return RedisStore(url, **options)


def _redis_from_settings(
    connection_class: type[Any], settings: dict[str, Any], options: dict[str, Any]
) -> RedisStore:
    module = _import_redis()
    settings.setdefault("retry", _retry(module))
    pool = module.ConnectionPool(connection_class=connection_class, **settings)
    return RedisStore(module.Redis(connection_pool=pool), **options)


def is_redis_url(value: object) -> bool:
    """Whether a ``cache=`` string names a Redis server rather than a file."""
    return isinstance(value, str) and value.startswith(_REDIS_SCHEMES)


def _mask_url(url: str) -> str:
    """The URL with its password (in the user part or the query) shown as ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<a Redis URL that cannot be parsed>"
    netloc = parts.netloc
    if "@" in netloc:
        user_info, _, host = netloc.rpartition("@")
        user, colon, _ = user_info.partition(":")
        # a lone user part is masked too: some tools read it as the password
        netloc = f"{user}:***@{host}" if colon else f"***@{host}"
    pieces = [piece for piece in parts.query.split("&") if piece]
    query = "&".join(
        piece.partition("=")[0] + "=***" if "password" in piece.partition("=")[0].lower() else piece
        for piece in pieces
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _describe(pool: Any) -> str:
    """A client's server as a URL, without its password."""
    settings = pool.connection_kwargs
    db = settings.get("db", 0)
    user = settings.get("username") or ""
    auth = f"{user}:***@" if settings.get("password") else (f"{user}@" if user else "")
    if "path" in settings:
        return f"unix://{auth}{settings['path']}?db={db}"
    scheme = "rediss" if "SSL" in pool.connection_class.__name__ else "redis"
    host, port = settings.get("host", "localhost"), settings.get("port", 6379)
    return f"{scheme}://{auth}{host}:{port}/{db}"


def _secrets(url: str | None, *passwords: object) -> tuple[str, ...]:
    """The strings an error message must not show: the passwords, as given and decoded."""
    found = {password for password in passwords if isinstance(password, str)}
    if url is not None:
        try:
            parts = urlsplit(url)
        except ValueError:
            parts = None
        if parts is not None:
            user_info = parts.netloc.rpartition("@")[0]
            found.add(user_info.partition(":")[2] if ":" in user_info else user_info)
            for piece in parts.query.split("&"):
                name, _, value = piece.partition("=")
                if "password" in name.lower():
                    found.add(value)
    found |= {unquote(s) for s in found}
    return tuple(sorted((s for s in found if s), key=len, reverse=True))


def _scrub(text: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


@dataclass(frozen=True)
class Entry:
    """A cached vector and what it cost when it was made."""

    vector: Vector
    tokens: int
    media: bool


class EmbeddingCache:
    """Vectors by content, model and size: a hit sends nothing.

    ``store`` is a path (an :class:`SQLiteStore` there), a ``redis://``,
    ``rediss://`` or ``unix://`` URL (a :class:`RedisStore` on that server), or any
    object with ``mget`` / ``mset`` of bytes, such as a LangChain ``ByteStore``.
    ``cache_urls``: also keep the vectors of http(s) URLs, for content you
    know does not change behind its URL.

    >>> client = Client(cache="~/.cache/tongyi-vision.sqlite")
    >>> client = Client(cache="redis://127.0.0.1:6379/0")
    >>> client = Client(cache=EmbeddingCache(LocalFileStore("cache/")))
    """

    def __init__(
        self,
        store: CacheStore | str | os.PathLike[str],
        *,
        cache_urls: bool = False,
        namespace: str = "tongyi-vision",
    ) -> None:
        if is_redis_url(store):
            store = RedisStore(str(store))
        elif isinstance(store, (str, os.PathLike)):
            store = SQLiteStore(store)
        if not (callable(getattr(store, "mget", None)) and callable(getattr(store, "mset", None))):
            raise ConfigurationError(
                "cache must be a path, a Redis URL, an EmbeddingCache, or a store with mget and "
                f"mset (such as a LangChain ByteStore), not {type(store).__name__}"
            )
        self.store: CacheStore = store
        self.cache_urls = cache_urls
        self.namespace = namespace

    def key(
        self,
        identity: str,
        model: str,
        dimension: int | None,
        parameters: Mapping[str, object] | None = None,
    ) -> str | None:
        """The entry key of a part's content for a model, size and the native parameters it
        is sent with (``res_level``, ``fps``, ``max_video_frames``, ``instruct``: each
        changes the vector); ``None`` if it is not to be cached (no identity, or a URL
        without ``cache_urls``). Without parameters, the key is that of earlier versions."""
        if not identity or (identity.startswith("url:") and not self.cache_urls):
            return None
        if parameters:
            given = json.dumps(dict(parameters), sort_keys=True, separators=(",", ":"))
            identity = f"{identity}\0{given}"
        named = "\0".join((self.namespace, "1", model, str(dimension or ""), identity))
        return hashlib.sha256(named.encode("utf-8", "surrogatepass")).hexdigest()

    def get_many(self, keys: Sequence[str]) -> dict[str, Entry]:
        """The entries found; a store that fails, or an entry that does not check out, is a
        miss and a warning."""
        if not keys:
            return {}
        try:
            values = self.store.mget(list(keys))
        except Exception as exc:  # any store's failure: the call goes on without the cache
            _warn(f"the cache could not be read ({type(exc).__name__}: {exc}); embedding anew")
            return {}
        found = {}
        for key, value in zip(keys, values, strict=False):
            if value is None:
                continue
            entry = decode(value)
            if entry is None:
                _warn(f"the cache entry {key[:12]}... is damaged; it is embedded anew")
                continue
            found[key] = entry
        return found

    def put_many(self, items: Sequence[tuple[str, Entry]]) -> None:
        """Keep entries; a store that fails is a warning (the vectors are still returned)."""
        if not items:
            return
        try:
            self.store.mset([(key, encode(entry)) for key, entry in items])
        except Exception as exc:  # any store's failure: the vectors are still returned
            _warn(f"the cache could not be written ({type(exc).__name__}: {exc})")

    def __repr__(self) -> str:
        return f"EmbeddingCache({self.store!r}, cache_urls={self.cache_urls})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (self.store, self.cache_urls, self.namespace))


def _rebuild(store: CacheStore, cache_urls: bool, namespace: str) -> EmbeddingCache:
    return EmbeddingCache(store, cache_urls=cache_urls, namespace=namespace)


def as_cache(value: object) -> EmbeddingCache | None:
    """What a ``cache=`` argument names: ``None``, a path, a Redis URL, a store, or a cache."""
    if value is None or isinstance(value, EmbeddingCache):
        return value
    if isinstance(value, (str, os.PathLike, CacheStore)):
        return EmbeddingCache(value)
    raise ConfigurationError(
        "cache must be None, a path, a Redis URL, an EmbeddingCache, or a store with mget and mset "
        f"(such as a LangChain ByteStore), not {type(value).__name__}"
    )


def as_float32(vector: Vector) -> Vector:
    """The vector as the cache keeps it, so that a hit and a miss give the same numbers."""
    return array.array("f", vector).tolist()


def encode(entry: Entry) -> bytes:
    floats = array.array("f", entry.vector)
    if not _LITTLE:  # pragma: no cover - the project runs on little-endian machines
        floats.byteswap()
    body = (
        _HEADER.pack(_MAGIC, 1 if entry.media else 0, entry.tokens, len(floats)) + floats.tobytes()
    )
    return body + _CRC.pack(zlib.crc32(body))


def decode(value: bytes) -> Entry | None:
    """An entry, or ``None`` when the bytes are not one (wrong magic, length or checksum)."""
    if len(value) < _HEADER.size + _CRC.size:
        return None
    body, (crc,) = value[: -_CRC.size], _CRC.unpack(value[-_CRC.size :])
    if zlib.crc32(body) != crc:
        return None
    magic, media, tokens, dimension = _HEADER.unpack(body[: _HEADER.size])
    payload = body[_HEADER.size :]
    if magic != _MAGIC or media > 1 or len(payload) != 4 * dimension or dimension == 0:
        return None
    floats = array.array("f")
    floats.frombytes(payload)
    if not _LITTLE:  # pragma: no cover
        floats.byteswap()
    vector = floats.tolist()
    if not math.isfinite(sum(vector)):  # a NaN or an infinity anywhere makes the sum one
        return None
    return Entry(vector, tokens, bool(media))


def _warn(message: str) -> None:
    warnings.warn(message, CacheWarning, stacklevel=4)
