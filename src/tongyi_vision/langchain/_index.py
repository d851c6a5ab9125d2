"""``open_index``: the index ``tongyi-vision embed`` writes, as a LangChain vector store.

What a document is in the table:

- ``page_content`` is the row's ``content``: the text, or the media reference
  (``file://`` URI, ``#t=S,E`` for a clip) of an image or video;
- ``id`` is the row's id (a path, ``path#chunk=N``, ``path#t=S,E`` for rows the
  CLI wrote; a fresh UUID for a document added without one);
- ``metadata`` of a row the CLI wrote is its metadata object plus its columns
  (id, source, kind, sha256, and a clip's start_seconds/end_seconds). A document
  added through the store comes back with exactly the metadata it went in with:
  the entries whose names are also columns are kept apart in the metadata
  object, under :data:`SHADOWED_KEY`, because the columns hold the row's own values.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.runnables.config import run_in_executor
from langchain_core.vectorstores import VectorStore

from ..index import IndexInfo, IndexTable, Row, WriteLock
from ..index.schema import COLUMNS, KINDS, ROW_FIELDS, sql_string
from ..media.fused import Fused
from ..media.image import Image
from ..media.references import image_input, text_or_media
from ..media.sources import file_uri, path_from
from ..media.video import Video
from ..wire.errors import InputError
from ..wire.limits import base_model
from ._embeddings import TongyiVisionEmbeddings

Filter = str | Mapping[str, Any] | None
"""A LanceDB SQL filter (``"kind = 'image'"``), or ``{column: value}`` pairs that must all
hold; a list or tuple value means any of them, ``None`` an empty cell (columns: id, source,
kind, sha256, start_seconds, end_seconds, content)."""

ImageQuery = str | os.PathLike[str]
"""An image to search by: a path, or a ``file://``, ``http(s)://`` or ``data:`` URI."""

SHADOWED_KEY = "langchain_metadata"
"""In the metadata object of a row added through the store: the document's metadata entries
whose names are also row columns (``{"id": 1}``), which the columns would hide. Its presence
marks the row as written by the store, whose documents come back as they went in."""

FILTER_COLUMNS = tuple(c for c in COLUMNS if c not in ("metadata", "vector"))
_SHADOWED = frozenset((*ROW_FIELDS, SHADOWED_KEY))
_URI_PREFIXES = ("file://", "http://", "https://", "data:")


def open_index(
    index: str | os.PathLike[str],
    embeddings: Embeddings | None = None,
    **options: Any,
) -> TongyiIndexStore:
    """The index at ``index`` (made by ``tongyi-vision embed``) as a LangChain vector store.

    ``embeddings`` embeds queries and added documents. By default the store makes a
    :class:`TongyiVisionEmbeddings` with the index's model and vector size, its dialect
    (unless ``TONGYI_VISION_DIALECT`` or ``dialect=`` says another), and ``options``
    (``api_key``, ``base_url``, ``cache``, ``read_query_files``...); key and base URL
    come from the environment when not given, as usual. The store closes embeddings it
    made in :meth:`TongyiIndexStore.close`.

    >>> store = open_index("photos.index")
    >>> store.similarity_search("a red bicycle", k=3)
    >>> store.similarity_search_by_image("query.jpg", k=3)
    >>> store.as_retriever(search_kwargs={"k": 5, "filter": {"kind": "image"}})
    """
    if embeddings is not None and options:
        raise TypeError(
            f"open_index takes either embeddings or options for the embeddings it makes "
            f"({', '.join(sorted(options))}), not both: set those on your embeddings"
        )
    table = IndexTable.open(Path(index), consistent=True)
    if embeddings is not None:
        return TongyiIndexStore(table, embeddings)
    made = _embeddings_for(table.info, options)
    try:
        return TongyiIndexStore(table, made, close_embeddings=True)
    except BaseException:
        made.close()
        raise


def _embeddings_for(info: IndexInfo, options: dict[str, Any]) -> TongyiVisionEmbeddings:
    # As for `tongyi-vision search`: the dialect asked for, else the environment's, else the
    # index's; the model and size are the index's.
    settings: dict[str, Any] = {
        "model": info.model,
        "dimension": info.dimension_option(),
        "dialect": os.environ.get("TONGYI_VISION_DIALECT") or info.dialect,
    }
    return TongyiVisionEmbeddings(**{**settings, **options})


class TongyiIndexStore(VectorStore):
    """A LangChain ``VectorStore`` over an index's LanceDB table (see :func:`open_index`).

    - Scores of ``*_with_score`` are cosine similarities (1 is the same vector);
      relevance scores are the same clipped to [0, 1].
    - ``filter`` is a LanceDB SQL filter or a dict of column values (see :data:`Filter`),
      applied before the search, so ``k`` results come back when ``k`` rows match.
    - Adding appends rows: a document without an id gets a fresh one and replaces
      nothing. A document given an id that is in the table already replaces that row:
      LangChain's contract for ``add_documents`` ("add or update"), and how its
      standard tests check that adding by id is idempotent.
    - Writes take the index's write lock: while ``tongyi-vision embed`` writes the
      same index, adding raises ``IndexBusyError``. Reads see every commit, the
      CLI's included.

    >>> store = TongyiIndexStore(IndexTable.open(Path("photos.index")), embeddings)
    """

    def __init__(
        self, table: IndexTable, embeddings: Embeddings, *, close_embeddings: bool = False
    ) -> None:
        self.table = table
        """The index's table."""
        self._embeddings = embeddings
        self._close_embeddings = close_embeddings
        # The index's lock refuses a second writer at once, this process included: this
        # store's own writes (from threads, or tasks of an event loop) wait for each other.
        self._writer = threading.Lock()
        if isinstance(embeddings, TongyiVisionEmbeddings):
            _check_compatible(table, embeddings)

    @property
    def embeddings(self) -> Embeddings:
        """What embeds queries and added documents."""
        return self._embeddings

    def close(self) -> None:
        """Close the connections of the embeddings :func:`open_index` made (not yours)."""
        if self._close_embeddings and isinstance(self._embeddings, TongyiVisionEmbeddings):
            self._embeddings.close()

    async def aclose(self) -> None:
        """:meth:`close` from inside a running event loop."""
        if self._close_embeddings and isinstance(self._embeddings, TongyiVisionEmbeddings):
            await self._embeddings.aclose()

    def __enter__(self) -> TongyiIndexStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def __aenter__(self) -> TongyiIndexStore:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # --- adding: rows are made (and checked) before anything is sent ---

    def add_texts(
        self,
        texts: Iterable[str],
        metadatas: list[dict[Any, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """Embed and append ``texts`` (media references are embedded as their medium, and
        their rows are of that kind); returns their ids, in order."""
        batch = self._batch(texts, metadatas, ids, "add_texts")
        if not batch.rows:
            return []
        self._check_writable()
        vectors = self._embeddings.embed_documents([row.content for row in batch.rows])
        return self._write(batch, vectors)

    async def aadd_texts(
        self,
        texts: Iterable[str],
        metadatas: list[dict[Any, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """Async :meth:`add_texts`: the embedding runs on the event loop, the write on a thread."""
        batch = self._batch(texts, metadatas, ids, "aadd_texts")
        if not batch.rows:
            return []
        self._check_writable()
        vectors = await self._embeddings.aembed_documents([row.content for row in batch.rows])
        return await run_in_executor(None, self._write, batch, vectors)

    def add_images(
        self,
        uris: Sequence[ImageQuery],
        metadatas: list[dict[Any, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """Embed images with the embeddings' ``embed_image`` and append them (as Chroma's
        ``add_images``). A local file's row holds its ``file://`` URI, so its document is
        embedded as that image again by any store; a URL or data URI is kept as given."""
        embed_image = self._media_method("image")
        references = _references(uris)
        batch = self._batch(references, metadatas, ids, "add_images", images=True)
        if not batch.rows:
            return []
        self._check_writable()
        return self._write(batch, embed_image(references))

    async def aadd_images(
        self,
        uris: Sequence[ImageQuery],
        metadatas: list[dict[Any, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """Async :meth:`add_images`."""
        aembed_image = self._amedia_method("image")
        references = _references(uris)
        batch = self._batch(references, metadatas, ids, "aadd_images", images=True)
        if not batch.rows:
            return []
        self._check_writable()
        vectors = await aembed_image(references)
        return await run_in_executor(None, self._write, batch, vectors)

    def _batch(
        self,
        texts: Iterable[str],
        metadatas: Sequence[Mapping[str, Any] | None] | None,
        ids: Sequence[str | None] | None,
        method: str,
        *,
        images: bool = False,
    ) -> _Batch:
        """The rows of the documents, without vectors; what is wrong with them is raised here."""
        if isinstance(texts, (str, bytes)):
            raise InputError(
                f"{method} takes a list of strings, not one string; wrap it: {method}([text])"
            )
        listed = list(texts)
        if metadatas is not None and len(metadatas) != len(listed):
            raise InputError(
                f"{method} got {len(metadatas)} metadatas for {len(listed)} documents; give "
                "one metadata dict per document, or none"
            )
        if ids is not None and len(ids) != len(listed):
            raise InputError(
                f"{method} got {len(ids)} ids for {len(listed)} documents; give one id per "
                "document (None for a fresh one), or none"
            )
        given = [None if i is None or i == "" else str(i) for i in ids or [None] * len(listed)]
        seen: set[str] = set()
        for index, row_id in enumerate(given):
            if row_id is None:
                continue
            if row_id in seen:
                raise InputError(
                    "is the id of more than one document of this call; give each document "
                    "its own id",
                    part_index=index,
                    part=repr(row_id),
                )
            seen.add(row_id)
        rows = []
        for index, (text, row_id) in enumerate(zip(listed, given, strict=True)):
            if not isinstance(text, str):
                raise InputError(
                    f"{method} takes strings, not {type(text).__name__}",
                    part_index=index,
                )
            metadata = (metadatas[index] if metadatas is not None else None) or {}
            try:
                part = self._part(text, images)
            except InputError as exc:
                raise exc.at(index) from None
            rows.append(_row(text, part, dict(metadata), row_id or str(uuid.uuid4())))
        return _Batch(rows, upsert=bool(seen))

    def _part(self, text: str, image: bool) -> Image | Video | str | None:
        """What the embeddings embed a document's text as (so that its row is of that kind):
        ``None`` when that is up to embeddings other than ours."""
        if image:
            return image_input(text)
        if not isinstance(self._embeddings, TongyiVisionEmbeddings):
            return None
        if not self._embeddings.embed_media_references:
            return text
        part = text_or_media(text)
        if isinstance(part, Fused):  # a captioned image reference: a row of its image
            part = part.parts[-1]
        return part if isinstance(part, (Image, Video)) else text

    def _check_writable(self) -> None:
        """Raise ``IndexBusyError`` before paying for embeddings when another process (a
        ``tongyi-vision embed`` run) is writing the index; the lock is taken again to write."""
        if self._writer.acquire(blocking=False):
            try:
                with WriteLock(self.table.path):
                    pass
            finally:
                self._writer.release()

    def _write(self, batch: _Batch, vectors: list[list[float]]) -> list[str]:
        rows = batch.rows
        if len(vectors) != len(rows):
            raise InputError(
                f"the embeddings returned {len(vectors)} vectors for {len(rows)} documents; "
                "they must return one vector per document"
            )
        for row, vector in zip(rows, vectors, strict=True):
            row.vector = vector
        with self._writer, WriteLock(self.table.path):
            # Fresh ids replace nothing: a plain append. Ids the caller gave may (an upsert).
            if batch.upsert:
                self.table.upsert(rows)
            else:
                self.table.add(rows)
        return [row.id for row in rows]

    def delete(self, ids: list[str] | None = None, **kwargs: Any) -> bool | None:
        """Delete the rows with these ids (ids not in the table are no error).

        ``delete()`` without ids is refused rather than emptying the index."""
        if ids is None:
            raise InputError(
                "delete needs the ids of the rows to delete (a store does not empty a whole "
                "index): give delete(ids), or delete the index folder to start over",
                part=str(self.table.path),
            )
        listed = [str(i) for i in ids]
        if listed:
            with self._writer, WriteLock(self.table.path):
                self.table.delete_ids(listed)
        return True

    async def adelete(self, ids: list[str] | None = None, **kwargs: Any) -> bool | None:
        """Async :meth:`delete`."""
        return await run_in_executor(None, self.delete, ids)

    def get_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        """The documents with these ids that exist, in the order asked (each once)."""
        return [_document(row) for row in self.table.get(list(dict.fromkeys(map(str, ids))))]

    async def aget_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        """Async :meth:`get_by_ids`."""
        return await run_in_executor(None, self.get_by_ids, ids)

    # --- searching ---

    def similarity_search(
        self, query: str, k: int = 4, filter: Filter = None, **kwargs: Any
    ) -> list[Document]:
        """The ``k`` documents nearest to a text query (or a media reference the embeddings
        take as a query: a ``data:`` URI, or a ``file://`` one with ``read_query_files``)."""
        return [doc for doc, _ in self.similarity_search_with_score(query, k, filter)]

    def similarity_search_with_score(
        self, query: str, k: int = 4, filter: Filter = None, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """:meth:`similarity_search` with each document's cosine similarity."""
        where = _where(filter)
        vector = self._embeddings.embed_query(query)
        return self._search(vector, k, where)

    def similarity_search_by_vector(
        self, embedding: list[float], k: int = 4, filter: Filter = None, **kwargs: Any
    ) -> list[Document]:
        """The ``k`` documents nearest to a vector."""
        return [doc for doc, _ in self._search(embedding, k, _where(filter))]

    def similarity_search_with_score_by_vector(
        self, embedding: Sequence[float], k: int = 4, filter: Filter = None, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """:meth:`similarity_search_by_vector` with each document's cosine similarity."""
        return self._search(embedding, k, _where(filter))

    def similarity_search_by_image(
        self, image: ImageQuery, k: int = 4, filter: Filter = None, **kwargs: Any
    ) -> list[Document]:
        """The ``k`` documents nearest to an image (a path, a ``file://``/``http(s)``/``data:``
        URI): image-to-image, and image-to-text and -video in the same space."""
        return [doc for doc, _ in self.similarity_search_by_image_with_score(image, k, filter)]

    def similarity_search_by_image_with_score(
        self, image: ImageQuery, k: int = 4, filter: Filter = None, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """:meth:`similarity_search_by_image` with each document's cosine similarity."""
        return self._media_search("image", image, k, filter)

    def similarity_search_by_video(
        self, video: ImageQuery, k: int = 4, filter: Filter = None, **kwargs: Any
    ) -> list[Document]:
        """The ``k`` documents nearest to a video (a local file or a URL)."""
        return [doc for doc, _ in self._media_search("video", video, k, filter)]

    def max_marginal_relevance_search(
        self,
        query: str,
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        filter: Filter = None,
        **kwargs: Any,
    ) -> list[Document]:
        """``k`` of the ``fetch_k`` documents nearest to the query, chosen to be near it and
        unlike each other (maximal marginal relevance; ``lambda_mult`` 1 is nearness only)."""
        where = _where(filter)
        vector = self._embeddings.embed_query(query)
        return self._mmr(vector, k, fetch_k, lambda_mult, where)

    def max_marginal_relevance_search_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        filter: Filter = None,
        **kwargs: Any,
    ) -> list[Document]:
        """:meth:`max_marginal_relevance_search` from a vector."""
        return self._mmr(embedding, k, fetch_k, lambda_mult, _where(filter))

    def _search(
        self, vector: Sequence[float], k: int, where: str | None
    ) -> list[tuple[Document, float]]:
        hits = self.table.search(vector, _check_k(k), where=where)
        return [(_document(hit.row), hit.score) for hit in hits]

    def _mmr(
        self,
        vector: Sequence[float],
        k: int,
        fetch_k: int,
        lambda_mult: float,
        where: str | None,
    ) -> list[Document]:
        import numpy as np
        from langchain_core.vectorstores.utils import maximal_marginal_relevance

        hits = self.table.search(
            vector, max(_check_k(k), _check_k(fetch_k, "fetch_k")), where=where, vectors=True
        )
        if not hits:
            return []
        chosen = maximal_marginal_relevance(
            np.asarray(vector, dtype=np.float32),
            [[float(x) for x in hit.row.vector] for hit in hits],
            lambda_mult=lambda_mult,
            k=k,
        )
        return [_document(hits[i].row) for i in chosen]

    def _media_search(
        self, medium: str, value: ImageQuery, k: int, filter: Filter
    ) -> list[tuple[Document, float]]:
        """The rows nearest to an image or a video, embedded as one (the filter is checked
        before anything is embedded)."""
        where = _where(filter)
        vector = self._media_method(medium)([os.fspath(value)])[0]
        return self._search(vector, k, where)

    async def _amedia_search(
        self, medium: str, value: ImageQuery, k: int, filter: Filter
    ) -> list[tuple[Document, float]]:
        """Async :meth:`_media_search`: the embedding on the event loop, the search on a thread."""
        where = _where(filter)
        vector = (await self._amedia_method(medium)([os.fspath(value)]))[0]
        found: list[tuple[Document, float]] = await run_in_executor(
            None, self._search, vector, k, where
        )
        return found

    def _media_method(self, medium: str) -> Callable[[list[str]], list[list[float]]]:
        method: Callable[[list[str]], list[list[float]]] | None = getattr(
            self._embeddings, f"embed_{medium}", None
        )
        if method is None:
            raise InputError(_cannot_embed(self._embeddings, medium))
        return method

    def _amedia_method(self, medium: str) -> Callable[[list[str]], Any]:
        method: Callable[[list[str]], Any] | None = getattr(
            self._embeddings, f"aembed_{medium}", None
        )
        if method is None:
            sync = self._media_method(medium)
            return lambda uris: run_in_executor(None, sync, uris)
        return method

    # --- async: the embedding on the event loop, the table's work on a thread ---

    async def asimilarity_search(
        self, query: str, k: int = 4, filter: Filter = None, **kwargs: Any
    ) -> list[Document]:
        """Async :meth:`similarity_search`."""
        return [doc for doc, _ in await self.asimilarity_search_with_score(query, k, filter)]

    async def asimilarity_search_with_score(
        self, query: str, k: int = 4, filter: Filter = None, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """Async :meth:`similarity_search_with_score`."""
        where = _where(filter)
        vector = await self._embeddings.aembed_query(query)
        return await run_in_executor(None, self._search, vector, k, where)

    async def asimilarity_search_by_vector(
        self, embedding: list[float], k: int = 4, filter: Filter = None, **kwargs: Any
    ) -> list[Document]:
        """Async :meth:`similarity_search_by_vector`."""
        found = await run_in_executor(None, self._search, embedding, k, _where(filter))
        return [doc for doc, _ in found]

    async def asimilarity_search_by_image(
        self, image: ImageQuery, k: int = 4, filter: Filter = None, **kwargs: Any
    ) -> list[Document]:
        """Async :meth:`similarity_search_by_image`."""
        return [doc for doc, _ in await self._amedia_search("image", image, k, filter)]

    async def asimilarity_search_by_video(
        self, video: ImageQuery, k: int = 4, filter: Filter = None, **kwargs: Any
    ) -> list[Document]:
        """Async :meth:`similarity_search_by_video`."""
        return [doc for doc, _ in await self._amedia_search("video", video, k, filter)]

    async def amax_marginal_relevance_search(
        self,
        query: str,
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        filter: Filter = None,
        **kwargs: Any,
    ) -> list[Document]:
        """Async :meth:`max_marginal_relevance_search`."""
        where = _where(filter)
        vector = await self._embeddings.aembed_query(query)
        return await run_in_executor(None, self._mmr, vector, k, fetch_k, lambda_mult, where)

    async def amax_marginal_relevance_search_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        filter: Filter = None,
        **kwargs: Any,
    ) -> list[Document]:
        """Async :meth:`max_marginal_relevance_search_by_vector`."""
        where = _where(filter)
        return await run_in_executor(None, self._mmr, embedding, k, fetch_k, lambda_mult, where)

    def _select_relevance_score_fn(self) -> Callable[[float], float]:
        return _relevance

    @classmethod
    def from_texts(
        cls,
        texts: list[str],
        embedding: Embeddings,
        metadatas: list[dict[Any, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        index: str | os.PathLike[str] | None = None,
        **kwargs: Any,
    ) -> TongyiIndexStore:
        """A store over the index ``index`` with ``texts`` added; a missing index is made
        with the model, vector size and dialect of ``embedding`` (a
        :class:`TongyiVisionEmbeddings`).

        >>> TongyiIndexStore.from_texts(["a note"], TongyiVisionEmbeddings(), index="notes.index")
        """
        if index is None:
            raise TypeError("from_texts needs index=PATH, the folder of the index to add to")
        path = Path(index)
        if IndexTable.exists(path):
            table = IndexTable.open(path, consistent=True)
        else:
            table = IndexTable.create(path, _info_of(embedding, path), consistent=True)
        store = cls(table, embedding)
        store.add_texts(texts, metadatas, ids=ids)
        return store


def _check_compatible(table: IndexTable, embeddings: TongyiVisionEmbeddings) -> None:
    """Refuse embeddings whose vectors are not comparable with the index's."""
    info = table.info
    if base_model(embeddings.model) != base_model(info.model) or (
        embeddings.dimension is not None and embeddings.dimension != info.dimension
    ):
        raise InputError(
            f"holds {info.dimension}-dimensional vectors of {info.model}; the embeddings "
            f"given make {embeddings.dimension}-dimensional ones of {embeddings.model}: give "
            "embeddings of the same model and size, or none (open_index makes them)",
            part=str(table.path),
        )


def _info_of(embedding: Embeddings, path: Path) -> IndexInfo:
    if not isinstance(embedding, TongyiVisionEmbeddings) or embedding.dimension is None:
        raise InputError(
            "holds no index yet, and a new index records the model and vector size of its "
            f"embeddings: give a TongyiVisionEmbeddings, not {type(embedding).__name__}, or "
            "create the table first with IndexTable.create(path, IndexInfo(...))",
            part=str(path),
        )
    return IndexInfo(embedding.model, embedding.dimension, embedding.dialect or "openai")


def _cannot_embed(embeddings: Embeddings, medium: str) -> str:
    return (
        f"the embeddings of this store ({type(embeddings).__name__}) have no embed_{medium} "
        f"method, so they cannot embed a {medium}: open the index with TongyiVisionEmbeddings"
    )


def _check_k(k: int, name: str = "k") -> int:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise InputError(f"{name} is the number of documents to return: 1 or more, not {k!r}")
    return k


def _relevance(score: float) -> float:
    return max(0.0, min(1.0, score))


def _where(filter: Filter) -> str | None:
    """The SQL filter of a ``filter`` argument (checked before anything is sent)."""
    if filter is None:
        return None
    if isinstance(filter, str):
        return filter.strip() or None
    if not isinstance(filter, Mapping):
        raise InputError(
            f"a filter is an SQL string (\"kind = 'image'\") or a dict of column values, "
            f"not {type(filter).__name__}"
        )
    clauses = []
    for key, value in filter.items():
        if key not in FILTER_COLUMNS:
            raise InputError(
                f"a filter dict takes the columns {', '.join(FILTER_COLUMNS)}, not {key!r}; "
                "other metadata is JSON in the metadata column: filter it with an SQL string"
            )
        if value is None:
            clauses.append(f"{key} IS NULL")
        elif isinstance(value, (list, tuple, set, frozenset)):
            values = sorted(map(_literal, value))
            clauses.append(f"{key} IN ({', '.join(values)})" if values else "false")
        else:
            clauses.append(f"{key} = {_literal(value)}")
    return " AND ".join(clauses) or None


def _literal(value: Any) -> str:
    if isinstance(value, str):
        return sql_string(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return repr(float(value))
    raise InputError(
        f"a filter dict compares columns with strings and numbers, not {value!r}; give an "
        "SQL filter string for anything else"
    )


@dataclass
class _Batch:
    """The rows of one adding call, and whether they may replace rows (ids were given)."""

    rows: list[Row]
    upsert: bool


def _document(row: Row) -> Document:
    shadowed = row.metadata.get(SHADOWED_KEY)
    if isinstance(shadowed, dict):
        kept = {k: v for k, v in row.metadata.items() if k != SHADOWED_KEY}
        metadata = {**kept, **shadowed}
    else:
        metadata = row.document_metadata()
    return Document(id=row.id, page_content=row.content, metadata=metadata)


def _references(uris: Sequence[ImageQuery]) -> list[str]:
    """What a row of each image holds: a local file's ``file://`` URI, else the URI given."""
    if isinstance(uris, (str, bytes, os.PathLike)):
        raise InputError(
            "add_images takes a list of paths or URIs, not one; wrap it: add_images([path])"
        )
    references = []
    for value in uris:
        text = os.fspath(value)
        is_file = not text.startswith(_URI_PREFIXES) and os.path.isfile(text)
        references.append(file_uri(text) if is_file else text)
    return references


def _row(text: str, part: Image | Video | str | None, metadata: dict[str, Any], row_id: str) -> Row:
    """The row of a document: its kind is what it is embedded as (an image or video
    reference is that medium); source and clip times come from its metadata, else from
    the reference."""
    kind = "image" if isinstance(part, Image) else "video" if isinstance(part, Video) else "text"
    if part is None and metadata.get("kind") in KINDS:
        # What embeddings other than ours make of the text is theirs to say: trust the caller.
        kind = str(metadata["kind"])
    source = metadata.get("source")
    if not isinstance(source, str) or not source:
        source = str(path_from(text)) if kind != "text" and text.startswith("file://") else ""
    start = _seconds(metadata.get("start_seconds"))
    end = _seconds(metadata.get("end_seconds"))
    if isinstance(part, Video) and start is None and end is None:
        start, end = _seconds(part.start), _seconds(part.end)
    shadowed = {k: v for k, v in metadata.items() if k in _SHADOWED}
    return Row(
        id=row_id,
        source=source,
        kind=kind,
        sha256=str(metadata.get("sha256") or ""),
        content=text,
        metadata={**metadata, SHADOWED_KEY: shadowed},
        start_seconds=start,
        end_seconds=end,
    )


def _seconds(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
