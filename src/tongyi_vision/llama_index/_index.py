"""``open_index``: the index ``tongyi-vision embed`` writes, as a LlamaIndex multimodal index.

Why a store of our own rather than ``llama-index-vector-stores-lancedb``: its
``LanceDBVectorStore`` reads a ``metadata`` struct holding LlamaIndex's
serialised node (``_node_content``) and a ``doc_id`` column, filters on
``metadata.<key>`` struct fields, writes rows of that shape, and ranks by L2
distance; our table has a JSON ``metadata`` string, no ``doc_id``, rows written
by the CLI that no node was ever serialised into, and cosine vectors. Using it
would mean rewriting the table. :class:`TongyiIndexVectorStore` reads and writes
the table as it is, through :class:`~tongyi_vision.index.IndexTable`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.embeddings import MultiModalEmbedding
from llama_index.core.indices import MultiModalVectorStoreIndex
from llama_index.core.indices.multi_modal.retriever import MultiModalVectorIndexRetriever
from llama_index.core.llms.utils import LLMType, resolve_llm
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.schema import (
    BaseNode,
    ImageNode,
    MetadataMode,
    NodeRelationship,
    RelatedNodeInfo,
    TextNode,
)
from llama_index.core.storage.storage_context import StorageContext
from llama_index.core.vector_stores.types import (
    BasePydanticVectorStore,
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
    VectorStoreQueryResult,
)

from ..index import IndexInfo, IndexTable, Row, WriteLock
from ..index.schema import KINDS, ROW_FIELDS, rows_from_arrow, sql_in, sql_string
from ..media.image import Image
from ..media.references import media_part
from ..media.sources import file_uri, is_url, path_from
from ..media.video import Video
from ..wire.errors import InputError
from ..wire.formats import IMAGE_MIME_TYPES, sniff_image_format
from ._embedding import TongyiVisionEmbedding

TEXT_KINDS = ("text",)
MEDIA_KINDS = ("image", "video")
# The key of an added node's document id in a row's metadata (rows of the CLI have none:
# their document is their source file).
REF_DOC_KEY = "ref_doc_id"
# What an LLM is not shown of a retrieved node's metadata: bookkeeping, not content.
_NOT_FOR_LLM = (
    "id",
    "kind",
    "sha256",
    "mime_type",
    "bytes",
    "width",
    "height",
    "chunk",
    "chunks",
    "clip_uri",
    "image_uri",
    REF_DOC_KEY,
)
_SQL_OPERATORS = {
    FilterOperator.EQ: "=",
    FilterOperator.NE: "!=",
    FilterOperator.GT: ">",
    FilterOperator.GTE: ">=",
    FilterOperator.LT: "<",
    FilterOperator.LTE: "<=",
}


def open_index(
    index: str | os.PathLike[str],
    embed_model: BaseEmbedding | None = None,
    *,
    image_embed_model: MultiModalEmbedding | None = None,
    **options: Any,
) -> MultiModalVectorStoreIndex:
    """The index at ``index`` (made by ``tongyi-vision embed``) as a LlamaIndex
    ``MultiModalVectorStoreIndex``.

    Its text store holds the index's texts, its image store the images and video
    clips (one vector space, one table). ``embed_model`` embeds queries and inserted
    nodes; by default a :class:`TongyiVisionEmbedding` with the index's model and
    vector size, its dialect (unless ``TONGYI_VISION_DIALECT`` or ``dialect=`` says
    another), and the options that are its fields (``api_key``, ``base_url``,
    ``cache``, ``read_query_files``...; key and base URL from the environment when not
    given), also used as ``image_embed_model`` unless one is given. Other options go
    to the index (``transformations``, ``callback_manager``, ``show_progress``...).
    Nothing is taken from LlamaIndex's ``Settings`` embed model or LLM.

    >>> index = open_index("photos.index")
    >>> retriever = index.as_retriever(similarity_top_k=3, image_similarity_top_k=5)
    >>> retriever.text_to_image_retrieve("a red bicycle")
    >>> retriever.image_to_image_retrieve("query.jpg")
    >>> index.insert_nodes([TextNode(text="a note about bicycles")])
    >>> index.image_embed_model.close()     # the connections of the model it made

    Retrieved texts are ``TextNode``s, images ``ImageNode``s (``image_path`` set for
    local files), video clips ``TextNode``s whose text is the clip's reference
    (``file:///talk.mp4#t=10,20``) with ``start_seconds`` / ``end_seconds``; every
    node's metadata holds the row's columns and metadata.
    """
    embedding_options = {k: v for k, v in options.items() if k in _EMBEDDING_OPTIONS}
    index_options = {k: v for k, v in options.items() if k not in _EMBEDDING_OPTIONS}
    if "callback_manager" in options:
        embedding_options["callback_manager"] = options["callback_manager"]
    given = [k for k in embedding_options if k != "callback_manager"]
    if embed_model is not None and given:
        raise TypeError(
            f"open_index takes either embed_model or options for the model it makes "
            f"({', '.join(sorted(given))}), not both: set those on your embed_model"
        )
    table = IndexTable.open(Path(index), consistent=True)
    text_model = (
        embed_model if embed_model is not None else _embedding_for(table.info, embedding_options)
    )
    image_model = image_embed_model
    if image_model is None:
        if not isinstance(text_model, MultiModalEmbedding):
            raise InputError(
                f"the embed_model given ({type(text_model).__name__}) embeds no images; give "
                "a TongyiVisionEmbedding, or an image_embed_model too"
            )
        image_model = text_model
    try:
        for model in (text_model, image_model):
            _check_dimension(table, model)
        return _TableIndex(
            nodes=[],
            storage_context=StorageContext.from_defaults(
                vector_store=TongyiIndexVectorStore(table, kinds=TEXT_KINDS)
            ),
            embed_model=text_model,
            image_vector_store=TongyiIndexVectorStore(table, kinds=MEDIA_KINDS),
            image_embed_model=image_model,
            **index_options,
        )
    except BaseException:
        if embed_model is None and isinstance(text_model, TongyiVisionEmbedding):
            text_model.close()
        raise


# What open_index hands to the TongyiVisionEmbedding it makes rather than to the index.
_EMBEDDING_OPTIONS = frozenset(TongyiVisionEmbedding.model_fields) - {"callback_manager"} | {
    "dimensions",
    "http_client",
    "http_async_client",
}


def _embedding_for(info: IndexInfo, options: dict[str, Any]) -> TongyiVisionEmbedding:
    # As `tongyi-vision search` does: the dialect asked for, else the environment's, else the
    # index's; the model and size are the index's.
    settings: dict[str, Any] = {
        "model_name": info.model,
        "dimension": info.dimension_option(),
        "dialect": os.environ.get("TONGYI_VISION_DIALECT") or info.dialect,
    }
    return TongyiVisionEmbedding(**{**settings, **options})


def _check_dimension(table: IndexTable, model: BaseEmbedding) -> None:
    dimension = getattr(model, "dimension", None)
    if isinstance(dimension, int) and dimension != table.info.dimension:
        raise InputError(
            f"holds {table.info.dimension}-dimensional vectors of {table.info.model}; the "
            f"embedding model given makes {dimension}-dimensional ones: give a model of the "
            "same name and size, or none",
            part=str(table.path),
        )


class _TableIndex(MultiModalVectorStoreIndex):
    """A ``MultiModalVectorStoreIndex`` whose stores are views of one table, which knows what
    it holds better than the index's bookkeeping does."""

    # LlamaIndex marks a store empty after an insert that had nothing for it, and then never
    # queries it again; these stores answer for themselves (an empty one returns nothing).
    @property
    def is_image_vector_store_empty(self) -> bool:
        return False

    @property
    def is_text_vector_store_empty(self) -> bool:
        return False

    def as_retriever(self, **kwargs: Any) -> MultiModalVectorIndexRetriever:
        """A retriever over the whole table (LlamaIndex would restrict it to the nodes this
        object inserted when ``store_nodes_override`` is on)."""
        return MultiModalVectorIndexRetriever(self, **kwargs)

    def as_query_engine(  # type: ignore[override]
        self, llm: LLMType | None = None, **kwargs: Any
    ) -> RetrieverQueryEngine:
        """A query engine that answers with ``llm`` (LlamaIndex's ``Settings.llm`` when none
        is given) from the texts, images and clips retrieved: LlamaIndex's standard engine in
        multimodal mode (its multimodal engine is deprecated). Keyword arguments go to
        :meth:`as_retriever` and ``RetrieverQueryEngine.from_args``."""
        return RetrieverQueryEngine.from_args(
            self.as_retriever(**kwargs),
            llm=resolve_llm(llm) if llm is not None else None,
            multimodal=True,
            **kwargs,
        )


class TongyiIndexVectorStore(BasePydanticVectorStore):
    """A LlamaIndex vector store over an index's LanceDB table, seeing the rows of some kinds.

    >>> table = IndexTable.open(Path("photos.index"), consistent=True)
    >>> images = TongyiIndexVectorStore(table, kinds=("image", "video"))
    >>> images.query(VectorStoreQuery(query_embedding=vector, similarity_top_k=5))

    Queries, :meth:`get_nodes` with filters and :meth:`clear` see only the rows of
    ``kinds``; similarities are cosine (1 is the same vector). Filters
    (``MetadataFilters``) are on the row columns id, source, kind, sha256,
    start_seconds and end_seconds. :meth:`add` writes each node as a row of its own
    kind (a node whose id is in the table replaces that row), under the index's
    write lock; deleting by node id or document id removes those rows whichever
    store is asked, since an id names one row of the table. An image node that also
    has text is stored once, as its image: a row holds one vector.
    """

    stores_text: bool = True
    kinds: tuple[str, ...] = Field(
        default=KINDS, description="The kinds of rows this store sees: text, image, video."
    )

    _table: IndexTable = PrivateAttr()

    def __init__(
        self, table: IndexTable | str | os.PathLike[str], *, kinds: Sequence[str] = KINDS
    ) -> None:
        chosen = tuple(kinds)
        unknown = [kind for kind in chosen if kind not in KINDS]
        if unknown or not chosen:
            raise ValueError(
                f"kinds must be some of {', '.join(KINDS)}, not {', '.join(unknown) or 'none'}"
            )
        fields: dict[str, Any] = {"kinds": chosen}
        super().__init__(**fields)
        if not isinstance(table, IndexTable):
            table = IndexTable.open(Path(table), consistent=True)
        self._table = table

    @classmethod
    def class_name(cls) -> str:
        return "TongyiIndexVectorStore"

    @property
    def client(self) -> IndexTable:
        """The table this store reads and writes."""
        return self._table

    @property
    def table(self) -> IndexTable:
        """The table this store reads and writes."""
        return self._table

    # --- reading ---

    def query(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        """The ``similarity_top_k`` rows of this store's kinds nearest to the query vector."""
        if query.mode != VectorStoreQueryMode.DEFAULT:
            raise InputError(
                f"a tongyi-vision index answers vector queries (mode 'default'), not "
                f"{query.mode.value!r}",
                part=str(self._table.path),
            )
        if query.query_embedding is None:
            raise InputError(
                "the query has no vector; give the index an embedding model",
                part=str(self._table.path),
            )
        clauses = [self._kind_clause(), _filter_sql(query.filters)]
        if query.node_ids:
            clauses.append(sql_in("id", list(query.node_ids)))
        if query.doc_ids:
            clauses.append(_ref_doc_clause(query.doc_ids))
        hits = self._table.search(
            query.query_embedding, query.similarity_top_k, where=_all_of(clauses)
        )
        nodes = [row_node(hit.row) for hit in hits]
        return VectorStoreQueryResult(
            nodes=nodes,
            similarities=[hit.score for hit in hits],
            ids=[node.node_id for node in nodes],
        )

    async def aquery(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        return await asyncio.to_thread(self.query, query)

    def get_nodes(
        self, node_ids: list[str] | None = None, filters: MetadataFilters | None = None
    ) -> list[BaseNode]:
        """The nodes with these ids (in that order), or those of this store's kinds that
        match ``filters`` (both: those of the ids that match)."""
        if node_ids is not None and filters is None:
            return [row_node(row) for row in self._table.get(node_ids)]
        where = self._selection(node_ids, filters)
        rows = [row for batch in self._table.batches(where=where) for row in rows_from_arrow(batch)]
        if node_ids is not None:
            order = {node_id: n for n, node_id in enumerate(node_ids)}
            rows.sort(key=lambda row: order.get(row.id, len(order)))
        return [row_node(row) for row in rows]

    async def aget_nodes(
        self, node_ids: list[str] | None = None, filters: MetadataFilters | None = None
    ) -> list[BaseNode]:
        return await asyncio.to_thread(self.get_nodes, node_ids, filters)

    # --- writing ---

    def add(self, nodes: Sequence[BaseNode], **kwargs: Any) -> list[str]:
        """Write the nodes (embedded already) as rows; returns the ids written."""
        rows = [node_row(node) for node in nodes if self._holds(node)]
        if rows:
            with WriteLock(self._table.path):
                self._table.upsert(rows)
        return [row.id for row in rows]

    async def async_add(self, nodes: Sequence[BaseNode], **kwargs: Any) -> list[str]:
        return await asyncio.to_thread(self.add, nodes)

    def _holds(self, node: BaseNode) -> bool:
        # The index gives an image node with a caption to both stores: its row is the image's.
        image = isinstance(node, ImageNode) and _node_kind(node) != "text"
        return not (image and self.kinds == TEXT_KINDS)

    def delete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        """Delete the rows of a document: rows added with that ``ref_doc_id``, or the CLI's
        rows of that source file."""
        ids = [
            row.id
            for batch in self._table.batches(where=_ref_doc_clause([ref_doc_id]))
            for row in rows_from_arrow(batch)
            if _ref_doc_of(row) == ref_doc_id
        ]
        self._delete_ids(ids)

    async def adelete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        await asyncio.to_thread(self.delete, ref_doc_id)

    def delete_nodes(
        self,
        node_ids: list[str] | None = None,
        filters: MetadataFilters | None = None,
        **delete_kwargs: Any,
    ) -> None:
        """Delete the rows with these ids, or those of this store's kinds that match
        ``filters`` (both: those of the ids that match); neither deletes nothing."""
        if node_ids is None and filters is None:
            return
        if not filters:
            self._delete_ids(list(node_ids or []))
            return
        with WriteLock(self._table.path):
            self._table.delete(self._selection(node_ids, filters))

    async def adelete_nodes(
        self,
        node_ids: list[str] | None = None,
        filters: MetadataFilters | None = None,
        **delete_kwargs: Any,
    ) -> None:
        await asyncio.to_thread(self.delete_nodes, node_ids, filters)

    def clear(self) -> None:
        """Delete every row of this store's kinds."""
        with WriteLock(self._table.path):
            self._table.delete(self._kind_clause())

    async def aclear(self) -> None:
        await asyncio.to_thread(self.clear)

    def _delete_ids(self, ids: list[str]) -> None:
        if ids:
            with WriteLock(self._table.path):
                self._table.delete_ids(ids)

    def _kind_clause(self) -> str:
        return sql_in("kind", list(self.kinds))

    def _selection(self, node_ids: list[str] | None, filters: MetadataFilters | None) -> str:
        clauses = [self._kind_clause(), _filter_sql(filters)]
        if node_ids is not None:
            clauses.append(sql_in("id", node_ids) if node_ids else "false")
        return _all_of(clauses) or self._kind_clause()


# --- rows and nodes ---


def row_node(row: Row) -> BaseNode:
    """The node of a row: a ``TextNode`` for a text or a video clip (its text the clip's
    reference), an ``ImageNode`` for an image; metadata: the row's columns and metadata."""
    metadata = row.document_metadata()
    if row.kind == "video":
        metadata.setdefault("clip_uri", row.content)
    common: dict[str, Any] = {
        "id_": row.id,
        "metadata": metadata,
        # The CLI embedded a row's content alone: so would the index, given the node back.
        "excluded_embed_metadata_keys": list(metadata),
        "excluded_llm_metadata_keys": [key for key in _NOT_FOR_LLM if key in metadata],
    }
    document = _ref_doc_of(row)
    if document:
        common["relationships"] = {NodeRelationship.SOURCE: RelatedNodeInfo(node_id=document)}
    if row.kind != "image":
        return TextNode(text=row.content, **common)
    mime = metadata.get("mime_type")
    image: dict[str, Any] = {"image_mimetype": mime if isinstance(mime, str) else None}
    if row.content.startswith("file://"):
        image["image_path"] = str(path_from(row.content))
    elif row.content.startswith("data:"):
        header, _, payload = row.content.partition(",")
        image["image"] = payload
        image["image_mimetype"] = header[5:].split(";", 1)[0] or image["image_mimetype"]
    else:
        image["image_url"] = row.content
    return ImageNode(text="", **image, **common)


def node_row(node: BaseNode) -> Row:
    """The row of an embedded node: its kind from what it holds, its content the text or
    the media reference, its document id kept in the metadata."""
    vector = node.embedding
    if not vector:
        raise InputError(
            "has no embedding; add nodes through the index (which embeds them), or set "
            "their embedding",
            part=f"node {node.node_id!r}",
        )
    metadata = dict(node.metadata)
    if node.ref_doc_id is not None:
        metadata[REF_DOC_KEY] = node.ref_doc_id
    kind = _node_kind(node)
    content = _content(node, kind)
    return Row(
        id=node.node_id,
        source=_source(metadata, content),
        kind=kind,
        sha256=str(metadata.get("sha256") or ""),
        content=content,
        vector=vector,
        metadata=metadata,
        start_seconds=_seconds(metadata.get("start_seconds")),
        end_seconds=_seconds(metadata.get("end_seconds")),
    )


def _node_kind(node: BaseNode) -> str:
    metadata = node.metadata
    clip = metadata.get("clip_uri")
    if (isinstance(clip, str) and clip) or metadata.get("kind") == "video":
        return "video"
    if isinstance(node, ImageNode) and (node.image or node.image_path or node.image_url):
        return "image"
    if isinstance(node, ImageNode) and not node.text:
        return "image"
    text = node.get_content(metadata_mode=MetadataMode.NONE)
    # A text that is a media reference is embedded as that medium (TongyiVisionEmbedding).
    if "\n" not in text and text.startswith(("file://", "data:image/", "data:video/")):
        try:
            part = media_part(text)
        except InputError:
            part = None
        if isinstance(part, Video):
            return "video"
        if isinstance(part, Image):
            return "image"
    return "text"


def _content(node: BaseNode, kind: str) -> str:
    clip = node.metadata.get("clip_uri")
    if kind == "video" and isinstance(clip, str) and clip:
        return clip
    if isinstance(node, ImageNode) and kind != "text":
        if node.image_path:
            return file_uri(node.image_path)
        if node.image_url:
            return node.image_url
        if node.image:
            return f"data:{_image_mime(node)};base64,{node.image}"
    return node.get_content(metadata_mode=MetadataMode.NONE)


def _image_mime(node: ImageNode) -> str:
    if node.image_mimetype:
        return node.image_mimetype
    try:
        head = base64.b64decode((node.image or "")[:64], validate=False)
    except (binascii.Error, ValueError):
        head = b""
    return IMAGE_MIME_TYPES.get(sniff_image_format(head) or "", "image/png")


def _source(metadata: dict[str, Any], content: str) -> str:
    """The file a node came from: its ``source`` or ``file_path``, or the file its content
    refers to; empty when there is none (never a document id: ``embed --prune`` deletes rows
    whose source is not a file)."""
    for key in ("source", "file_path"):
        value = metadata.get(key)
        if isinstance(value, str) and value and not is_url(value):
            return value
    if content.startswith("file://"):
        return str(path_from(content))
    return ""


def _ref_doc_of(row: Row) -> str:
    given = row.metadata.get(REF_DOC_KEY)
    return given if isinstance(given, str) and given else row.source


def _seconds(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


# --- filters as the table's SQL ---


def _all_of(clauses: Sequence[str | None]) -> str | None:
    present = [f"({clause})" for clause in clauses if clause]
    return " AND ".join(present) or None


def _ref_doc_clause(ref_doc_ids: Sequence[str]) -> str:
    """Rows that may belong to these documents: added with one as ``ref_doc_id`` (exact:
    the metadata is compact JSON), or rows without one whose source is one."""
    needles = [f"strpos(metadata, {sql_string(_ref_doc_json(doc))}) > 0" for doc in ref_doc_ids]
    unowned = f"strpos(metadata, {sql_string(json.dumps(REF_DOC_KEY) + ':')}) = 0"
    by_source = f"({sql_in('source', list(ref_doc_ids))} AND {unowned})"
    return " OR ".join([*needles, by_source])


def _ref_doc_json(ref_doc_id: str) -> str:
    # How encode_metadata writes the pair: compact separators, non-ASCII as it is.
    return json.dumps({REF_DOC_KEY: ref_doc_id}, ensure_ascii=False, separators=(",", ":"))[1:-1]


def _filter_sql(filters: MetadataFilters | None) -> str | None:
    """LlamaIndex's metadata filters as a LanceDB SQL filter over the row columns."""
    if filters is None or not filters.filters:
        return None
    clauses = [
        f"({_filter_sql(f)})" if isinstance(f, MetadataFilters) else _clause(f)
        for f in filters.filters
    ]
    clauses = [clause for clause in clauses if clause]
    condition = filters.condition or FilterCondition.AND
    if condition == FilterCondition.NOT:
        return f"NOT ({' OR '.join(clauses)})"
    return (" OR " if condition == FilterCondition.OR else " AND ").join(clauses)


def _clause(item: MetadataFilter) -> str:
    key, operator, value = item.key, item.operator, item.value
    if key not in ROW_FIELDS:
        raise InputError(
            f"a filter of a tongyi-vision index is on the columns {', '.join(ROW_FIELDS)}, "
            f"not {key!r}; filter on one of those"
        )
    if operator in _SQL_OPERATORS:
        return f"{key} {_SQL_OPERATORS[operator]} {_literal(value, key)}"
    if operator in (FilterOperator.IN, FilterOperator.NIN):
        values = value if isinstance(value, list) else [value]
        if not values:
            return "false" if operator == FilterOperator.IN else "true"
        listed = ", ".join(_literal(v, key) for v in values)
        return f"{key} {'IN' if operator == FilterOperator.IN else 'NOT IN'} ({listed})"
    if operator in (FilterOperator.TEXT_MATCH, FilterOperator.TEXT_MATCH_INSENSITIVE):
        like = "LIKE" if operator == FilterOperator.TEXT_MATCH else "ILIKE"
        return f"{key} {like} {sql_string('%' + _like_escaped(str(value)) + '%')}"
    if operator == FilterOperator.IS_EMPTY:
        numeric = key in ("start_seconds", "end_seconds")
        return f"{key} IS NULL" if numeric else f"({key} IS NULL OR {key} = '')"
    raise InputError(
        f"the filter operator {operator.value!r} is for list values; the columns of a "
        f"tongyi-vision index hold one value each (use ==, !=, <, >, in, nin, text_match)"
    )


def _literal(value: Any, key: str) -> str:
    if isinstance(value, bool) or value is None or isinstance(value, list):
        raise InputError(
            f"the filter on {key!r} compares with {value!r}; give a string or a number"
        )
    if isinstance(value, (int, float)):
        return repr(float(value)) if key in ("start_seconds", "end_seconds") else repr(value)
    return sql_string(str(value))


def _like_escaped(text: str) -> str:
    """A text matched literally inside a LIKE pattern (LanceDB escapes with a backslash)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
