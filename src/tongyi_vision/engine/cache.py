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
only, safe for many threads and processes), or any ``ByteStore`` a user has
(``LocalFileStore``, Redis...). Each entry holds the vector as float32, the
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
import warnings
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from ..wire.errors import ConfigurationError
from ..wire.results import Vector

_MAGIC = b"TVC1"
_HEADER = struct.Struct("<4sBII")  # magic, modality (0 text, 1 media), tokens, dimension
_CRC = struct.Struct("<I")
_LITTLE = sys.byteorder == "little"


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


@dataclass(frozen=True)
class Entry:
    """A cached vector and what it cost when it was made."""

    vector: Vector
    tokens: int
    media: bool


class EmbeddingCache:
    """Vectors by content, model and size: a hit sends nothing.

    ``store`` is a path (an :class:`SQLiteStore` there), or any object with
    ``mget`` / ``mset`` of bytes, such as a LangChain ``ByteStore``.
    ``cache_urls``: also keep the vectors of http(s) URLs, for content you
    know does not change behind its URL.

    >>> client = Client(cache="~/.cache/tongyi-vision.sqlite")
    >>> client = Client(cache=EmbeddingCache(LocalFileStore("cache/")))
    """

    def __init__(
        self,
        store: CacheStore | str | os.PathLike[str],
        *,
        cache_urls: bool = False,
        namespace: str = "tongyi-vision",
    ) -> None:
        if isinstance(store, (str, os.PathLike)):
            store = SQLiteStore(store)
        if not (callable(getattr(store, "mget", None)) and callable(getattr(store, "mset", None))):
            raise ConfigurationError(
                "cache must be a path, an EmbeddingCache, or a store with mget and mset "
                f"(such as a LangChain ByteStore), not {type(store).__name__}"
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
    """What a ``cache=`` argument names: ``None``, a path, a store, or a cache."""
    if value is None or isinstance(value, EmbeddingCache):
        return value
    if isinstance(value, (str, os.PathLike, CacheStore)):
        return EmbeddingCache(value)
    raise ConfigurationError(
        "cache must be None, a path, an EmbeddingCache, or a store with mget and mset "
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
