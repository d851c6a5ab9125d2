"""What the page's searches do, without the web: embed the query with the server's one client,
search the index, and describe the results and the index as JSON-ready records.

Nothing here knows HTTP: :mod:`._app` turns requests into these calls and their
answers (and errors) into responses.
"""

from __future__ import annotations

import os
import threading
import time
import urllib.parse
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..engine.client import Client
from ..index import Hit, IndexTable, Row
from ..index.schema import KINDS, sql_in
from ..media.image import Image
from ..media.parts import Part
from ..media.video import Video
from ..wire.errors import EmptyInputError, InputError
from ..wire.results import Usage
from ._files import MEDIA_KINDS, item_token

DEFAULT_K = 12
"""Results a query shows unless the page asks for another number."""
MAX_K = 200
MAX_QUERY_CHARS = 4_000


class QueryError(InputError):
    """A query the page cannot run: an empty text, an unknown kind, a bad ``k``, an item that
    is not in the index, or an upload the client's checks refuse."""


@dataclass(frozen=True)
class Filters:
    """Which kinds of item a query looks among, and how many results it wants."""

    kinds: tuple[str, ...] = KINDS
    k: int = DEFAULT_K

    @classmethod
    def parse(cls, kinds: object, k: object, default_k: int = DEFAULT_K) -> Filters:
        """Filters from what a request gave (a list or comma-separated kinds, and ``k``);
        :class:`QueryError` for values outside the choices."""
        if kinds is None or kinds == "" or kinds == []:
            chosen: tuple[str, ...] = KINDS
        else:
            given = kinds.split(",") if isinstance(kinds, str) else kinds
            if not isinstance(given, list) or not all(isinstance(x, str) for x in given):
                raise QueryError("kinds must be a list of text, image and video")
            unknown = sorted({x.strip() for x in given} - set(KINDS))
            if unknown:
                raise QueryError(
                    f"unknown kind {', '.join(map(repr, unknown))}; choose text, image or video"
                )
            chosen = tuple(kind for kind in KINDS if kind in {x.strip() for x in given})
        if k is None or k == "":
            number = default_k
        else:
            try:
                number = int(k) if isinstance(k, (int, str)) and not isinstance(k, bool) else -1
            except ValueError:
                number = -1
            if not 1 <= number <= MAX_K:
                raise QueryError(f"k must be a whole number from 1 to {MAX_K}, not {k!r}")
        return cls(chosen, number)

    def where(self) -> str | None:
        """The SQL filter of these kinds (``None``: every kind)."""
        return None if set(self.kinds) == set(KINDS) else sql_in("kind", list(self.kinds))


@dataclass(frozen=True)
class Answer:
    """The results of one query, what it cost, and how long each step took."""

    query: dict[str, Any]
    hits: list[Hit]
    usage: Usage = field(default_factory=Usage)
    embed_ms: float = 0.0
    search_ms: float = 0.0


class Searcher:
    """Runs the page's queries over one index with one client, for the server's life.

    The client is shared by every request (its connections, its rate limit and its usage
    are the server's); searches of the table take turns (each takes milliseconds), while
    embedding runs concurrently.
    """

    def __init__(self, table: IndexTable, client: Client, *, default_k: int = DEFAULT_K) -> None:
        self.table = table
        self.client = client
        self.default_k = default_k
        self._table_lock = threading.Lock()

    # --- queries ---

    def by_text(self, text: object, filters: Filters) -> Answer:
        """Search with a text query, embedded with the index's model."""
        if not isinstance(text, str) or not text.strip():
            raise QueryError("type something to search for")
        if len(text) > MAX_QUERY_CHARS:
            raise QueryError(f"the query is {len(text):,} characters; keep it under 4,000")
        return self._embedded(text.strip(), {"type": "text", "text": text.strip()}, filters)

    def by_image(self, data: bytes, name: str, filters: Filters) -> Answer:
        """Search with an uploaded image, checked (and fitted) by the client's own rules."""
        if not data:
            raise QueryError("the image is empty", part=name)
        return self._embedded(Image(data), {"type": "image", "name": name}, filters, name)

    def by_video(self, path: Path, name: str, filters: Filters) -> Answer:
        """Search with an uploaded video file, sampled into frames like every local video."""
        return self._embedded(Video(path), {"type": "video", "name": name}, filters, name)

    def like(self, item_id: object, filters: Filters) -> Answer:
        """Search by the stored vector of an item of the index (nothing is sent or paid); the
        item itself is left out of its own results."""
        if not isinstance(item_id, str) or not item_id:
            raise QueryError("give the id of an item of the index")
        with self._table_lock:
            rows = self.table.get([item_id], vectors=True)
        if not rows:
            raise QueryError("is not an item of this index", part=repr(item_id))
        row = rows[0]
        query = {"type": "like", "id": row.id, "name": display_name(row.id, row.metadata)}
        hits, took = self._search(row.vector, filters, leave_out=row.id)
        return Answer(query, hits, search_ms=took)

    def item(self, item_id: str) -> Row | None:
        """The row of an item (without its vector), or ``None`` if the index has none."""
        with self._table_lock:
            rows = self.table.get([item_id])
        return rows[0] if rows else None

    def _embedded(
        self, part: Part, query: dict[str, Any], filters: Filters, name: str = ""
    ) -> Answer:
        where = filters.where()
        # The filter is checked before the query is paid for: no rows, nothing sent.
        if where is not None:
            with self._table_lock:
                matching = self.table.count(where)
            if matching == 0:
                return Answer(query, [])
        started = time.perf_counter()
        try:
            result = self.client.embed([part])
        except InputError as exc:
            raise QueryError(exc.reason, part=name or exc.part) from exc
        embed_ms = (time.perf_counter() - started) * 1000
        hits, search_ms = self._search(result.vectors[0], filters)
        return Answer(query, hits, result.usage, embed_ms, search_ms)

    def _search(
        self, vector: Sequence[float], filters: Filters, leave_out: str | None = None
    ) -> tuple[list[Hit], float]:
        started = time.perf_counter()
        wanted = filters.k + (1 if leave_out is not None else 0)
        with self._table_lock:
            hits = self.table.search(vector, wanted, where=filters.where())
        hits = [hit for hit in hits if hit.row.id != leave_out][: filters.k]
        return hits, (time.perf_counter() - started) * 1000

    # --- what the page shows ---

    def summary(self, *, emulated: bool, service: str) -> dict[str, Any]:
        """The index (settings, counts per kind, size on disk), the service, and the usage
        of every query since the server started."""
        info = self.table.info
        with self._table_lock:
            counts = {kind: self.table.count(f"kind = '{kind}'") for kind in KINDS}
            ann = self.table.has_ann()
        return {
            "index": {
                "path": str(self.table.path.resolve()),
                "name": self.table.path.resolve().name,
                "model": info.model,
                "dimension": info.dimension,
                "dialect": info.dialect,
                "clip_seconds": info.clip_seconds,
                "created": info.created,
                "items": sum(counts.values()),
                "counts": counts,
                "bytes_on_disk": folder_size(self.table.path),
                "ann": ann,
            },
            "service": {
                "emulated": emulated,
                "description": service,
                "model": self.client.model,
                "dialect": self.client.dialect,
            },
            "usage": usage_record(self.client.usage),
            "default_k": self.default_k,
            "max_k": MAX_K,
        }


class RecentQueries:
    """An embedding-cache store in memory holding the vectors of the last ``entries``
    distinct queries: the same query again (with other filters, or another ``k``) is
    answered without a request, and its usage says so (``cached``).

    >>> client = Client(model=info.model, cache=RecentQueries())
    """

    def __init__(self, entries: int = 512) -> None:
        if entries < 1:
            raise ValueError("entries must be at least 1")
        self.entries = entries
        self._values: OrderedDict[str, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def mget(self, keys: Sequence[str]) -> list[bytes | None]:
        with self._lock:
            found = [self._values.get(key) for key in keys]
            for key, value in zip(keys, found, strict=True):
                if value is not None:
                    self._values.move_to_end(key)
            return found

    def mset(self, key_value_pairs: Sequence[tuple[str, bytes]]) -> None:
        with self._lock:
            for key, value in key_value_pairs:
                self._values[key] = value
                self._values.move_to_end(key)
            while len(self._values) > self.entries:
                self._values.popitem(last=False)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"RecentQueries(entries={self.entries})"


def answer_record(answer: Answer, took_ms: float) -> dict[str, Any]:
    """An answer as the page reads it."""
    return {
        "query": answer.query,
        "results": [hit_record(rank, hit) for rank, hit in enumerate(answer.hits, start=1)],
        "usage": usage_record(answer.usage),
        "timing_ms": {
            "embed": round(answer.embed_ms, 1),
            "search": round(answer.search_ms, 1),
            "total": round(took_ms, 1),
        },
    }


def hit_record(rank: int, hit: Hit) -> dict[str, Any]:
    """One result: the row without its vector, its score, and the URLs of its media."""
    row = hit.row
    token = item_token(row.id)
    record: dict[str, Any] = {
        "rank": rank,
        "score": round(hit.score, 6),
        "id": row.id,
        "kind": row.kind,
        "source": row.source,
        "name": display_name(row.source or row.id, row.metadata),
        "metadata": row.metadata,
        "start_seconds": row.start_seconds,
        "end_seconds": row.end_seconds,
    }
    if row.kind == "text":
        record["text"] = row.content
    if row.kind in MEDIA_KINDS and row.content.startswith("file://"):
        version = urllib.parse.quote(row.sha256[:16])
        record["media_url"] = f"/media/{token}"
        record["thumb_url"] = f"/media/{token}/thumb?v={version}"
    return record


def usage_record(usage: Usage) -> dict[str, Any]:
    """The parts of a :class:`Usage` the page shows."""
    fields = asdict(usage)
    keep = (
        "total_tokens",
        "text_tokens",
        "media_tokens",
        "requests",
        "retries",
        "cost_usd",
        "text_cost_usd",
        "media_cost_usd",
        "cached",
        "modality_estimated",
    )
    return {name: fields[name] for name in keep}


def display_name(source: str, metadata: dict[str, Any]) -> str:
    """A short name for an item: its file name, with the chunk or clip it is."""
    name = metadata.get("file_name")
    label = name if isinstance(name, str) and name else os.path.basename(source.split("#")[0])
    return label or source


def folder_size(folder: Path) -> int:
    """Bytes of every file under ``folder`` (links not followed)."""
    total = 0
    for root, _, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                continue
    return total


def checked_upload(size: int | None, limit: int, what: str) -> None:
    """Refuse an upload over ``limit`` bytes (or an empty one)."""
    if size is not None and size > limit:
        raise UploadTooLargeError(
            f"the {what} is {size:,} bytes; the page takes up to {limit // (1024 * 1024)} MB"
        )
    if size == 0:
        raise EmptyInputError(f"the {what} is empty")


class UploadTooLargeError(QueryError):
    """An upload over the page's size cap."""
